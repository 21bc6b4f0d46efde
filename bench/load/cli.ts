#!/usr/bin/env node
/**
 * tickwire-load: load-tests a tickwire deployment (or a peer server).
 *
 *   tickwire-load --url ws://host:9001/play --players 2000 --duration 60
 *
 * Ramps bots up, holds them for the duration, prints a progress line each
 * second and a final report (text, or JSON with --json FILE). The tickwire
 * bots send inputs for whatever game the server runs (the schema its WELCOME
 * declares). Exits 1 when any bot was dropped by the server, any connection
 * failed, or any bot's check failed, saying which close codes it saw.
 */
import { writeFileSync } from 'node:fs'
import { CloseCode } from '../../proto/index.js'
import { isEntry } from '../../src/entry.js'
import { LoadRun, type WindowStats } from './loadrun.js'
import type { AdapterName } from './protocol.js'
import { parseCpuList, scrape } from './scrape.js'

interface Opt {
  readonly default: string
  readonly doc: string
}
const OPTIONS: Record<string, Opt> = {
  url: { default: 'ws://127.0.0.1:9001/play', doc: 'server address' },
  players: { default: '100', doc: 'bots to connect (1..100000)' },
  duration: { default: '30', doc: 'seconds to measure once all bots are connected (1..3600)' },
  ramp: { default: '500', doc: 'bots connected per second (1..10000)' },
  'input-hz': { default: '10', doc: 'inputs per second per bot (0.1..60)' },
  'message-hz': { default: '1', doc: 'game messages per second per bot (0..20), random valid ones of the kinds WELCOME declares; none when the game declares none' },
  named: { default: '0', doc: 'share of bots in named rooms, 0..1 (the rest: quick play)' },
  processes: { default: '2', doc: 'bot processes (1..64)' },
  'check-every': { default: '20', doc: 'one bot in N decodes and checks every frame (0: none)' },
  cpus: { default: '', doc: 'pin the bot processes to these CPUs (taskset list, e.g. 1 or 8-15); the report then says how busy they were, and flags the window when over 85%' },
  'source-addresses': { default: '', doc: 'comma list of local addresses to connect from (default: 127.0.0.2-9 for a loopback server, else the system\'s choice)' },
  adapter: { default: 'tickwire', doc: 'tickwire | ws-json | colyseus | floor' },
  'metrics-url': { default: '', doc: "server's /metrics (default: http://<host>:9464/metrics for tickwire; '-' for none)" },
  'server-pid': { default: '0', doc: 'server pid, to read its CPU (and its children\'s) from /proc (same machine only); default: process_cpu_seconds_total from --metrics-url' },
  'tick-hz': { default: '0', doc: 'server tick rate (default: from tickwire_tick_budget_seconds, else 30)' },
  json: { default: '', doc: 'also write the report as JSON to this file' },
  'bot-profile': { default: '', doc: 'write a CPU profile of each bot process (node --cpu-prof) into this directory: where the load generator spends its time' },
  'bad-inputs': { default: '0', doc: 'share of bots, 0..1, that send an out-of-range input value (tickwire only): the server should drop each, and this run then exits 1' },
}

class UsageError extends Error {}

function parse(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, o] of Object.entries(OPTIONS)) out[k] = o.default
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--help' || a === '-h') throw new UsageError('')
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined]
    const key = flag.replace(/^--/, '')
    if (!flag.startsWith('--') || !(key in OPTIONS)) throw new UsageError(`unknown option ${flag}`)
    const v = inline ?? argv[++i]
    if (v === undefined) throw new UsageError(`${flag} needs a value`)
    out[key] = v
  }
  return out
}

