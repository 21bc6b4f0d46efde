#!/usr/bin/env node
/**
 * Memory benchmark: where tickwire's memory goes under load and what it keeps
 * after the load has gone (issue 9, item 10).
 *
 * Run: `npm run bench:memory -- [options]` (builds, then runs dist/bench/memory.js).
 *
 * Starts the CLI as a child process (`--workers 1`, per-address limits off,
 * `--metrics-cache 0`) and runs, in phases:
 *
 *   1. idle: two seconds after start;
 *   2. players: N bots connected (quick play, acking every STATE as the load
 *      generator's bots do, from 127.0.0.2-9 through ws's `localAddress`), held a few seconds;
 *   3. left: every bot closed politely, the server back to 0 players and 0 rooms
 *      (phases 2-3 repeated `--rounds` times);
 *   4. cycles: K connect / first STATE / close cycles (L at a time), then back to 0.
 *
 * After each phase it reads the server's RSS and its split (/proc/<pid>/smaps_rollup:
 * anonymous vs file-backed; /proc/<pid>/smaps: the brk `[heap]`, where the main
 * thread's malloc lives, which is where uWS's C++ allocations go) and V8's
 * heap from the server's /metrics (prom-client's default metrics). Optional
 * probes per phase, each a row of its own:
 *
 *   --gc            a full V8 GC through the inspector protocol (the server runs with
 *                   `--inspect=127.0.0.1:0`; that also gives process.memoryUsage().arrayBuffers);
 *   --malloc-stats  glibc's malloc_stats() (through gdb): bytes malloc holds from the
 *                   system vs bytes in use, so free-but-kept allocator memory shows;
 *   --trim          glibc's malloc_trim(0) (through gdb): what RSS comes back if the
 *                   allocator returns its free pages.
 *
 * Experiments: `--env MALLOC_ARENA_MAX=2` (repeatable) sets the server's
 * environment; `--node-arg --max-semi-space-size=4` (repeatable) a Node/V8 flag;
 * `--server-arg ...` a tickwire flag. Output: a table on stdout, and with
 * `--json FILE` the samples as JSON.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { isEntry } from '../src/entry.js'
import { freePort } from '../src/net/ports.js'
import { formatTable, machine } from './lib/report.js'
import type { Bot, BotEvents } from './load/adapter.js'
import { scrape, type Samples } from './load/scrape.js'
import { tickwireAdapter } from './load/tickwire.js'

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url))
const MiB = 1024 * 1024

interface Options {
  players: number
  rounds: number
  cycles: number
  lanes: number
  addresses: number
  concurrency: number
  holdSeconds: number
  settleSeconds: number
  gc: boolean
  trim: boolean
  mallocStats: boolean
  serverLog: boolean
  env: Record<string, string>
  nodeArgs: string[]
  serverArgs: string[]
  json: string
}

const HELP = `usage: node dist/bench/memory.js [options]
  --players N        bots connected in phase 2 (default 8000; 0 skips phases 2-3)
  --rounds R         phases 2-3 repeated R times (default 1): retained memory should not grow per round
  --cycles K         connect/disconnect cycles in phase 4 (default 20000; 0 skips it; at most 1000000)
  --lanes L          cycles in flight at once (default 50)
  --addresses A      source addresses 127.0.0.2 .. 127.0.0.(A+1) (default 8)
  --concurrency C    connects in flight in phase 2 (default 200)
  --hold S           seconds the N players stay connected before the sample (default 5)
  --settle S         seconds after the server is empty before the sample (default 5)
  --gc               also sample after a full V8 GC (inspector protocol)
  --malloc-stats     also read glibc malloc_stats() (gdb)
  --trim             also sample after glibc malloc_trim(0) (gdb)
  --server-log       copy the server's stderr (its log) to this stderr
  --env K=V          server environment variable (repeatable), e.g. MALLOC_ARENA_MAX=2
  --node-arg FLAG    Node/V8 flag for the server (repeatable), e.g. --max-semi-space-size=4
  --server-arg ARG   extra tickwire argument (repeatable; a flag and its value are two)
  --json FILE        also write the samples as JSON
`

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    players: 8000,
    rounds: 1,
    cycles: 20000,
    lanes: 50,
    addresses: 8,
    concurrency: 200,
    holdSeconds: 5,
    settleSeconds: 5,
    gc: false,
    trim: false,
    mallocStats: false,
    serverLog: false,
    env: {},
    nodeArgs: [],
    serverArgs: [],
    json: '',
  }
  const int = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag}: got ${JSON.stringify(v)}, expected an integer from ${min} to ${max}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    const next = () => {
      const v = argv[++i]
      if (v === undefined) throw new UsageError(`${a} needs a value`)
      return v
    }
    switch (a) {
      case '--players': o.players = int(a, next(), 0, 100_000); break
      case '--rounds': o.rounds = int(a, next(), 1, 100); break
      case '--cycles': o.cycles = int(a, next(), 0, 1_000_000); break
      case '--lanes': o.lanes = int(a, next(), 1, 1000); break
      case '--addresses': o.addresses = int(a, next(), 1, 200); break
      case '--concurrency': o.concurrency = int(a, next(), 1, 5000); break
      case '--hold': o.holdSeconds = int(a, next(), 0, 3600); break
      case '--settle': o.settleSeconds = int(a, next(), 0, 3600); break
      case '--gc': o.gc = true; break
      case '--trim': o.trim = true; break
      case '--malloc-stats': o.mallocStats = true; break
      case '--server-log': o.serverLog = true; break
      case '--env': {
        const kv = next()
        const eq = kv.indexOf('=')
        if (eq <= 0) throw new UsageError(`--env: expected K=V, got ${JSON.stringify(kv)}`)
        o.env[kv.slice(0, eq)] = kv.slice(eq + 1)
        break
      }
      case '--node-arg': o.nodeArgs.push(next()); break
      case '--server-arg': o.serverArgs.push(next()); break
      case '--json': o.json = next(); break
      case '--help': case '-h': throw new UsageError('')
      default: throw new UsageError(`unknown option ${a}`)
    }
  }
  return o
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** The server under test: the CLI in a child process, its stderr kept (the log, and malloc_stats output). */
class Server {
  readonly child: ChildProcess
  port = 0
  inspectorUrl = ''
  stderr = ''
  readonly metricsUrl: string
  #inspector: Inspector | null = null

