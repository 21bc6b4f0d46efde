/**
 * assertPortFree against real listeners (node:net, uWS with SO_REUSEPORT), and the built CLI:
 * a second tickwire on a port another one holds exits 1 naming the port, and leaves the first one's room alone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import { statSync } from 'node:fs'
import { dirname } from 'node:path'
import t, { type Test } from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { assertPortFree, freePort, PortInUseError } from '../src/net/ports.js'
import uWS, { type us_listen_socket } from '../src/net/uws.js'
import { alive, listenerPids, startCluster } from './helpers/cluster.js'
import { waitFor } from './helpers/server.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))

/** A node:net listener (SO_REUSEADDR, no SO_REUSEPORT), closed in teardown. */
async function netListener(t: Test, host: string, port: number): Promise<Server> {
  const srv = createServer()
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject)
    srv.listen({ host, port }, resolve)
  })
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())))
  return srv
}

/** A uWS listener as tickwire binds its public port (SO_REUSEPORT), closed in teardown. */
async function uwsListener(t: Test, host: string, port: number): Promise<us_listen_socket> {
  const sock = await new Promise<us_listen_socket | false>((resolve) => uWS.App().listen(host, port, resolve))
  if (!sock) throw new Error(`uWS could not listen on ${host}:${port}`)
  let open = true
  t.teardown(() => {
    if (open) uWS.us_listen_socket_close(sock)
    open = false
  })
  return sock
}

/** Whether `assertPortFree` found the port taken (PortInUseError) or free; anything else fails the test. */
async function probe(host: string, port: number): Promise<'in use' | 'free'> {
  try {
    await assertPortFree(host, port)
    return 'free'
  } catch (err) {
    if (err instanceof PortInUseError) return 'in use'
    throw err
  }
}

// [listener host, probe host, conflict] as Linux decides for listening sockets: 0.0.0.0 overlaps every IPv4 address,
// :: (dual-stack) overlaps everything, distinct addresses never overlap.
const combos: readonly (readonly [string, string, boolean])[] = [
  ['127.0.0.1', '127.0.0.1', true],
  ['0.0.0.0', '127.0.0.1', true],
  ['127.0.0.1', '0.0.0.0', true],
  ['0.0.0.0', '0.0.0.0', true],
  ['::', '127.0.0.1', true],
  ['::', '0.0.0.0', true],
  ['127.0.0.1', '::', true],
  ['0.0.0.0', '::', true],
  ['::1', '::1', true],
  ['::', '::1', true],
  ['::1', '::', true],
  ['0.0.0.0', '127.0.1.2', true],
  ['127.0.1.1', '0.0.0.0', true],
  ['127.0.1.1', '127.0.1.2', false],
  ['127.0.1.2', '127.0.1.1', false],
  ['127.0.0.1', '::1', false],
  ['::1', '0.0.0.0', false],
]

t.test('port 0 is a no-op; a free port resolves and stays free', async (t) => {
  await t.resolves(assertPortFree('127.0.0.1', 0))
  const port = await freePort()
  await t.resolves(assertPortFree('127.0.0.1', port))
  // The probe closed its socket: tickwire's own bind (uWS, SO_REUSEPORT) gets the port.
  await uwsListener(t, '127.0.0.1', port)
  t.equal(await probe('127.0.0.1', port), 'in use', 'and now it is held')
})

t.test('a node:net listener on 127.0.0.1: PortInUseError naming host and port', async (t) => {
  const port = await freePort()
  await netListener(t, '127.0.0.1', port)
  const err = await assertPortFree('127.0.0.1', port).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof PortInUseError, 'a PortInUseError')
  const e = err as PortInUseError
  t.equal(e.port, port)
  t.equal(e.host, '127.0.0.1')
  t.equal(e.code, 'TICKWIRE_PORT_IN_USE')
  t.equal(e.message, `port ${port} on 127.0.0.1 is already in use by another process (another tickwire server?); each server needs its own --port`)
})

