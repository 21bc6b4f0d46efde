/**
 * The load generator's controller: forks bot processes, spreads bots over
 * them and over source addresses, adds and pauses bots on command, sums
 * their counters, and measures windows: latency percentiles, traffic per
 * player, and (from the server) tick times and CPU per player-tick.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Histogram } from './hdr.js'
import type { AdapterName, BotStats, FromBots, ToBots } from './protocol.js'
import { CLK_TCK, cpuSeconds, cpuSplit, cpuTimes, parseCpuList, processTree, scrape, total, windowQuantile, type Samples } from './scrape.js'

export interface LoadOptions {
  readonly adapter: AdapterName
  readonly url: string
  /** Bot processes (default 2). */
  readonly processes?: number
  readonly inputHz?: number
  /** Game messages per second per bot when the game declares client messages (default 1; 0: none). */
  readonly messageHz?: number
  /** One bot in this many checks every frame (default 20; 0: none). */
  readonly checkEvery?: number
  /** Source addresses; default: 127.0.0.2-9 when the server is on loopback, else the system's choice. */
  readonly addresses?: readonly string[]
  /** Suffix of the server's tick-time histogram (default `tick_duration_seconds`). */
  readonly tickMetric?: string
  readonly named?: number
  /** Share of bots (0..1) sending an out-of-range input value, which the server drops (default 0): tests the report's drop counts. */
  readonly badInputs?: number
  /** The server's Prometheus endpoint, if it has one. */
  readonly metricsUrl?: string
  /** The server's pid: CPU is read from /proc for it and its descendants. */
  readonly serverPid?: number
  /** Server tick rate, to turn CPU seconds into seconds per player-tick. */
  readonly tickHz: number
  /**
   * CPUs the bot processes are pinned to (a taskset list: `1`, `8-15`); undefined: not pinned.
   * Each window then reports how busy these CPUs were, and one over BUSY_LIMIT is marked invalid.
   */
  readonly cpus?: string
  /**
   * CPUs the server is pinned to (a taskset list); each window then reports how much of them
   * processes other than the server used, and one over OTHERS_LIMIT is marked invalid.
   */
  readonly serverCpus?: string
  /** `node` flags for the bot processes, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/p'] to profile the load generator itself. */
  readonly botNodeArgs?: readonly string[]
}

/** A window in which the load generator's CPUs were busier than this measured the load generator, not the server. */
export const BUSY_LIMIT = 0.85

/** A window in which other processes used more than this share of the server's pinned CPUs measured a shared machine. */
export const OTHERS_LIMIT = 0.1

/** What one measurement window saw. Rates are per second of the window. */
export interface WindowStats {
  readonly seconds: number
  readonly players: number
  readonly latencyMs: { p50: number; p95: number; p99: number; max: number; count: number }
  /** The same, for bots that were never paused (scenario iii). */
  readonly latencyUnpausedMs: { p50: number; p95: number; p99: number; max: number; count: number }
  readonly msgsPerPlayerSec: number
  readonly bytesPerPlayerSec: number
  readonly unpausedBytesPerPlayerSec: number
  readonly dropped: number
  readonly unpausedDropped: number
  readonly dropCodes: Record<string, number>
  readonly errors: number
  readonly errorSamples: string[]
  /** Inputs no state reflected within a second (counted in the latency histograms at 1 s). */
  readonly staleInputs: number
  /** Whether both /metrics scrapes of the window succeeded. */
  readonly scraped: boolean
  /** From /metrics: NaN when the server has none. */
  readonly tickP50Ms: number
  readonly tickP99Ms: number
  readonly overruns: number
  readonly skippedDeltas: number
  /** Server CPU (all its processes) per player-tick, microseconds; and its CPU use in cores. */
  readonly cpuUsPerPlayerTick: number
  readonly serverCores: number
  /** The same, user and system time apart (system time is mostly the kernel's socket reads and writes). */
  readonly cpuUserUsPerPlayerTick: number
  readonly cpuSysUsPerPlayerTick: number
  /** CPU use of the bot processes, in cores: near their count means the load generator was the bottleneck. */
  readonly botCores: number
  /** Bot CPU per state message received, microseconds: the load generator's own cost per frame. */
  readonly botUsPerFrame: number
  /** Frames the bots sent (inputs, acks, messages) per state message they received. */
  readonly clientFramesPerState: number
  /** The same from the server's side (/metrics: messages received per STATE frame sent); NaN without those counters. */
  readonly serverMsgsPerState: number
  /** Share (0..1) of the load generator's pinned CPUs that was busy; NaN when not pinned. */
  readonly loadCpuBusy: number
  /** Share (0..1) of the server's pinned CPUs used by anything but the server (other processes, interrupts); NaN when not pinned. */
  readonly serverCpuOthers: number
  /** Why the window does not measure the server (the load generator saturated); null when it does. */
  readonly invalid: string | null
}