  constructor(opts: Options, metricsPort: number) {
    const args = [
      ...opts.nodeArgs,
      ...(opts.gc ? ['--inspect=127.0.0.1:0'] : []),
      MAIN,
      '--workers', '1',
      '--port', '0',
      '--host', '127.0.0.1',
      '--metrics-port', String(metricsPort),
      '--metrics-cache', '0',
      // Many players from a few loopback addresses: the per-address budgets would refuse them.
      '--max-connections-per-address', '0',
      '--upgrade-rate-per-address', '0',
      '--max-rooms-per-address', '0',
      '--max-held-per-address', '0',
      ...opts.serverArgs,
    ]
    this.metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`
    this.child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } })
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString()
      if (opts.serverLog) process.stderr.write(d)
    })
  }

  get pid(): number {
    return this.child.pid as number
  }

  async ready(needInspector: boolean): Promise<void> {
    const end = Date.now() + 20_000
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`server exited ${this.child.exitCode}: ${this.stderr}`)
      const line = this.stderr.split('\n').find((l) => l.includes('tickwire listening'))
      const insp = /Debugger listening on (ws:\/\/\S+)/.exec(this.stderr)?.[1]
      if (line && (!needInspector || insp)) {
        this.port = Number(/(?: port=|"port":)(\d+)/.exec(line)?.[1]) // either log format
        this.inspectorUrl = insp ?? ''
        return
      }
      if (Date.now() > end) throw new Error(`server not listening after 20 s: ${this.stderr}`)
      await sleep(50)
    }
  }

  async inspector(): Promise<Inspector> {
    this.#inspector ??= await Inspector.open(this.inspectorUrl)
    return this.#inspector
  }

  /**
   * Runs gdb against the server with these commands (the process is paused meanwhile); returns gdb's stdout.
   * gdb's exit status is not checked: on this VM it exits 1 after a call ("Couldn't write extended state
   * status"), the call having run; callers check its output instead.
   */
  gdb(commands: readonly string[]): string {
    const r = spawnSync('gdb', ['-p', String(this.pid), '-batch', '-nx', ...commands.flatMap((c) => ['-ex', c])], { encoding: 'utf8', timeout: 60_000 })
    if (r.error) throw new Error(`gdb: ${r.error.message}`)
    return r.stdout
  }

  async stop(): Promise<void> {
    this.#inspector?.close()
    if (this.child.exitCode !== null) return
    const exited = new Promise((r) => this.child.once('exit', r))
    this.child.kill('SIGTERM')
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(t)
  }
}

/** A minimal Chrome DevTools protocol client (the server's Node inspector). */
class Inspector {
  #next = 1
  readonly #waits = new Map<number, (r: { result?: unknown; error?: { message: string } }) => void>()
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { id?: number; result?: unknown; error?: { message: string } }
      if (m.id !== undefined) this.#waits.get(m.id)?.(m)
    })
  }

  static open(url: string): Promise<Inspector> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url)
      ws.once('open', () => resolve(new Inspector(ws)))
      ws.once('error', reject)
    })
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`inspector ${method}: no answer in 60 s`)), 60_000)
      this.#waits.set(id, (m) => {
        clearTimeout(t)
        this.#waits.delete(id)
        if (m.error) reject(new Error(`inspector ${method}: ${m.error.message}`))
        else resolve(m.result)
      })
      this.ws.send(JSON.stringify({ id, method, params }))
    })
  }

  async memoryUsage(): Promise<NodeJS.MemoryUsage> {
    const r = (await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result: { value: string }
    }
    return JSON.parse(r.result.value) as NodeJS.MemoryUsage
  }

  close(): void {
    this.ws.close()
  }
}

/** One reading of the server's memory. Bytes throughout. */
interface Sample {
  readonly label: string
  readonly rss: number
  readonly anon: number
  readonly file: number
  /** Resident bytes of the brk heap: glibc's main arena (the main thread's malloc: uWS, Node's C++). */
  readonly brkHeap: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  /** From process.memoryUsage() through the inspector; NaN without --gc. */
  readonly arrayBuffers: number
  /** glibc malloc_stats() "Total (incl. mmap)": bytes taken from the system, and in use; NaN without --malloc-stats. */
  readonly mallocSystem: number
  readonly mallocInUse: number
  readonly players: number
  readonly rooms: number
}

/** `Key: N kB` lines of a /proc smaps file, in bytes. */
function kbField(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)
  return m ? Number(m[1]) * 1024 : NaN
}

/** Resident bytes of the `[heap]` mapping (the brk area) in /proc/<pid>/smaps. */
function brkHeapRss(pid: number): number {
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8')
  const i = smaps.search(/ \[heap\]\n/)
  if (i < 0) return 0
  return kbField(smaps.slice(i), 'Rss')
}

async function sample(server: Server, opts: Options, label: string): Promise<Sample> {
  const m: Samples = await scrape(server.metricsUrl, 30_000)
  const rollup = readFileSync(`/proc/${server.pid}/smaps_rollup`, 'utf8')
  const rss = kbField(rollup, 'Rss')
  const anon = kbField(rollup, 'Anonymous')
  let arrayBuffers = NaN
  if (opts.gc) arrayBuffers = (await (await server.inspector()).memoryUsage()).arrayBuffers
  let mallocSystem = NaN
  let mallocInUse = NaN
  if (opts.mallocStats) ({ system: mallocSystem, inUse: mallocInUse } = await mallocStats(server))
  return {
    label,
    rss,
    anon,
    file: rss - anon,
    brkHeap: brkHeapRss(server.pid),
    heapUsed: m.get('nodejs_heap_size_used_bytes') ?? NaN,
    heapTotal: m.get('nodejs_heap_size_total_bytes') ?? NaN,
    external: m.get('nodejs_external_memory_bytes') ?? NaN,
    arrayBuffers,
    mallocSystem,
    mallocInUse,
    players: m.get('tickwire_players') ?? NaN,
    rooms: m.get('tickwire_rooms') ?? NaN,
  }
}

/**
 * Calls malloc_stats() in the server, after the gdb commands `before` if any (it prints to the
 * server's stderr), and reads its totals. Its output also proves that gdb's calls ran.
 */
async function mallocStats(server: Server, before: readonly string[] = []): Promise<{ system: number; inUse: number }> {
  const from = server.stderr.length
  server.gdb([...before, 'call (void)malloc_stats()'])
  // The output reaches us through the server's stderr pipe, a moment later.
  for (let i = 0; i < 100 && !server.stderr.includes('max mmap bytes', from); i++) await sleep(20)
  const out = server.stderr.slice(from)
  const total = out.slice(out.indexOf('Total (incl. mmap)'))
  const system = /system bytes\s*=\s*(\d+)/.exec(total)?.[1]
  const inUse = /in use bytes\s*=\s*(\d+)/.exec(total)?.[1]
  if (system === undefined || inUse === undefined) throw new Error(`malloc_stats output not found in the server's stderr: ${JSON.stringify(out.slice(0, 500))}`)
  return { system: Number(system), inUse: Number(inUse) }
}

/** The phase's sample, and the probes' samples after it. */
async function measure(server: Server, opts: Options, phase: string, out: Sample[]): Promise<void> {
  out.push(await sample(server, opts, phase))
  print(out.at(-1) as Sample)
  if (opts.gc) {
    const inspector = await server.inspector()
    const t0 = performance.now()
    await inspector.call('HeapProfiler.collectGarbage')
    // The round trip bounds the pause: the server does nothing else meanwhile.
    const ms = performance.now() - t0
    await sleep(500)
    out.push(await sample(server, opts, `${phase}, after gc (${ms.toFixed(0)} ms)`))
    print(out.at(-1) as Sample)
  }
  if (opts.trim) {
    await mallocStats(server, ['call (int)malloc_trim(0)'])
    await sleep(200)
    out.push(await sample(server, opts, `${phase}, after trim`))
    print(out.at(-1) as Sample)
  }
}

function print(s: Sample): void {
  console.log(`  ${s.label}: RSS ${mib(s.rss)} MiB, heap used ${mib(s.heapUsed)} MiB, players ${s.players}, rooms ${s.rooms}`)
}

const mib = (b: number) => (Number.isNaN(b) ? '-' : (b / MiB).toFixed(1))

const quiet: BotEvents = { state() {}, other() {}, error() {}, close() {} }

function sourceAddress(opts: Options, i: number): string {
  return `127.0.0.${2 + (i % opts.addresses)}`
}

/** Connects `n` bots, `concurrency` at a time; each acks every STATE until closed. */
async function connectPlayers(server: Server, opts: Options): Promise<Bot[]> {
  const bots: Bot[] = []
  const url = `ws://127.0.0.1:${server.port}/play`
  let started = 0
  let failed = 0
  const lane = async () => {
    while (started < opts.players) {
      const i = started++
      try {
        bots.push(await tickwireAdapter.connect({ url, room: null, name: `m${i}`, localAddress: sourceAddress(opts, i), check: false }, quiet))
      } catch (err) {
        if (++failed > 10) throw new Error(`connects failing: ${(err as Error).message}`)
      }
      if (bots.length % 1000 === 0) process.stdout.write(`\r  connected ${bots.length}/${opts.players}`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.players) }, lane))
  process.stdout.write('\n')
  if (failed > 0) console.log(`  ${failed} connects failed`)
  return bots
}

