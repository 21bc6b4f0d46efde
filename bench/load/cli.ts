#!/usr/bin/env node
/**
 * tickwire-load: load-tests a tickwire deployment (or a peer server).
 *
 *   tickwire-load --url ws://host:9001/play --players 2000 --duration 60
 *
 * Ramps bots up, holds them for the duration, prints a progress line each
 * second and a final report (text, or JSON with --json FILE).
 */
import { writeFileSync } from 'node:fs'
import { isEntry } from '../../src/entry.js'
import { LoadRun, type WindowStats } from './loadrun.js'
import type { AdapterName } from './protocol.js'
import { scrape } from './scrape.js'

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
  named: { default: '0', doc: 'share of bots in named rooms, 0..1 (the rest: quick play)' },
  processes: { default: '2', doc: 'bot processes (1..64)' },
  'check-every': { default: '20', doc: 'one bot in N decodes and checks every frame' },
  'source-addresses': { default: '', doc: 'comma list of local addresses to connect from (default: 127.0.0.2-9 for a loopback server, else the system\'s choice)' },
  adapter: { default: 'tickwire', doc: 'tickwire | ws-json | colyseus' },
  'metrics-url': { default: '', doc: "server's /metrics (default: http://<host>:9464/metrics for tickwire; '-' for none)" },
  'server-pid': { default: '0', doc: 'server pid, to read its CPU (and its children\'s) from /proc (same machine only); default: process_cpu_seconds_total from --metrics-url' },
  'tick-hz': { default: '0', doc: 'server tick rate (default: from tickwire_tick_budget_seconds, else 30)' },
  json: { default: '', doc: 'also write the report as JSON to this file' },
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
    `server CPU         ${f(w.cpuUsPerPlayerTick, 2)} us per player-tick  (${f(w.serverCores, 2)} cores)`,
    `load generator     ${f(w.botCores, 2)} cores`,
    `dropped            ${w.dropped} ${JSON.stringify(w.dropCodes)}   errors ${w.errors}${w.errorSamples.length ? ' e.g. ' + w.errorSamples[0] : ''}`,
  ].join('\n')
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
    if (!['tickwire', 'ws-json', 'colyseus'].includes(adapter)) throw new UsageError(`--adapter: got ${JSON.stringify(adapter)}, expected tickwire, ws-json or colyseus`)
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
      checkEvery: num(o, 'check-every', 1, 1e9),
      named: num(o, 'named', 0, 1),
      addresses: o['source-addresses'] ? (o['source-addresses'] as string).split(',').map((a) => a.trim()) : undefined,
      metricsUrl,
      serverPid: pid || undefined,
      tickHz,
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
    process.stdout.write(`connections        opened ${end.opened}, failed ${end.failed}, dropped ${end.dropped}\n`)
    if (o.json) writeFileSync(o.json, JSON.stringify({ options: o, window: w, totals: end }, null, 2))
    return end.errors > 0 ? 1 : 0
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