function num(o: Record<string, string>, key: string, min: number, max: number): number {
  const n = Number(o[key])
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${key}: got ${JSON.stringify(o[key])}, expected ${min} to ${max}`)
  return n
}

export function formatWindow(w: WindowStats): string {
  const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a')
  return [
    `players            ${w.players} (window ${f(w.seconds)} s)`,
    `latency ms         p50 ${f(w.latencyMs.p50)}  p95 ${f(w.latencyMs.p95)}  p99 ${f(w.latencyMs.p99)}  max ${f(w.latencyMs.max)}  (${w.latencyMs.count} inputs)`,
    `per player         ${f(w.msgsPerPlayerSec)} msgs/s  ${f(w.bytesPerPlayerSec, 0)} B/s`,
    `server tick ms     p50 ${f(w.tickP50Ms, 2)}  p99 ${f(w.tickP99Ms, 2)}  overruns ${f(w.overruns, 0)}  skipped deltas ${f(w.skippedDeltas, 0)}`,
    `server CPU         ${f(w.cpuUsPerPlayerTick, 2)} us per player-tick = user ${f(w.cpuUserUsPerPlayerTick, 2)} + system ${f(w.cpuSysUsPerPlayerTick, 2)}  (${f(w.serverCores, 2)} cores)`,
    `client frames      ${f(w.clientFramesPerState, 2)} per STATE (the server counted ${f(w.serverMsgsPerState, 2)})`,
    `load generator     ${f(w.botCores, 2)} cores, ${f(w.botUsPerFrame, 2)} us per frame received${Number.isFinite(w.loadCpuBusy) ? `, its CPUs ${f(100 * w.loadCpuBusy, 0)}% busy` : ''}`,
    ...(w.invalid !== null ? [`INVALID            ${w.invalid}`] : []),
    `in window          dropped ${w.dropped} ${JSON.stringify(w.dropCodes)}   errors ${w.errors}${w.errorSamples.length ? ' e.g. ' + w.errorSamples[0] : ''}`,
  ].join('\n')
}

/** Close code -> its name in proto/codes.ts (e.g. 4001 -> BAD_INPUT), for the failure summary. */
const CLOSE_NAMES: Record<string, string> = Object.fromEntries(Object.entries(CloseCode).map(([k, v]) => [String(v), k]))

/** Counts of one run's connections, as summed over the bot processes just before they stop. */
export interface RunCounts {
  readonly opened: number
  readonly failed: number
  /** Still connected at the end; opened = connected + dropped. */
  readonly connected: number
  /** Closed by the server or cut (1006), any time in the run (ramp included), by close code. */
  readonly dropped: number
  readonly dropCodes: Record<string, number>
  readonly errors: number
  readonly errorSamples: readonly string[]
  readonly failSamples: readonly string[]
}

/** The connections line of the report: the whole run, not only the measured window. */
export function formatCounts(c: RunCounts): string {
  return `connections        opened ${c.opened} = connected ${c.connected} + dropped ${c.dropped} ${JSON.stringify(c.dropCodes)};  failed ${c.failed};  errors ${c.errors}`
}

/** Why the run failed (one line per reason), or [] when it did not. */
export function failures(c: RunCounts): string[] {
  const out: string[] = []
  if (c.dropped > 0) {
    const codes = Object.entries(c.dropCodes).map(([code, n]) => `${code}${CLOSE_NAMES[code] ? ' ' + CLOSE_NAMES[code] : ''} x${n}`)
    out.push(`${c.dropped} bot(s) dropped by the server: close codes ${codes.join(', ')}`)
  }
  if (c.failed > 0) out.push(`${c.failed} connection(s) failed${c.failSamples[0] ? `, e.g. ${c.failSamples[0]}` : ''}`)
  if (c.errors > 0) out.push(`${c.errors} error(s)${c.errorSamples[0] ? `, e.g. ${c.errorSamples[0]}` : ''}`)
  if (c.opened !== c.connected + c.dropped) out.push(`counts disagree: opened ${c.opened} != connected ${c.connected} + dropped ${c.dropped}`)
  return out
}

export async function main(argv: string[]): Promise<number> {
  let o: Record<string, string>
  try {
    o = parse(argv)
  } catch (err) {
    const usage = Object.entries(OPTIONS)
      .map(([k, v]) => `  --${k.padEnd(13)} ${v.doc} (default: ${v.default || 'none'})`)
      .join('\n')
    process.stderr.write(`${(err as Error).message ? (err as Error).message + '\n\n' : ''}Usage: tickwire-load [options]\n${usage}\n`)
    return (err as Error).message ? 2 : 0
  }
  try {
    const players = num(o, 'players', 1, 100000)
    const duration = num(o, 'duration', 1, 3600)
    const ramp = num(o, 'ramp', 1, 10000)
    const adapter = o.adapter as AdapterName
    if (!['tickwire', 'ws-json', 'colyseus', 'floor'].includes(adapter)) throw new UsageError(`--adapter: got ${JSON.stringify(adapter)}, expected tickwire, ws-json, colyseus or floor`)
    const cpus = o.cpus || undefined
    if (cpus !== undefined) {
      try {
        parseCpuList(cpus)
      } catch (err) {
        throw new UsageError(`--cpus: ${(err as Error).message}`)
      }
    }
    const url = new URL(o.url as string)
    let metricsUrl: string | undefined = o['metrics-url'] === '-' ? undefined : o['metrics-url'] || undefined
    if (metricsUrl === undefined && o['metrics-url'] === '' && adapter === 'tickwire') metricsUrl = `http://${url.hostname}:9464/metrics`
    let tickHz = num(o, 'tick-hz', 0, 1000)
    if (tickHz === 0 && metricsUrl) {
      const budget = await scrape(metricsUrl).then((s) => s.get('tickwire_tick_budget_seconds'), () => undefined)
      if (budget) tickHz = Math.round(1 / budget)
    }
    if (tickHz === 0) tickHz = 30
    const pid = num(o, 'server-pid', 0, 1 << 30)
    const run = await LoadRun.start({
      adapter,
      url: url.toString(),
      processes: num(o, 'processes', 1, 64),
      inputHz: num(o, 'input-hz', 0.1, 60),
      messageHz: num(o, 'message-hz', 0, 20),
      checkEvery: num(o, 'check-every', 0, 1e9),
      cpus,
      botNodeArgs: o['bot-profile'] ? ['--cpu-prof', `--cpu-prof-dir=${o['bot-profile']}`] : [],
      named: num(o, 'named', 0, 1),
      addresses: o['source-addresses'] ? (o['source-addresses'] as string).split(',').map((a) => a.trim()) : undefined,
      metricsUrl,
      serverPid: pid || undefined,
      tickHz,
      badInputs: num(o, 'bad-inputs', 0, 1),
    })
    const progress = setInterval(() => {
      const t = run.totals()
      process.stderr.write(`\rconnecting: ${t.connected}/${players} connected, ${t.failed} failed, ${t.dropped} dropped, ${t.errors} errors   `)
    }, 1000)
    await run.add(players, ramp)
    clearInterval(progress)
    const t = run.totals()
    process.stderr.write(`\rconnected ${t.connected}/${players}, ${t.failed} failed${t.failSamples[0] ? ` (e.g. ${t.failSamples[0]})` : ''}\n`)
    const w = await run.window(duration * 1000, (line) => process.stderr.write(`\r${line}   `))
    process.stderr.write('\n')
    const end = run.totals()
    await run.stop()
    process.stdout.write(formatWindow(w) + '\n')
    process.stdout.write(formatCounts(end) + '\n')
    const why = failures(end)
    if (o.json) writeFileSync(o.json, JSON.stringify({ options: o, window: w, totals: end, failures: why }, null, 2))
    for (const line of why) process.stderr.write(`tickwire-load: FAIL: ${line}\n`)
    return why.length > 0 ? 1 : 0
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tickwire-load: ${err.message}\n`)
      return 2
    }
    throw err
  }
}


if (isEntry(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`tickwire-load: ${err.stack ?? err.message}\n`)
      process.exit(1)
    },
  )
}