/** `cycles` times: connect, wait for the first STATE, close politely; `lanes` at a time. */
async function cycle(server: Server, opts: Options): Promise<void> {
  const url = `ws://127.0.0.1:${server.port}/play`
  let started = 0
  let done = 0
  let failed = 0
  const lane = async () => {
    while (started < opts.cycles) {
      const i = started++
      try {
        const bot = await tickwireAdapter.connect({ url, room: null, name: `c${i}`, localAddress: sourceAddress(opts, i), check: false }, quiet)
        bot.close()
      } catch (err) {
        if (++failed > 20) throw new Error(`cycles failing: ${(err as Error).message}`)
      }
      if (++done % 1000 === 0) process.stdout.write(`\r  cycles ${done}/${opts.cycles}`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.lanes, opts.cycles) }, lane))
  process.stdout.write('\n')
  if (failed > 0) console.log(`  ${failed} cycles failed`)
}

/** Waits until the server reports no players and no rooms (closes are asynchronous). */
async function waitEmpty(server: Server): Promise<void> {
  const end = Date.now() + 60_000
  for (;;) {
    const m = await scrape(server.metricsUrl, 30_000)
    if (m.get('tickwire_players') === 0 && m.get('tickwire_rooms') === 0) return
    if (Date.now() > end) throw new Error(`server not empty after 60 s: ${m.get('tickwire_players')} players, ${m.get('tickwire_rooms')} rooms`)
    await sleep(200)
  }
}

