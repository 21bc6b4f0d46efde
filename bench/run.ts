#!/usr/bin/env node
/**
 * npm run bench: the same reference-game scenarios against tickwire, the
 * floor (bare uWS sending frames of tickwire's size), and the servers a
 * developer would otherwise pick (bench/peers/), on this machine, in one
 * invocation. Writes bench/results/<date>-<host>.md, .json and SVG charts.
 *
 *   node dist/bench/run.js [--quick] [--servers tickwire,floor,ws-json,colyseus] [--scenarios capacity,fixed,slow]
 *                          [--server-cpus 0] [--load-cpus 1] [--frame-bytes N]
 *
 * Each server runs pinned to --server-cpus and the load generator to
 * --load-cpus (taskset), so neither steals the other's cores; a window in
 * which the load generator's CPUs were over 85% busy is marked invalid (it
 * measured the bots) and ends the ramp.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { freePort } from '../src/net/ports.js'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadAverage, machine, type Machine } from './lib/report.js'
import { renderReport, type BenchResult, type CapacityRun, type ServerName } from './report.js'
import { LoadRun, sleep, type WindowStats } from './load/loadrun.js'
import { parseCpuList } from './load/scrape.js'

const root = fileURLToPath(new URL('../..', import.meta.url)) // dist/bench/run.js -> repo root

export interface Running {
  readonly pid: number
  readonly url: string
  readonly metricsUrl: string | undefined
  stop(): Promise<void>
}

/**
 * The load generator is thousands of players from eight loopback addresses: the per-address budgets that
 * protect a public server from one hostile address would refuse most of them, so the benchmark lifts them.
 */
const NO_ADDRESS_LIMITS = ['--max-connections-per-address', '0', '--upgrade-rate-per-address', '0', '--max-rooms-per-address', '0', '--max-held-per-address', '0', '--max-idle-rooms-per-address', '0']

/** How each server under test is started (one process tree per run). */
const SERVERS: Record<ServerName, (port: number, metricsPort: number, tickHz: number, extra: string[]) => { cmd: string[]; url: string; metricsUrl?: string }> = {
  tickwire: (port, metricsPort, tickHz, extra) => ({
    cmd: [join(root, 'dist/src/main.js'), '--port', String(port), '--metrics-port', String(metricsPort), '--tick-hz', String(tickHz), '--host', '127.0.0.1', ...NO_ADDRESS_LIMITS, ...extra],
    url: `ws://127.0.0.1:${port}/play`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
  }),
  'ws-json': (port, metricsPort, tickHz) => ({
    cmd: [join(root, 'dist/bench/peers/ws-json/server.js'), '--port', String(port), '--metrics-port', String(metricsPort), '--tick-hz', String(tickHz)],
    url: `ws://127.0.0.1:${port}/`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
  }),
  floor: (port, metricsPort, tickHz, extra) => ({
    cmd: [join(root, 'dist/bench/peers/floor/server.js'), '--port', String(port), '--metrics-port', String(metricsPort), '--tick-hz', String(tickHz), '--host', '127.0.0.1', ...extra],
    url: `ws://127.0.0.1:${port}/`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
  }),
  colyseus: (port, metricsPort, tickHz) => ({
    cmd: [join(root, 'bench/peers/colyseus/server.mjs'), '--port', String(port), '--metrics-port', String(metricsPort), '--tick-hz', String(tickHz)],
    url: `ws://127.0.0.1:${port}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
  }),
}


/** What is running now, so that Ctrl-C or a kill leaves no server or bot process behind. */
const live = new Set<{ stop(): Promise<void> }>()

/** Extra command-line options for tickwire (`--tickwire-args "--send-hz 15"`). */
let tickwireArgs: string[] = []

/** Where servers and bots run (taskset CPU lists); undefined: unpinned (a machine with one core). */
interface Pinning {
  readonly server: string | undefined
  readonly load: string | undefined
}
let pinning: Pinning = { server: undefined, load: undefined }

/** The floor's frame size: tickwire's mean STATE size in this invocation, else --frame-bytes (default 180). */
let floorFrameBytes = 180

/** Starts a server and waits until it accepts connections (its log says so, or its port answers). */
export async function startServer(name: ServerName, tickHz: number, extra: string[] = [], nodeArgs: string[] = []): Promise<Running> {
  const port = await freePort()
  const metricsPort = await freePort()
  const own = name === 'tickwire' ? [...serverWorkers(), ...tickwireArgs] : name === 'floor' ? ['--frame-bytes', String(floorFrameBytes)] : []
  const spec = SERVERS[name](port, metricsPort, tickHz, [...own, ...extra])
  // taskset execs node, so the child's pid is the server's (its CPU is read from /proc by pid).
  const argv = [...nodeArgs, ...spec.cmd]
  const child: ChildProcess =
    pinning.server !== undefined
      ? spawn('taskset', ['-c', pinning.server, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], cwd: root })
      : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: root })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  // tickwire: the supervisor's line, or a single process's (no worker field), in either log format; peers print `listening <port>`.
  const ready = () =>
    name === 'tickwire'
      ? out.split('\n').some((l) => /supervisor listening|tickwire listening port=/.test(l) || (l.includes('"msg":"tickwire listening"') && !l.includes('"worker":')))
      : /^listening \d+/m.test(out)
  const end = Date.now() + 30_000
  while (!ready()) {
    if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${out.slice(-2000)}`)
    if (Date.now() > end) {
      child.kill('SIGKILL') // never leave a server behind
      throw new Error(`${name} did not start: ${out.slice(-2000)}`)
    }
    await sleep(50)
  }
  await sleep(300) // a supervisor logs before its last worker; and let peers finish booting
  const running: Running = {
    pid: child.pid ?? 0,
    url: spec.url,
    metricsUrl: spec.metricsUrl,
    stop: () =>
      new Promise<void>((resolve) => {
        live.delete(running)
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
        setTimeout(() => child.kill('SIGKILL'), 15_000).unref()
      }),
  }
  live.add(running)
  return running
}

