/**
 * Memory after load (issue 9, item 10): connections that come and go leave
 * nothing behind. A child process started with --expose-gc runs tickwire
 * in-process (dist/, so build first); real ws clients connect from several
 * loopback addresses, half into quick play and half each into a named room
 * of its own (so rooms are created and disposed all along), wait for their
 * first STATE and leave: most politely, every third by cutting TCP, so its
 * seat is held for the resume window and then released. Afterwards, with the hold expired and a full GC, the
 * server's tables are empty and V8's heap and ArrayBuffers are back near the
 * warmed-up baseline. A per-connection leak of even a kilobyte shows: 2,000
 * cycles would add 2 MB. RSS is not checked: glibc keeps freed memory for
 * reuse (bench/memory.ts measures that).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import t from 'tap'
import { WebSocket } from 'ws'
import { stateHeader } from '../bench/load/tickwire.js'

const MAIN = new URL('../dist/src/main.js', import.meta.url).href
const LOG = new URL('../dist/src/log.js', import.meta.url).href

const WARMUP_CYCLES = 300
const CYCLES = 3000
const LANES = 20
const ADDRESSES = 8
const RESUME_WINDOW_S = 1
const MiB = 1024 * 1024
/** Growth allowed after a full GC: compiled code, inline caches and metric label sets settle in the first cycles, not per connection. */
const HEAP_MARGIN = 1 * MiB
const ARRAY_BUFFER_MARGIN = 1 * MiB

/** What the child reports after two full GCs. */
interface Report {
  readonly heapUsed: number
  readonly external: number
  readonly arrayBuffers: number
  readonly rss: number
  readonly players: number
  readonly rooms: number
  readonly roomIds: number
  readonly connections: number
  readonly held: number
}

const CHILD = `
import { start, defaultConfig } from ${JSON.stringify(MAIN)}
import { createLogger } from ${JSON.stringify(LOG)}
const tw = await start(defaultConfig({
  port: 0, metricsPort: 0, host: '127.0.0.1', seed: 42,
  resumeWindow: ${RESUME_WINDOW_S},
  maxConnectionsPerAddress: 0, upgradeRatePerAddress: 0, maxRoomsPerAddress: 0,
}), { log: createLogger('error', () => {}) })
process.on('message', async (m) => {
  if (m === 'report') {
    globalThis.gc(); globalThis.gc()
    const mu = process.memoryUsage()
    process.send({
      heapUsed: mu.heapUsed, external: mu.external, arrayBuffers: mu.arrayBuffers, rss: mu.rss,
      players: tw.rooms.players, rooms: tw.rooms.list.length, roomIds: tw.rooms.byId.size,
      connections: tw.server.connections, held: tw.server.held,
    })
  } else if (m === 'stop') {
    await tw.stop()
    process.exit(0)
  }
})
process.send({ port: tw.port })
`

class Child {
  readonly proc: ChildProcess
  stderr = ''
  #next: ((m: unknown) => void) | null = null

  constructor() {
    this.proc = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    this.proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()))
    this.proc.on('message', (m) => this.#next?.(m))
  }

  /** The next IPC message, after sending `send` if given. */
  message<T>(send?: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`child gave no answer in 20 s: ${this.stderr}`)), 20_000)
      this.#next = (m) => {
        clearTimeout(t)
        this.#next = null
        resolve(m as T)
      }
      if (send !== undefined) this.proc.send(send)
    })
  }
}

/** One player: connects, waits for its first STATE (seated and ticked), then leaves politely or by cutting TCP. */
function cycle(url: string, localAddress: string, cut: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false })
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error('no STATE within 10 s'))
    }, 10_000)
    ws.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    ws.on('message', (data: Buffer) => {
      if (stateHeader(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) === null) return
      clearTimeout(timer)
      if (cut) {
        ;(ws as unknown as { _socket: { destroy(): void } })._socket.destroy()
        resolve()
      } else {
        ws.once('close', () => resolve())
        ws.close()
      }
    })
  })
}

/** `n` cycles, `LANES` at a time, from 127.0.0.2 .. 127.0.0.(ADDRESSES + 1). */
async function cycles(url: string, n: number): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < n) {
      const i = next++
      await cycle(i % 2 === 1 ? `${url}?room=m${i}` : url, `127.0.0.${2 + (i % ADDRESSES)}`, i % 3 === 2)
    }
  }
  await Promise.all(Array.from({ length: LANES }, lane))
}

/** Reports until the server's tables are empty (closes and the resume window's expiry are asynchronous). */
async function quiet(child: Child): Promise<Report> {
  let r = await child.message<Report>('report')
  const end = Date.now() + 15_000
  while (r.players + r.rooms + r.roomIds + r.connections + r.held > 0 && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 250))
    r = await child.message<Report>('report')
  }
  return r
}

t.test(`${CYCLES} connect/disconnect cycles leave empty tables and the heap near its baseline`, async (t) => {
  const child = new Child()
  t.teardown(() => {
    if (child.proc.exitCode === null) child.proc.kill('SIGKILL')
  })
  const { port } = await child.message<{ port: number }>()
  const url = `ws://127.0.0.1:${port}/play`

  // Warm-up: the first connections compile code and create lazily built state; measure after that.
  await cycles(url, WARMUP_CYCLES)
  const base = await quiet(child)
  t.same([base.players, base.rooms, base.connections, base.held], [0, 0, 0, 0], 'empty after the warm-up')

  const t0 = Date.now()
  await cycles(url, CYCLES)
  const after = await quiet(child)
  t.comment(`${CYCLES} cycles in ${Date.now() - t0} ms`)
  const mib = (b: number) => (b / MiB).toFixed(2)
  t.comment(
    `after gc: heapUsed ${mib(base.heapUsed)} -> ${mib(after.heapUsed)} MiB, arrayBuffers ${mib(base.arrayBuffers)} -> ${mib(after.arrayBuffers)} MiB,` +
      ` external ${mib(base.external)} -> ${mib(after.external)} MiB, rss ${mib(base.rss)} -> ${mib(after.rss)} MiB`,
  )
  t.same(
    { players: after.players, rooms: after.rooms, roomIds: after.roomIds, connections: after.connections, held: after.held },
    { players: 0, rooms: 0, roomIds: 0, connections: 0, held: 0 },
    "the server's tables are empty: no connection, held seat or room outlives its players",
  )
  t.ok(after.heapUsed - base.heapUsed < HEAP_MARGIN, `V8 heap used grew ${mib(after.heapUsed - base.heapUsed)} MiB (< ${mib(HEAP_MARGIN)})`)
  t.ok(
    after.arrayBuffers - base.arrayBuffers < ARRAY_BUFFER_MARGIN,
    `ArrayBuffers (rooms' and players' replication buffers) grew ${mib(after.arrayBuffers - base.arrayBuffers)} MiB (< ${mib(ARRAY_BUFFER_MARGIN)})`,
  )

  const exited = new Promise((r) => child.proc.once('exit', r))
  child.proc.send('stop')
  await exited
  t.equal(child.proc.exitCode, 0, 'the child stopped cleanly')
})