t.test('a uWS listener with SO_REUSEPORT: a second uWS would join it, the probe refuses', async (t) => {
  const port = await freePort()
  await uwsListener(t, '127.0.0.1', port)
  // The hole this guards: the kernel lets a second SO_REUSEPORT socket of the same user into the group.
  await uwsListener(t, '127.0.0.1', port)
  t.same(listenerPids(port), [process.pid, process.pid], 'two listeners share the port')
  t.equal(await probe('127.0.0.1', port), 'in use')
})

for (const kind of ['node:net', 'uWS'] as const) {
  t.test(`which bind combinations conflict (listener: ${kind})`, async (t) => {
    for (const [lhost, phost, conflict] of combos) {
      await t.test(`${lhost} held, probe ${phost}`, async (t) => {
        const port = await freePort(lhost === '::' ? '::' : lhost === '::1' ? '::1' : lhost)
        if (kind === 'node:net') await netListener(t, lhost, port)
        else await uwsListener(t, lhost, port)
        t.equal(await probe(phost, port), conflict ? 'in use' : 'free', conflict ? 'conflicts' : 'does not conflict')
        // A free verdict means tickwire's bind then works beside the other listener.
        if (!conflict) await uwsListener(t, phost, port)
      })
    }
  })
}

t.test('an address that is not this machine\'s: its own message, not PortInUseError', async (t) => {
  const port = await freePort()
  // Bind only (TEST-NET-2 is never assigned): the kernel refuses locally, no packet is sent.
  const err = await assertPortFree('198.51.100.7', port).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof Error && !(err instanceof PortInUseError), 'a plain Error')
  t.match((err as Error).message, `cannot bind port ${port} on 198.51.100.7: 198.51.100.7 is not an address of this machine`)
  t.equal(((err as Error).cause as NodeJS.ErrnoException).code, 'EADDRNOTAVAIL')
})

/** Runs the built CLI and resolves with its exit code and output; killed after `ms` (then the code is null). */
function runCli(args: string[], ms: number, uid?: number): Promise<{ code: number | null; out: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now()
    // As another user, without tap's loaders (NODE_OPTIONS imports them from node_modules, which that user may not read).
    const as = uid !== undefined ? { uid, gid: uid, env: { ...process.env, NODE_OPTIONS: '' } } : {}
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...as })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), ms)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, out, ms: Date.now() - t0 })
    })
  })
}

/** One tickwire process on a fixed port (`--workers 1`), resolved once it listens. */
async function startSingle(t: Test, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [main, '--workers', '1', '--port', String(port), '--metrics-port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] })
  t.teardown(() => child.kill('SIGKILL'))
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  await waitFor(() => err.includes('tickwire listening') || child.exitCode !== null, 15000, 'the server to listen')
  if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${err}`)
  return child
}

/** `n` friends join ?room=samefriends; counts each one's STATE frames and any lost connection. */
async function friends(t: Test, port: number, n = 8): Promise<{ clients: TickwireClient[]; frames: number[]; lost: string[] }> {
  const clients: TickwireClient[] = []
  t.teardown(() => clients.forEach((c) => c.close()))
  const frames: number[] = []
  const lost: string[] = []
  for (let i = 0; i < n; i++) {
    const c = await TickwireClient.connect(`ws://127.0.0.1:${port}/play`, { room: 'samefriends', name: `f${i}` })
    clients.push(c)
    frames.push(0)
    c.on('state', () => (frames[i] = (frames[i] ?? 0) + 1))
    for (const ev of ['reconnecting', 'rejoined', 'close'] as const) c.on(ev, () => lost.push(`f${i} ${ev}`))
  }
  return { clients, frames, lost }
}

/** Each client's room count from a fresh PONG. */
async function roomCounts(clients: TickwireClient[]): Promise<number[]> {
  return Promise.all(
    clients.map(
      (c) =>
        new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no PONG within 10 s')), 10000)
          const onPong = (_rtt: number, players: number) => {
            clearTimeout(timer)
            c.off('pong', onPong)
            resolve(players)
          }
          c.on('pong', onPong)
          c.ping()
        }),
    ),
  )
}