/** tickwire gets one worker per server CPU (else it would count the machine's cores, not its own). */
function serverWorkers(): string[] {
  return pinning.server !== undefined ? ['--workers', String(parseCpuList(pinning.server).length)] : []
}

interface Plan {
  readonly quick: boolean
  readonly capacitySteps: number[]
  readonly capacityRates: number[]
  readonly settleMs: number
  readonly windowMs: number
  readonly fixedPlayers: number
  readonly fixedMs: number
  readonly slowPlayers: number
  readonly slowPauseMs: number
  readonly slowEdgeMs: number
  readonly processes: number
}

const FULL: Plan = {
  quick: false,
  capacitySteps: [100, 250, 500, 1000, 1500, 2000, 3000, 4000, 6000],
  capacityRates: [30],
  settleMs: 2000,
  windowMs: 6000,
  // Scaled by the load CPUs in main(): one pinned bot core holds ~1,500-2,000 players at 30 Hz on a 2-core VM.
  fixedPlayers: 1000,
  fixedMs: 30_000,
  slowPlayers: 1000,
  slowPauseMs: 20_000,
  slowEdgeMs: 8000,
  processes: 0,
}

const QUICK: Plan = {
  quick: true,
  capacitySteps: [20, 40],
  capacityRates: [30],
  settleMs: 500,
  windowMs: 1500,
  fixedPlayers: 30,
  fixedMs: 2000,
  slowPlayers: 30,
  slowPauseMs: 2000,
  slowEdgeMs: 1500,
  processes: 1,
}

/** Bot processes: the plan's count, or one per load CPU (0). */
function botProcesses(plan: Plan): number {
  if (plan.processes > 0) return plan.processes
  return pinning.load !== undefined ? parseCpuList(pinning.load).length : 2
}

/** The capacity rule: tick p99 under half the budget, no skipped deltas, latency p99 under 2 tick intervals + 10 ms, 95% still connected, and a valid window. */
export function latencyLimitMs(tickHz: number): number {
  return 2000 / tickHz + 10
}

/** Why a capacity step fails the rule, or null when it passes. */
export function overLimit(w: WindowStats, asked: number, tickHz: number): string | null {
  const budgetMs = 1000 / tickHz
  if (w.invalid !== null) return w.invalid
  if (!w.scraped || !Number.isFinite(w.tickP99Ms)) return `no tick figures from the server's /metrics at ${w.players} players`
  if (w.players < 0.95 * asked) return `only ${w.players} of ${asked} players still connected (dropped: ${JSON.stringify(w.dropCodes)})`
  if (w.tickP99Ms >= budgetMs / 2) return `tick p99 ${w.tickP99Ms.toFixed(1)} ms >= half the budget (${(budgetMs / 2).toFixed(1)} ms) at ${w.players} players`
  if (w.skippedDeltas > 0) return `${w.skippedDeltas} deltas skipped at ${w.players} players`
  if (!(w.latencyMs.p99 < latencyLimitMs(tickHz))) return `latency p99 ${w.latencyMs.p99.toFixed(0)} ms >= ${latencyLimitMs(tickHz).toFixed(0)} ms (2 tick intervals + 10 ms) at ${w.players} players`
  return null
}

