/**
 * Smoke run of the peers: starts each one, connects a few bots through its
 * adapter (most in quick play, a quarter in one named room, every bot
 * checking what it receives), sends inputs for a few seconds, and prints what
 * the bots saw and what the server's /metrics says. Exits 1 if any bot
 * reported an error or saw no state, or a server did not exit 0 on SIGTERM.
 *
 *   npm run build && npm --prefix bench/peers/colyseus ci
 *   node dist/bench/peers/smoke.js [--peers ws-json,colyseus] [--bots 20] [--seconds 3] [--tick-hz 20] [--input-hz 10]
 */
import { parseArgs } from 'node:util'
import type { Bot } from '../load/adapter.js'
import { parseMetrics, total, windowQuantile, type Samples } from '../load/scrape.js'
import { PEERS, freePort, isPeerName, startPeer, type PeerName } from './index.js'

interface Options {
  readonly peers: PeerName[]
  readonly bots: number
  readonly seconds: number
  readonly tickHz: number
  readonly inputHz: number
}

interface Result {
  readonly peer: PeerName
  readonly bots: number
  readonly connectMs: number
  readonly seconds: number
  readonly states: number
  readonly stateBytes: number
  readonly otherBytes: number
  readonly latencies: number[]
  readonly errors: string[]
  readonly closes: number[]
  readonly tickP50: number
  readonly tickP99: number
  readonly ticks: number
  readonly cpuSeconds: number
  /** CPU seconds of this process (every bot) over the run. */
  readonly loaderCpuSeconds: number
  readonly exitCode: number | null
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      peers: { type: 'string', default: Object.keys(PEERS).join(',') },
      bots: { type: 'string', default: '20' },
      seconds: { type: 'string', default: '3' },
      'tick-hz': { type: 'string', default: '20' },
      'input-hz': { type: 'string', default: '10' },
    },
    strict: true,
  })
  const peers = values.peers.split(',').filter((p) => p !== '')
  for (const p of peers) if (!isPeerName(p)) throw new Error(`--peers: unknown peer ${JSON.stringify(p)} (known: ${Object.keys(PEERS).join(', ')})`)
  const num = (flag: string, v: string, min: number, max: number): number => {
    const n = Number(v)
    if (!(Number.isFinite(n) && n >= min && n <= max)) throw new Error(`--${flag} must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`)
    return n
  }
  return {
    peers: peers as PeerName[],
    bots: Math.round(num('bots', values.bots, 1, 2000)),
    seconds: num('seconds', values.seconds, 0.5, 600),
    tickHz: num('tick-hz', values['tick-hz'], 1, 240),
    inputHz: num('input-hz', values['input-hz'], 0.5, 120),
  }
}

async function scrapeText(port: number): Promise<Samples> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return parseMetrics(await res.text())
}

