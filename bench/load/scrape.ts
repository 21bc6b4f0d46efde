/**
 * Reading a server while it is under load: its Prometheus /metrics (tick
 * durations, overruns, skipped deltas) and, for any server, the CPU time of
 * its process tree from /proc (so tickwire and its peers are measured alike).
 */
import { readFileSync, readdirSync } from 'node:fs'

export type Samples = Map<string, number>

/** Parses Prometheus text format into `name{labels}` -> value. Comments skipped; a malformed line throws. */
export function parseMetrics(text: string): Samples {
  const out: Samples = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    // Values as Go's ParseFloat reads them: NaN and Inf in any case (prom-client writes `Nan`).
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) ([-+]?(?:[0-9][0-9.eE+-]*|[Ii]nf|[Nn]a[Nn]))(?: \d+)?$/.exec(line)
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line.slice(0, 200))}`)
    out.set(m[1] as string, toNumber(m[2] as string))
  }
  return out
}

/** A sample value: a float, or NaN / +Inf / -Inf in any case (JavaScript's Number() knows only `Infinity`). */
function toNumber(v: string): number {
  const inf = /^([-+]?)inf$/i.exec(v)
  if (inf) return inf[1] === '-' ? -Infinity : Infinity
  return /^[-+]?nan$/i.test(v) ? NaN : Number(v)
}

/** GETs and parses a /metrics URL; rejects after `timeoutMs`. */
export async function scrape(url: string, timeoutMs = 5000): Promise<Samples> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`)
  return parseMetrics(await res.text())
}

/** Sum of every sample of series `name` (all label sets), or 0. */
export function total(s: Samples, name: string): number {
  let n = 0
  for (const [k, v] of s) if (k === name || k.startsWith(name + '{')) n += v
  return n
}

/**
 * Quantile q of the histogram whose name ends in `suffix` (e.g.
 * `tick_duration_seconds`), over the window between two scrapes: bucket
 * counts are differenced, then interpolated linearly inside the bucket, as
 * PromQL's histogram_quantile does. NaN when nothing was observed.
 */
export function windowQuantile(before: Samples, after: Samples, suffix: string, q: number): number {
  const buckets: { le: number; n: number }[] = []
  for (const [k, v] of after) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\{(.*)\}$/.exec(k)
    if (!m || !(m[1] as string).endsWith(suffix)) continue
    const le = /le="([^"]+)"/.exec(m[2] as string)?.[1]
    if (le === undefined) continue
    const bound = le === '+Inf' ? Infinity : Number(le)
    const prev = buckets.find((b) => b.le === bound)
    const n = v - (before.get(k) ?? 0)
    if (prev) prev.n += n
    else buckets.push({ le: bound, n })
  }
  buckets.sort((a, b) => a.le - b.le)
  const count = buckets.at(-1)?.n ?? 0
  if (count <= 0) return NaN
  const rank = q * count
  let lower = 0
  let below = 0
  for (const b of buckets) {
    if (b.n >= rank) {
      if (b.le === Infinity) return lower
      const inBucket = b.n - below
      return inBucket <= 0 ? b.le : lower + ((b.le - lower) * (rank - below)) / inBucket
    }
    lower = b.le
    below = b.n
  }
  return lower
}

/** Linux USER_HZ on every mainstream build: the unit of /proc's CPU times. */
export const CLK_TCK = 100

/** The pid and all its descendants (from /proc/<pid>/task/<tid>/children). */
export function processTree(pid: number): number[] {
  const out: number[] = []
  const walk = (p: number) => {
    out.push(p)
    let tids: string[] = []
    try {
      tids = readdirSync(`/proc/${p}/task`)
    } catch {
      return
    }
    for (const tid of tids) {
      let children = ''
      try {
        children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8')
      } catch {
        continue
      }
      for (const c of children.split(' ')) if (c.trim() !== '') walk(Number(c))
    }
  }
  walk(pid)
  return out
}

/** User + system CPU seconds used so far by these processes (0 for any that is gone). */
export function cpuSeconds(pids: readonly number[]): number {
  const c = cpuSplit(pids)
  return c.user + c.sys
}

/** User and system CPU seconds used so far by these processes, apart: system time is mostly the kernel's socket writes. */
export function cpuSplit(pids: readonly number[]): { user: number; sys: number } {
  let user = 0
  let sys = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      // Fields after the command name, which is in parentheses and may contain spaces.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      user += Number(f[11]) // utime (field 14)
      sys += Number(f[12]) // stime (field 15)
    } catch {
      // exited
    }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK }
}

/** Parses a CPU list as taskset takes it (`0`, `0-7`, `0,2,8-15`); throws on anything else. */
export function parseCpuList(list: string): number[] {
  const out: number[] = []
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim())
    if (!m) throw new Error(`not a CPU list: ${JSON.stringify(list)} (expected e.g. 0, 0-7 or 0,2,8-15)`)
    const a = Number(m[1])
    const b = m[2] === undefined ? a : Number(m[2])
    if (b < a) throw new Error(`not a CPU list: ${JSON.stringify(list)} (${a}-${b} runs backwards)`)
    for (let c = a; c <= b; c++) out.push(c)
  }
  return [...new Set(out)].sort((x, y) => x - y)
}

/** Busy and total jiffies so far of these CPUs, from /proc/stat (busy = all but idle and iowait). */
export function cpuTimes(cpus: readonly number[]): { busy: number; total: number } {
  let busy = 0
  let total = 0
  let text = ''
  try {
    text = readFileSync('/proc/stat', 'utf8')
  } catch {
    return { busy: NaN, total: NaN }
  }
  const want = new Set(cpus)
  for (const line of text.split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line)
    if (!m || !want.has(Number(m[1]))) continue
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const f = (m[2] as string).trim().split(/\s+/).map(Number).slice(0, 8)
    const sum = f.reduce((a, b) => a + b, 0)
    total += sum
    busy += sum - (f[3] ?? 0) - (f[4] ?? 0)
  }
  return { busy, total }
}