const log = (s: string) => process.stderr.write(s + '\n')

/** Steps measured past the first that breaks the capacity rule. */
const OVERLOAD_STEPS = 2

/** Bots connected per second: slow enough for every server's join path (Colyseus matchmakes over HTTP). */
const RAMP = 200

async function load(name: ServerName, srv: Running, tickHz: number, plan: Plan): Promise<LoadRun> {
  const run = await LoadRun.start({
    adapter: name,
    url: srv.url,
    metricsUrl: srv.metricsUrl,
    serverPid: srv.pid,
    tickHz,
    processes: botProcesses(plan),
    cpus: pinning.load,
    serverCpus: pinning.server,
    inputHz: 10,
    // The floor's frames are padding after a real header: nothing to check.
    checkEvery: name === 'floor' ? 0 : 20,
    // Colyseus runs each room on its own timers; its whole-process work per tick period is this histogram.
    tickMetric: name === 'colyseus' ? 'period_busy_seconds' : 'tick_duration_seconds',
  })
  const stopBots = run.stop.bind(run)
  const entry = {
    stop: async () => {
      live.delete(entry)
      await stopBots()
    },
  }
  live.add(entry)
  return Object.assign(run, { stop: entry.stop })
}

/** Scenario (i): add players step by step until a step breaks the capacity rule (see overLimit). */
async function capacity(name: ServerName, tickHz: number, plan: Plan): Promise<CapacityRun> {
  const srv = await startServer(name, tickHz)
  const steps: { players: number; window: WindowStats }[] = []
  let stop = `reached the last step (${plan.capacitySteps.at(-1)} players)`
  let capacity = 0
  let bounded = true
  let broken: string | null = null
  let past = 0
  const run = await load(name, srv, tickHz, plan)
  try {
    for (const target of plan.capacitySteps) {
      // Past the limit, the ramp goes on for OVERLOAD_STEPS more steps: what the server does overloaded
      // (latency, skips) is part of the comparison, and so is its CPU at the next players counts.
      if (broken !== null && past++ >= OVERLOAD_STEPS) break
      await run.add(target - run.asked, RAMP)
      const t = run.totals()
      if (t.failed > Math.max(5, 0.01 * run.asked)) {
        stop = `connections failing at ${target} (${t.failed} failed: ${t.failSamples[0] ?? '?'})`
        break
      }
      await sleep(plan.settleMs)
      const w = await run.window(plan.windowMs)
      steps.push({ players: target, window: w })
      log(
        `  ${name} ${tickHz} Hz: ${w.players} players: tick p99 ${w.tickP99Ms.toFixed(2)} ms, latency p99 ${w.latencyMs.p99.toFixed(1)} ms, ` +
          `${w.cpuUsPerPlayerTick.toFixed(2)} us/player-tick (user ${w.cpuUserUsPerPlayerTick.toFixed(2)}), bots ${w.botUsPerFrame.toFixed(2)} us/frame, load CPUs ${(100 * w.loadCpuBusy).toFixed(0)}% busy, others on server CPUs ${(100 * w.serverCpuOthers).toFixed(0)}%${w.invalid !== null ? ' INVALID' : ''}`,
      )
      const why = overLimit(w, target, tickHz)
      if (w.invalid !== null) {
        // A saturated load generator (or a shared server CPU) says nothing about the server: stop; if the
        // limit was not found before it, the capacity is only a lower bound.
        if (broken === null) {
          stop = why ?? w.invalid
          bounded = false
        }
        break
      }
      if (why !== null && broken === null) broken = stop = why
      if (why === null && broken === null) capacity = target
      if (w.players < 0.5 * target) break // most bots gone: nothing more to learn
    }
  } finally {
    await run.stop()
    await srv.stop()
  }
  if (broken === null && bounded && steps.length === plan.capacitySteps.length) bounded = false // passed the last step
  return { server: name, tickHz, steps, stop, capacity, atLeast: !bounded }
}

/**
 * Scenario (ii): a fixed number of players at 30 Hz. With `profileDir`, a
 * second, shorter run under `node --cpu-prof` follows (not measured: the
 * profiler's own cost stays out of the figures).
 */