for (const first of [2, 1]) {
  t.test(`a tickwire with --workers ${first} holds the port: a second one exits 1 naming it, the first one's room plays on`, async (t) => {
    let port: number
    let pids: number[]
    if (first === 2) {
      const c = await startCluster(2)
      t.teardown(() => {
        c.child.kill('SIGKILL')
        for (const pid of c.pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
      })
      port = c.port
      pids = c.pids
      // Its own workers share the public port: one listener per worker.
      t.same(listenerPids(port).sort(), [...pids].sort(), 'both workers listen on the public port')
    } else {
      port = await freePort()
      const child = await startSingle(t, port)
      pids = [child.pid as number]
    }
    const { clients, frames, lost } = await friends(t, port)
    t.same(await roomCounts(clients), Array(8).fill(8), 'all eight friends in one room')

    // The second server, in both modes; once on the same host, once on the default 0.0.0.0 (which overlaps).
    const seconds: [number, string[]][] = [
      [2, ['--host', '127.0.0.1']],
      [1, ['--host', '127.0.0.1']],
      [first, []],
    ]
    for (const [workers, host] of seconds) {
      const r = await runCli(['--workers', String(workers), '--port', String(port), '--metrics-port', '0', ...host], 30000)
      const h = host.length ? '127.0.0.1' : '0.0.0.0'
      t.equal(r.code, 1, `second tickwire (--workers ${workers}, host ${h}) exits 1 (in ${r.ms} ms)`)
      t.match(r.out, 'tickwire failed to start')
      t.match(r.out, `port ${port} on ${h} is already in use by another process`)
      t.notMatch(r.out, /listening/, 'it never listened')
    }
    t.same(listenerPids(port).sort(), [...pids].sort(), 'only the first server listens on the port')

    // The room is whole and ticking: every friend receives frames after the second servers exited.
    const before = [...frames]
    await waitFor(() => frames.every((n, i) => n >= (before[i] ?? 0) + 10), 15000, 'ten more frames for every friend')
    t.ok(frames.every((n, i) => n >= (before[i] ?? 0) + 10), 'every friend received ten more frames')
    t.same(await roomCounts(clients), Array(8).fill(8), 'still eight in the room')
    // Friends who come later land in the same room: the port leads only to the first server.
    const late = await friends(t, port, 4)
    t.same(await roomCounts([...clients, ...late.clients]), Array(12).fill(12), 'four late friends join the same room')
    t.same([...lost, ...late.lost], [], 'no friend lost its connection')
  })
}

const unprivilegedStart = Number(spawnSync('sysctl', ['-n', 'net.ipv4.ip_unprivileged_port_start'], { encoding: 'utf8' }).stdout?.trim() || '1024')
/** Whether any user can reach and read `file`: every folder above it searchable by others (a clone in a mktemp -d folder is not). */
function othersCanRead(file: string): boolean {
  try {
    if ((statSync(file).mode & 0o004) === 0) return false
    for (let dir = dirname(file); ; dir = dirname(dir)) {
      if ((statSync(dir).mode & 0o001) === 0) return false
      if (dir === dirname(dir)) return true
    }
  } catch {
    return false
  }
}
const canDrop = process.getuid?.() === 0 && unprivilegedStart > 1 && othersCanRead(main)
t.test(
  'a port the user may not bind: exit 1 with its own message (EACCES)',
  {
    skip: canDrop
      ? false
      : `needs root (to run the CLI as nobody), privileged ports (ip_unprivileged_port_start=${unprivilegedStart}) and a checkout others may read (${main})`,
  },
  async (t) => {
    const port = unprivilegedStart - 1
    const r = await runCli(['--workers', '1', '--port', String(port), '--metrics-port', '0', '--host', '127.0.0.1'], 30000, 65534)
    t.equal(r.code, 1, 'exit 1')
    t.match(r.out, `cannot bind port ${port} on 127.0.0.1: permission denied`)
    t.notMatch(r.out, /already in use/)
  },
)