async function run(peer: PeerName, o: Options): Promise<Result> {
  const adapter = await PEERS[peer].adapter()
  const metricsPort = await freePort()
  const server = await startPeer(peer, { port: 0, tickHz: o.tickHz, metricsPort, host: '127.0.0.1' })
  const errors: string[] = []
  const closes: number[] = []
  const latencies: number[] = []
  let states = 0
  let stateBytes = 0
  let otherBytes = 0
  const bots: Bot[] = []
  /** Per bot: inputs sent and not yet seen applied, oldest first. */
  const pending: { seq: number; at: number }[][] = []
  try {
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: o.bots }, async (_, i) => {
        const mine: { seq: number; at: number }[] = []
        pending[i] = mine
        bots[i] = await adapter.connect(
          {
            url: `ws://127.0.0.1:${server.port}/play`,
            room: i % 4 === 3 ? 'smoke-named' : null,
            name: `bot${i}`,
            localAddress: `127.0.0.${2 + (i % 8)}`,
            check: true,
          },
          {
            state(bytes, appliedSeq) {
              states++
              stateBytes += bytes
              const now = performance.now()
              while (mine.length > 0 && (mine[0] as { seq: number }).seq <= appliedSeq) latencies.push(now - (mine.shift() as { at: number }).at)
            },
            other(bytes) {
              otherBytes += bytes
            },
            error(err) {
              errors.push(`bot ${i}: ${err.message}`)
            },
            close(code) {
              closes.push(code)
            },
          },
        )
      }),
    )
    const connectMs = performance.now() - t0
    const before = await scrapeText(metricsPort)
    states = 0
    stateBytes = 0
    latencies.length = 0
    const start = performance.now()
    const cpu0 = process.cpuUsage()
    let seq = 0
    const inputs = setInterval(() => {
      seq++
      const now = performance.now()
      for (let i = 0; i < bots.length; i++) {
        // Each bot steers in its own direction, changing every second.
        const a = i + Math.floor(seq / o.inputHz)
        ;(pending[i] as { seq: number; at: number }[]).push({ seq, at: now })
        ;(bots[i] as Bot).input(seq, Math.round(Math.cos(a) * 100), Math.round(Math.sin(a) * 100))
      }
    }, 1000 / o.inputHz)
    await new Promise((r) => setTimeout(r, o.seconds * 1000))
    clearInterval(inputs)
    const seconds = (performance.now() - start) / 1000
    const cpu = process.cpuUsage(cpu0)
    const seen = { states, stateBytes, latencies: [...latencies] }
    const after = await scrapeText(metricsPort)
    const result = {
      peer,
      bots: o.bots,
      connectMs,
      seconds,
      ...seen,
      otherBytes,
      loaderCpuSeconds: (cpu.user + cpu.system) / 1e6,
      errors,
      closes,
      tickP50: windowQuantile(before, after, 'tick_duration_seconds', 0.5),
      tickP99: windowQuantile(before, after, 'tick_duration_seconds', 0.99),
      ticks: total(after, 'peer_ticks_total') - total(before, 'peer_ticks_total'),
      cpuSeconds: total(after, 'process_cpu_seconds_total') - total(before, 'process_cpu_seconds_total'),
    }
    for (const b of bots) b.close()
    await new Promise((r) => setTimeout(r, 200))
    return { ...result, exitCode: await server.stop() }
  } catch (err) {
    await server.stop()
    throw err
  }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

function report(r: Result, o: Options): string {
  const lat = [...r.latencies].sort((a, b) => a - b)
  const perBot = (v: number): string => (v / r.bots / r.seconds).toFixed(1)
  const playerTicks = r.bots * r.seconds * o.tickHz
  return [
    `${r.peer}: ${r.bots} bots at ${o.tickHz} Hz, inputs at ${o.inputHz} Hz, ${r.seconds.toFixed(1)} s (connected in ${r.connectMs.toFixed(0)} ms)`,
    `  states     ${r.states} (${perBot(r.states)} per bot per s), ${(r.stateBytes / Math.max(1, r.states)).toFixed(0)} B each, ${perBot(r.stateBytes)} B per bot per s`,
    `  other      ${r.otherBytes} B in all (welcome / join messages)`,
    `  latency    input -> state that applied it: p50 ${quantile(lat, 0.5).toFixed(1)} ms, p95 ${quantile(lat, 0.95).toFixed(1)} ms, max ${quantile(lat, 1).toFixed(1)} ms (${lat.length} samples)`,
    `  server     tick p50 ${(r.tickP50 * 1000).toFixed(2)} ms, p99 ${(r.tickP99 * 1000).toFixed(2)} ms; ${r.ticks} ticks; CPU ${r.cpuSeconds.toFixed(2)} s = ${((r.cpuSeconds / playerTicks) * 1e6).toFixed(1)} us per player-tick`,
    `  bots       CPU ${r.loaderCpuSeconds.toFixed(2)} s in ${r.seconds.toFixed(1)} s (${((r.loaderCpuSeconds / r.seconds) * 100).toFixed(0)}% of one core; near 100%: the bots, not the server, set the pace)`,
    `  errors     ${r.errors.length}${r.errors.length > 0 ? ': ' + r.errors.slice(0, 3).join('; ') : ''}; drops ${r.closes.length}${r.closes.length > 0 ? ' (codes ' + r.closes.join(', ') + ')' : ''}`,
    `  SIGTERM    exit code ${r.exitCode}`,
  ].join('\n')
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2))
  let failed = false
  for (const peer of o.peers) {
    const r = await run(peer, o)
    process.stdout.write(report(r, o) + '\n')
    if (r.errors.length > 0 || r.closes.length > 0 || r.states === 0 || r.latencies.length === 0 || r.exitCode !== 0) failed = true
  }
  process.exitCode = failed ? 1 : 0
}

main().catch((err: unknown) => {
  process.stderr.write(`smoke: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