function table(samples: readonly Sample[], opts: Options): string {
  const cols: [string, (s: Sample) => string][] = [
    ['phase', (s) => s.label],
    ['RSS', (s) => mib(s.rss)],
    ['anon', (s) => mib(s.anon)],
    ['file', (s) => mib(s.file)],
    ['[heap]', (s) => mib(s.brkHeap)],
    ['heapUsed', (s) => mib(s.heapUsed)],
    ['heapTotal', (s) => mib(s.heapTotal)],
    ['external', (s) => mib(s.external)],
  ]
  if (opts.gc) cols.push(['arrayBuffers', (s) => mib(s.arrayBuffers)])
  if (opts.mallocStats) cols.push(['malloc sys', (s) => mib(s.mallocSystem)], ['malloc used', (s) => mib(s.mallocInUse)])
  return formatTable([cols.map((c) => c[0]), ...samples.map((s) => cols.map((c) => c[1](s)))])
}

async function run(opts: Options): Promise<void> {
  const host = machine()
  console.log(`memory benchmark: ${host.cpuModel}, ${host.cores} cores, Node ${host.node}, ${host.os}`)
  const extra = [...Object.entries(opts.env).map(([k, v]) => `${k}=${v}`), ...opts.nodeArgs, ...opts.serverArgs]
  console.log(`server: --workers 1${extra.length ? ' with ' + extra.join(' ') : ''}; ${opts.players} players, ${opts.cycles} cycles (${opts.lanes} at a time), from ${opts.addresses} source addresses`)
  const server = new Server(opts, await freePort())
  const stopOnSignal = () => void server.stop().then(() => process.exit(130))
  process.once('SIGINT', stopOnSignal)
  process.once('SIGTERM', stopOnSignal)
  const samples: Sample[] = []
  try {
    await server.ready(opts.gc)
    await sleep(2000)
    await measure(server, opts, 'idle', samples)
    for (let round = 1; opts.players > 0 && round <= opts.rounds; round++) {
      const suffix = opts.rounds > 1 ? ` (${round})` : ''
      const bots = await connectPlayers(server, opts)
      await sleep(opts.holdSeconds * 1000)
      await measure(server, opts, `${bots.length} players${suffix}`, samples)
      for (const b of bots) b.close()
      await waitEmpty(server)
      await sleep(opts.settleSeconds * 1000)
      await measure(server, opts, `all left${suffix}`, samples)
    }
    if (opts.cycles > 0) {
      await cycle(server, opts)
      await waitEmpty(server)
      await sleep(opts.settleSeconds * 1000)
      await measure(server, opts, `${opts.cycles} cycles`, samples)
    }
  } finally {
    await server.stop()
    process.off('SIGINT', stopOnSignal)
    process.off('SIGTERM', stopOnSignal)
  }
  console.log('\nMiB. RSS = anon + file (smaps_rollup); [heap]: resident brk heap (glibc main arena);')
  console.log('heapUsed / heapTotal / external: V8, from /metrics (nodejs_heap_size_*_bytes, nodejs_external_memory_bytes).\n')
  console.log(table(samples, opts))
  if (opts.json) {
    writeFileSync(opts.json, JSON.stringify({ benchmark: 'memory', date: new Date().toISOString(), machine: host, options: opts, samples }, null, 2) + '\n')
    console.log(`\nresults: ${opts.json}`)
  }
}


if (isEntry(import.meta.url)) {
  let opts: Options
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write((err.message ? `memory: ${err.message}\n` : '') + HELP)
    process.exit(err.message ? 2 : 0)
  }
  run(opts).then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`memory: ${err.stack ?? err.message}\n`)
      process.exit(1)
    },
  )
}