interface Proc {
  readonly child: ChildProcess
  last: BotStats | null
  /** Flush id -> resolve, answered by the stats message carrying that id. */
  waiters: Map<number, () => void>
  latency: Histogram
  latencyUnpaused: Histogram
}

/** No input was answered in the window: not "0 ms" (which would look perfect) but unknown. */
const NO_LAT = { p50: NaN, p95: NaN, p99: NaN, max: NaN, count: 0 }

export class LoadRun {
  readonly opts: LoadOptions
  readonly #procs: Proc[]
  #asked = 0
  #flushes = 0

  private constructor(opts: LoadOptions, procs: Proc[]) {
    this.opts = opts
    this.#procs = procs
  }

  /** Forks the bot processes and waits until each is ready. */
  static async start(opts: LoadOptions): Promise<LoadRun> {
    const n = opts.processes ?? 2
    // The compiled bot script, also when this module runs from source (tests under a TypeScript loader).
    const here = fileURLToPath(import.meta.url)
    const script = here.endsWith('.ts') ? join(dirname(here), '../../dist/bench/load/bots.js') : join(dirname(here), 'bots.js')
    const host = new URL(opts.url).hostname
    const loopback = host === 'localhost' || host.startsWith('127.') || host === '[::1]'
    const addresses = opts.addresses ?? (loopback && host !== '[::1]' ? Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`) : [])
    const procs: Proc[] = []
    for (let i = 0; i < n; i++) {
      const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...(opts.botNodeArgs ?? [])] })
      if (opts.cpus !== undefined && child.pid !== undefined) pin(child.pid, opts.cpus)
      const p: Proc = { child, last: null, waiters: new Map(), latency: new Histogram(), latencyUnpaused: new Histogram() }
      child.on('message', (m: FromBots) => {
        if (m.t !== 'stats') return
        p.last = m.stats
        p.latency.add(m.stats.latency.counts, m.stats.latency.max, m.stats.latency.sum)
        p.latencyUnpaused.add(m.stats.latencyUnpaused.counts, m.stats.latencyUnpaused.max, m.stats.latencyUnpaused.sum)
        const w = p.waiters.get(m.flush)
        if (w) {
          p.waiters.delete(m.flush)
          w()
        }
      })
      await new Promise<void>((resolve, reject) => {
        child.once('message', (m: FromBots) => (m.t === 'ready' ? resolve() : undefined))
        child.once('exit', (code) => reject(new Error(`bot process exited ${code} before it was ready`)))
        child.send({
          t: 'init',
          adapter: opts.adapter,
          url: opts.url,
          inputHz: opts.inputHz ?? 10,
          messageHz: opts.messageHz ?? 1,
          checkEvery: opts.checkEvery ?? 20,
          addresses,
          named: opts.named ?? 0,
          badInputs: opts.badInputs ?? 0,
          proc: i,
        } satisfies ToBots)
      })
      procs.push(p)
    }
    return new LoadRun(opts, procs)
  }

  /** Sum of the bot processes' latest counters. */
  totals(): Omit<BotStats, 'latency' | 'latencyUnpaused'> {
    const sum: Record<string, number> = {}
    const dropCodes: Record<string, number> = {}
    const errorSamples: string[] = []
    const failSamples: string[] = []
    for (const p of this.#procs) {
      const s = p.last
      if (!s) continue
      for (const [k, v] of Object.entries(s)) if (typeof v === 'number') sum[k] = (sum[k] ?? 0) + v
      for (const [k, v] of Object.entries(s.dropCodes)) dropCodes[k] = (dropCodes[k] ?? 0) + v
      errorSamples.push(...s.errorSamples)
      failSamples.push(...s.failSamples)
    }
    const g = (k: keyof BotStats) => sum[k] ?? 0
    return {
      connected: g('connected'),
      opened: g('opened'),
      failed: g('failed'),
      dropped: g('dropped'),
      dropCodes,
      stateMsgs: g('stateMsgs'),
      stateBytes: g('stateBytes'),
      otherMsgs: g('otherMsgs'),
      otherBytes: g('otherBytes'),
      inputs: g('inputs'),
      messages: g('messages'),
      errors: g('errors'),
      errorSamples: errorSamples.slice(0, 5),
      failSamples: failSamples.slice(0, 5),
      paused: g('paused'),
      pending: g('pending'),
      unpausedStateMsgs: g('unpausedStateMsgs'),
      unpausedStateBytes: g('unpausedStateBytes'),
      unpausedDropped: g('unpausedDropped'),
      unpausedConnected: g('unpausedConnected'),
      stale: g('stale'),
      acksSent: g('acksSent'),
      framesSent: g('framesSent'),
    }
  }

  /** Bots asked for so far. */
  get asked(): number {
    return this.#asked
  }

  /** Adds `n` bots at `perSecond` (spread over the processes) and resolves once each has connected or failed (or `timeoutMs`). */
  async add(n: number, perSecond: number, timeoutMs = 120_000): Promise<void> {
    const k = this.#procs.length
    this.#procs.forEach((p, i) => {
      const share = Math.floor(n / k) + (i < n % k ? 1 : 0)
      if (share > 0) p.child.send({ t: 'add', n: share, perSecond: perSecond / k } satisfies ToBots)
    })
    this.#asked += n
    const end = Date.now() + timeoutMs + (n / perSecond) * 1000
    const target = this.#asked
    await sleep(1100)
    for (;;) {
      const t = this.totals()
      if (t.opened + t.failed >= target && t.pending === 0) return
      if (Date.now() > end) return
      await sleep(250)
    }
  }

  pause(fraction: number): void {
    for (const p of this.#procs) p.child.send({ t: 'pause', fraction } satisfies ToBots)
  }

  /** Has every bot process report now; resolves when all have. */
  async flush(): Promise<void> {
    const id = ++this.#flushes
    await Promise.all(
      this.#procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null) return resolve()
            p.waiters.set(id, resolve)
            p.child.send({ t: 'flush', id } satisfies ToBots)
          }),
      ),
    )
  }

  /** Measures over `ms`: bot counters, latency, and the server's /metrics and CPU. */
  async window(ms: number, onProgress?: (line: string) => void): Promise<WindowStats> {
    // Order: scrape, CPU, flush (counters), clock ... clock, flush, CPU, scrape: the scrapes' own cost stays outside.
    const m0 = await this.#scrape()
    const serverPids = this.opts.serverPid ? processTree(this.opts.serverPid) : []
    const botPids = this.#procs.map((p) => p.child.pid ?? 0)
    const cpu0 = cpuSplit(serverPids)
    const bot0 = cpuSeconds(botPids)
    const loadCpus = this.opts.cpus !== undefined ? parseCpuList(this.opts.cpus) : []
    const busy0 = cpuTimes(loadCpus)
    const serverCpus = this.opts.serverCpus !== undefined ? parseCpuList(this.opts.serverCpus) : []
    const srvBusy0 = cpuTimes(serverCpus)
    await this.flush() // counters as of now; latency counted from here
    for (const p of this.#procs) {
      p.latency.reset()
      p.latencyUnpaused.reset()
    }
    const t0 = this.totals()
    const start = performance.now()
    let playerSeconds = 0
    let unpausedSeconds = 0
    let lastAt = start
    const accrue = () => {
      const now = performance.now()
      const tt = this.totals()
      playerSeconds += (tt.connected * (now - lastAt)) / 1000
      unpausedSeconds += (tt.unpausedConnected * (now - lastAt)) / 1000
      lastAt = now
      return tt
    }
    while (performance.now() - start < ms) {
      await sleep(Math.min(1000, ms - (performance.now() - start)))
      const tt = accrue()
      onProgress?.(`players ${tt.connected}  msgs ${tt.stateMsgs}  dropped ${tt.dropped}  errors ${tt.errors}`)
    }
    await this.flush()
    const seconds = (performance.now() - start) / 1000
    accrue()
    const t1 = this.totals()
    const cpu1 = cpuSplit(serverPids)
    const cpuUser = cpu1.user - cpu0.user
    const cpuSys = cpu1.sys - cpu0.sys
    const cpu = cpuUser + cpuSys
    const botCpu = cpuSeconds(botPids) - bot0
    const busy1 = cpuTimes(loadCpus)
    const loadCpuBusy = loadCpus.length > 0 && busy1.total > busy0.total ? (busy1.busy - busy0.busy) / (busy1.total - busy0.total) : NaN
    const srvBusy1 = cpuTimes(serverCpus)
    // Busy jiffies of the server's CPUs minus the server's own CPU time (both in CLK_TCK units): what else ran there.
    const serverCpuOthers =
      serverCpus.length > 0 && serverPids.length > 0 && srvBusy1.total > srvBusy0.total
        ? Math.max(0, (srvBusy1.busy - srvBusy0.busy - cpu * CLK_TCK) / (srvBusy1.total - srvBusy0.total))
        : NaN
    const m1 = await this.#scrape()
    const lat = new Histogram()
    const latU = new Histogram()
    for (const p of this.#procs) {
      lat.merge(p.latency)
      latU.merge(p.latencyUnpaused)
    }
    const players = t1.connected
    const codes: Record<string, number> = {}
    for (const [k, v] of Object.entries(t1.dropCodes)) {
      const d = v - (t0.dropCodes[k] ?? 0)
      if (d > 0) codes[k] = d
    }
    const tickMs = (q: number) => (m0 && m1 ? windowQuantile(m0, m1, this.opts.tickMetric ?? 'tick_duration_seconds', q) * 1000 : NaN)
    // The first of `names` the server exports; NaN when it has none of them (a peer without that counter).
    const counterDelta = (...names: string[]) => {
      if (!m0 || !m1) return NaN
      for (const name of names) if ([...m1.keys()].some((k) => k === name || k.startsWith(name + '{'))) return total(m1, name) - total(m0, name)
      return NaN
    }
    // Player-ticks actually served: the state messages the bots received. An overloaded server that runs
    // fewer ticks than its rate (or skips frames) serves fewer, so its CPU is not spread over ticks it never ran.
    const playerTicks = t1.stateMsgs - t0.stateMsgs
    // CPU from /proc on this machine; for a remote server, from its /metrics (process_cpu_seconds_total of every worker).
    const serverCpu = serverPids.length > 0 ? cpu : counterDelta('process_cpu_seconds_total')
    return {
      seconds,
      players,
      latencyMs: summary(lat),
      latencyUnpausedMs: summary(latU),
      msgsPerPlayerSec: (t1.stateMsgs - t0.stateMsgs + t1.otherMsgs - t0.otherMsgs) / Math.max(1, playerSeconds),
      bytesPerPlayerSec: (t1.stateBytes - t0.stateBytes + t1.otherBytes - t0.otherBytes) / Math.max(1, playerSeconds),
      unpausedBytesPerPlayerSec: (t1.unpausedStateBytes - t0.unpausedStateBytes) / Math.max(1, unpausedSeconds),
      dropped: t1.dropped - t0.dropped,
      unpausedDropped: t1.unpausedDropped - t0.unpausedDropped,
      dropCodes: codes,
      errors: t1.errors - t0.errors,
      errorSamples: t1.errorSamples,
      tickP50Ms: tickMs(0.5),
      tickP99Ms: tickMs(0.99),
      overruns: counterDelta('tickwire_tick_overruns_total', 'peer_tick_overruns_total'),
      skippedDeltas: counterDelta('tickwire_deltas_skipped_total', 'peer_frames_skipped_total'),
      staleInputs: t1.stale - t0.stale,
      scraped: m0 !== null && m1 !== null,
      cpuUsPerPlayerTick: serverCpu > 0 && playerTicks > 0 ? (serverCpu * 1e6) / playerTicks : NaN,
      cpuUserUsPerPlayerTick: serverPids.length > 0 && playerTicks > 0 ? (cpuUser * 1e6) / playerTicks : NaN,
      cpuSysUsPerPlayerTick: serverPids.length > 0 && playerTicks > 0 ? (cpuSys * 1e6) / playerTicks : NaN,
      serverCores: serverCpu >= 0 ? serverCpu / seconds : NaN,
      botCores: botCpu / seconds,
      botUsPerFrame: playerTicks > 0 ? (botCpu * 1e6) / playerTicks : NaN,
      clientFramesPerState: playerTicks > 0 ? (t1.framesSent - t0.framesSent) / playerTicks : NaN,
      serverMsgsPerState: counterDelta('tickwire_received_messages_total', 'peer_received_messages_total') / counterDelta('tickwire_state_frames_sent_total', 'peer_state_frames_sent_total'),
      loadCpuBusy,
      serverCpuOthers,
      invalid:
        loadCpuBusy > BUSY_LIMIT
          ? `the load generator's CPUs (${this.opts.cpus}) were ${(100 * loadCpuBusy).toFixed(0)}% busy (over ${100 * BUSY_LIMIT}%): this window measured the bots, not the server`
          : serverCpuOthers > OTHERS_LIMIT
            ? `other processes used ${(100 * serverCpuOthers).toFixed(0)}% of the server's CPUs (${this.opts.serverCpus}; over ${100 * OTHERS_LIMIT}%): the server did not have them to itself`
            : null,
    }
  }

  async #scrape(): Promise<Samples | null> {
    if (!this.opts.metricsUrl) return null
    try {
      return await scrape(this.opts.metricsUrl)
    } catch {
      return null
    }
  }

  /** Closes every bot and ends the bot processes. */
  async stop(): Promise<void> {
    await Promise.all(
      this.#procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null) return resolve()
            p.child.once('exit', () => resolve())
            p.child.send({ t: 'stop' } satisfies ToBots)
            setTimeout(() => p.child.kill('SIGKILL'), 5000).unref()
          }),
      ),
    )
  }
}

/** Pins every thread of `pid` to `cpus` (taskset -a -p -c); throws with taskset's words if it cannot. */
export function pin(pid: number, cpus: string): void {
  parseCpuList(cpus)
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { encoding: 'utf8' })
  if (r.error) throw new Error(`taskset (util-linux) is needed to pin processes to CPUs ${cpus}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${(r.stderr || r.stdout).trim()}`)
}

function summary(h: Histogram): WindowStats['latencyMs'] {
  if (h.count === 0) return NO_LAT
  return { p50: h.quantile(0.5) / 1000, p95: h.quantile(0.95) / 1000, p99: h.quantile(0.99) / 1000, max: h.max / 1000, count: h.count }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