async function fixed(name: ServerName, plan: Plan, profileDir?: string): Promise<WindowStats> {
  const w = await fixedRun(name, plan, plan.fixedMs)
  if (profileDir) {
    log(`  ${name}: profiling a ${plan.fixedPlayers}-player run with --cpu-prof`)
    await fixedRun(name, plan, 15_000, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`])
  }
  return w
}

async function fixedRun(name: ServerName, plan: Plan, ms: number, nodeArgs: string[] = []): Promise<WindowStats> {
  const srv = await startServer(name, 30, [], nodeArgs)
  const run = await load(name, srv, 30, plan)
  try {
    await run.add(plan.fixedPlayers, RAMP)
    await sleep(plan.settleMs)
    const w = await run.window(ms)
    log(`  ${name} fixed: ${w.players} players, ${w.bytesPerPlayerSec.toFixed(0)} B/s, ${w.cpuUsPerPlayerTick.toFixed(1)} us/player-tick, latency p99 ${w.latencyMs.p99.toFixed(1)} ms`)
    return w
  } finally {
    await run.stop()
    await srv.stop()
  }
}

/** Scenario (iii): 10% of players stop reading for a while; what did the other 90% see? */
async function slow(name: ServerName, plan: Plan): Promise<{ before: WindowStats; during: WindowStats; after: WindowStats }> {
  const srv = await startServer(name, 30)
  const run = await load(name, srv, 30, plan)
  try {
    await run.add(plan.slowPlayers, RAMP)
    await sleep(plan.settleMs)
    const before = await run.window(plan.slowEdgeMs)
    run.pause(0.1)
    const during = await run.window(plan.slowPauseMs)
    run.pause(0)
    const after = await run.window(plan.slowEdgeMs)
    log(`  ${name} slow readers: others' latency p99 ${before.latencyUnpausedMs.p99.toFixed(1)} -> ${during.latencyUnpausedMs.p99.toFixed(1)} -> ${after.latencyUnpausedMs.p99.toFixed(1)} ms; dropped ${during.dropped + after.dropped}`)
    return { before, during, after }
  } finally {
    await run.stop()
    await srv.stop()
  }
}

/** tickwire's mean STATE frame size in this run (bytes over messages of its windows), else `fallback`. */
function frameBytesOf(r: BenchResult, fallback: number): number {
  const ws = [...r.capacity.filter((c) => c.server === 'tickwire').flatMap((c) => c.steps.map((s) => s.window)), ...(r.fixed.tickwire ? [r.fixed.tickwire] : [])]
  const sizes = ws.map((w) => w.bytesPerPlayerSec / w.msgsPerPlayerSec).filter((x) => Number.isFinite(x) && x > 0)
  if (sizes.length === 0) return fallback
  return Math.max(18, Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length))
}

/** Top self-time functions of the CPU profiles in `dir`. */
function profileSummary(dir: string): { file: string; top: { fn: string; ms: number; pct: number }[] }[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((file) => {
      const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
        nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]
        samples: number[]
        timeDeltas: number[]
      }
      const byId = new Map(p.nodes.map((n) => [n.id, n]))
      const self = new Map<string, number>()
      let totalUs = 0
      p.samples.forEach((id, i) => {
        const n = byId.get(id)
        const dt = p.timeDeltas[i] ?? 0
        totalUs += dt
        if (!n) return
        const where = n.callFrame.url ? `${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}` : ''
        const key = `${n.callFrame.functionName || '(anonymous)'} ${where}`.trim()
        self.set(key, (self.get(key) ?? 0) + dt)
      })
      const top = [...self]
        .filter(([k]) => k !== '(idle)')
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([fn, us]) => ({ fn, ms: us / 1000, pct: (100 * us) / Math.max(1, totalUs) }))
      return { file, top }
    })
}

export async function main(argv: string[]): Promise<void> {
  // --render FILE.json: write the report again from a saved result (e.g. after adding an analysis).
  const ri = argv.indexOf('--render')
  if (ri >= 0) {
    const file = argv[ri + 1] as string
    const result = JSON.parse(readFileSync(file, 'utf8')) as BenchResult
    const base = file.replace(/\.json$/, '').split('/').pop() as string
    const dir = file.slice(0, file.length - base.length - '.json'.length)
    const { md, svgs } = renderReport(result, base)
    for (const [f, svg] of Object.entries(svgs)) writeFileSync(join(dir, f), svg)
    writeFileSync(join(dir, `${base}.md`), md)
    log(`wrote ${join(dir, base)}.md`)
    return
  }
  const quick = argv.includes('--quick')
  let plan: Plan = quick ? QUICK : FULL
  const pick = (flag: string, all: string[]) => {
    const i = argv.indexOf(flag)
    return i >= 0 ? (argv[i + 1] ?? '').split(',').filter((x) => all.includes(x)) : all
  }
  // tickwire first: the floor sends frames of the size tickwire sent.
  const servers = pick('--servers', ['tickwire', 'floor', 'ws-json', 'colyseus']) as ServerName[]
  servers.sort((a, b) => (a === 'tickwire' ? -1 : b === 'tickwire' ? 1 : 0))
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name)
    if (i < 0) return undefined
    const v = argv[i + 1]
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`)
    return v
  }
  // Default on a machine with 2+ cores: the server on the first half of them, the load generator on the rest.
  const cores = availableParallelism()
  const half = Math.max(1, Math.floor(cores / 2))
  const defServer = cores >= 2 ? (half === 1 ? '0' : `0-${half - 1}`) : undefined
  const defLoad = cores >= 2 ? (cores - 1 === half ? String(half) : `${half}-${cores - 1}`) : undefined
  pinning = { server: flag('--server-cpus') ?? defServer, load: flag('--load-cpus') ?? defLoad }
  for (const v of Object.values(pinning)) if (v !== undefined) parseCpuList(v) // throws naming the bad list
  if (pinning.server !== undefined && pinning.load !== undefined) {
    const a = new Set(parseCpuList(pinning.server))
    const shared = parseCpuList(pinning.load).filter((c) => a.has(c))
    if (shared.length > 0) throw new Error(`--server-cpus ${pinning.server} and --load-cpus ${pinning.load} share CPU ${shared.join(',')}: the load generator would compete with the server`)
  }
  const fb = flag('--frame-bytes')
  if (fb !== undefined) floorFrameBytes = Number(fb)
  // Fixed and slow-reader scenarios: 1,000 players per load CPU, so the load generator stays valid as the machine grows.
  if (!quick && pinning.load !== undefined) {
    const k = parseCpuList(pinning.load).length
    plan = { ...plan, fixedPlayers: 1000 * k, slowPlayers: 1000 * k }
  }
  const scenarios = pick('--scenarios', ['capacity', 'fixed', 'slow'])
  const outDir = flag('--out') ?? join(root, 'bench/results')
  const ta = argv.indexOf('--tickwire-args')
  if (ta >= 0) tickwireArgs = (argv[ta + 1] ?? '').split(' ').filter((x) => x !== '')
  const tg = flag('--tag')
  const tag = tg !== undefined ? `-${tg}` : ''
  const m: Machine = machine()
  const date = new Date().toISOString().slice(0, 10)
  const base = `${date}-${m.hostname}${tag}${quick ? '-quick' : ''}`
  mkdirSync(outDir, { recursive: true })
  const profileDir = join(outDir, `${base}-profiles`)
  const result: BenchResult = {
    date: new Date().toISOString(),
    machine: m,
    loadAverageBefore: loadAverage(),
    command: `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`,
    pinning: { server: pinning.server ?? 'unpinned', load: pinning.load ?? 'unpinned' },
    quick,
    servers,
    capacity: [],
    fixed: {},
    slow: {},
    profiles: [],
    notes: [],
  }
  log(`tickwire bench on ${m.cpuModel} (${m.cores} cores), Node ${m.node}; servers: ${servers.join(', ')}`)
  for (const s of servers) {
    if (s === 'floor') {
      floorFrameBytes = frameBytesOf(result, floorFrameBytes)
      result.floorFrameBytes = floorFrameBytes
      log(`  floor: frames of ${floorFrameBytes} B`)
    }
    try {
      if (scenarios.includes('capacity')) for (const hz of plan.capacityRates) result.capacity.push(await capacity(s, hz, plan))
      if (scenarios.includes('fixed')) result.fixed[s] = await fixed(s, plan, s === 'tickwire' && !quick ? profileDir : undefined)
      if (scenarios.includes('slow') && s !== 'floor') result.slow[s] = await slow(s, plan)
    } catch (err) {
      result.notes.push(`${s}: ${(err as Error).message}`)
      log(`  ${s} failed: ${(err as Error).message}`)
    }
  }
  result.profiles = profileSummary(profileDir)
  result.loadAverageAfter = loadAverage()
  const { md, svgs } = renderReport(result, base)
  writeFileSync(join(outDir, `${base}.json`), JSON.stringify(result, null, 2) + '\n')
  for (const [file, svg] of Object.entries(svgs)) writeFileSync(join(outDir, file), svg)
  writeFileSync(join(outDir, `${base}.md`), md)
  log(`wrote ${join(outDir, base)}.md (+ .json, ${Object.keys(svgs).length} charts)`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping the servers and bots under test`)
      void Promise.all([...live].map((x) => x.stop())).then(() => process.exit(130))
    })
  }
  main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`)
    process.exit(1)
  })
}
