/**
 * A real Redis for tests: Debian's `redis-server` on a free port of
 * 127.0.0.1, nothing persisted (`--save '' --appendonly no`, a temp dir), so
 * a restart comes back empty, as a Redis without persistence does. Plus a TCP
 * proxy in front of it, to cut one client off (a network partition) while
 * the others keep their Redis.
 *
 * @example
 *   const redis = await startRedis()
 *   t.teardown(() => redis.stop())
 *   // tickwire: --redis-url redis.url
 *   redis.kill()            // kill -9: clients see their connection reset
 *   await redis.restart()   // same port, empty
 *   redis.freeze()          // SIGSTOP: connections stay open, nothing answers (a hung Redis)
 *   redis.thaw()
 *
 *   const proxy = await startTcpProxy(redis.port)
 *   t.teardown(() => proxy.stop())
 *   // one client uses proxy.url; proxy.cut() resets its connections and refuses new ones,
 *   // proxy.stall() holds its bytes (a silent partition), proxy.restore() ends either.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../src/net/ports.js'

/** Debian's Redis (`apt-get install redis-server`). */
export const REDIS_SERVER = '/usr/bin/redis-server'

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  readonly url: string
  readonly host: string
  readonly port: number
  /** The running process (a new one after restart()); null after stop() or kill(). */
  readonly child: ChildProcess | null
  /** Everything redis-server printed, across restarts (for failure messages). */
  log(): string
  /** Ends it (SIGTERM, then SIGKILL after 5 s) and removes its dir. Idempotent; call it from t.teardown. */
  stop(): Promise<void>
  /** SIGKILL now (a crash): clients' connections are reset. restart() brings it back. */
  kill(): void
  /** Starts it again on the same port, empty (killing the old process first if it runs); resolves once it answers PING. */
  restart(): Promise<void>
  /** SIGSTOP: connections stay open and nothing answers (a hung or overloaded Redis). */
  freeze(): void
  /** SIGCONT: answers again, everything queued meanwhile included. */
  thaw(): void
}

export interface StartRedisOptions {
  /** Default 127.0.0.1. */
  readonly host?: string
  /** Default: a free port. */
  readonly port?: number
  /** More redis-server arguments, e.g. ['--requirepass', 'secret']. */
  readonly args?: readonly string[]
  /** How long to wait for PING (default 10 s). */
  readonly readyMs?: number
}

/** Starts a redis-server; resolves once it answers PING. */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const host = opts.host ?? '127.0.0.1'
  const readyMs = opts.readyMs ?? 10_000
  const dir = mkdtempSync(join(tmpdir(), 'tickwire-redis-'))
  let port = opts.port ?? 0
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  let out = ''
  let stopped = false

  const spawnOnce = async (): Promise<boolean> => {
    const args = ['--bind', host, '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...(opts.args ?? [])]
    const c = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = c
    const onData = (d: Buffer) => {
      out += d.toString()
      if (out.length > 200_000) out = out.slice(-100_000)
    }
    c.stdout?.on('data', onData)
    c.stderr?.on('data', onData)
    exited = new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) resolve()
      else c.once('exit', () => resolve())
    })
    c.once('error', (err) => (out += `spawn failed: ${err.message}\n`))
    const end = Date.now() + readyMs
    while (Date.now() < end) {
      if (c.exitCode !== null || c.signalCode !== null) return false
      if (await ping(host, port, 500)) return true
      await sleep(25)
    }
    c.kill('SIGKILL')
    throw new Error(`redis-server on ${host}:${port} did not answer PING within ${readyMs} ms:\n${out}`)
  }

  /** Starts redis on `port`; `pick`: a fresh free port per attempt (a free port may be taken before redis binds it). */
  const launch = async (pick: boolean): Promise<void> => {
    for (let attempt = 0; attempt < 20; attempt++) {
      if (pick) port = await freePort(host)
      if (await spawnOnce()) return
      await sleep(100)
    }
    throw new Error(`redis-server did not start on ${host}:${port}:\n${out}`)
  }

  const signal = (sig: NodeJS.Signals) => {
    const c = child
    if (c && c.exitCode === null && c.signalCode === null) c.kill(sig)
  }

  await launch(opts.port === undefined)
  const server: RedisServer = {
    get url() {
      return `redis://${host}:${port}`
    },
    host,
    get port() {
      return port
    },
    get child() {
      return child
    },
    log: () => out,
    stop: async () => {
      if (stopped) return
      stopped = true
      signal('SIGCONT')
      signal('SIGTERM')
      const timer = setTimeout(() => signal('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
      child = null
      rmSync(dir, { recursive: true, force: true })
    },
    kill: () => {
      signal('SIGKILL')
    },
    restart: async () => {
      if (stopped) throw new Error('restart() after stop()')
      signal('SIGKILL')
      await exited
      child = null
      await launch(false)
    },
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
  }
  return server
}

/** True when something on host:port answers `PING` with `+PONG` within `ms`. */
export function ping(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    let got = ''
    const s = connect({ host, port })
    const done = (ok: boolean) => {
      clearTimeout(timer)
      s.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), ms)
    s.once('connect', () => s.write('PING\r\n'))
    s.on('data', (d: Buffer) => {
      got += d.toString()
      if (got.includes('\r\n')) done(got.startsWith('+PONG'))
    })
    s.once('error', () => done(false))
    s.once('close', () => done(false))
  })
}

/** A TCP proxy on 127.0.0.1 in front of one port. */
export interface TcpProxy {
  readonly port: number
  /** `redis://127.0.0.1:PORT` (the proxy, for a Redis behind it). */
  readonly url: string
  /** Resets every connection through it and refuses new ones until restore() (a partition that clients notice). */
  cut(): void
  /** Holds bytes both ways, connections open (a partition nobody notices until its timeouts); restore() delivers them. */
  stall(): void
  /** Back to forwarding. */
  restore(): void
  /** Closes the listener and every connection. */
  stop(): Promise<void>
}

/** Starts a proxy to `targetHost:targetPort`. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  interface Pair {
    readonly a: Socket
    readonly b: Socket
    /** Bytes held by a stall, in order. */
    readonly toB: Buffer[]
    readonly toA: Buffer[]
  }
  const pairs = new Set<Pair>()
  let mode: 'open' | 'cut' | 'stall' = 'open'
  const srv = createServer((client) => {
    if (mode === 'cut') {
      client.resetAndDestroy()
      return
    }
    const upstream = connect({ host: targetHost, port: targetPort })
    const pair: Pair = { a: client, b: upstream, toB: [], toA: [] }
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    // By hand, not pipe(): pipe() resumes a paused source on 'drain', and a stall must hold every byte.
    client.on('data', (d: Buffer) => (mode === 'stall' ? pair.toB.push(d) : upstream.write(d)))
    upstream.on('data', (d: Buffer) => (mode === 'stall' ? pair.toA.push(d) : client.write(d)))
  })
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => resolve())
  })
  const addr = srv.address()
  const port = addr && typeof addr === 'object' ? addr.port : 0
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cut: () => {
      mode = 'cut'
      for (const p of pairs) {
        p.a.resetAndDestroy()
        p.b.destroy()
      }
      pairs.clear()
    },
    stall: () => {
      mode = 'stall'
    },
    restore: () => {
      mode = 'open'
      for (const p of pairs) {
        for (const d of p.toB.splice(0)) p.b.write(d)
        for (const d of p.toA.splice(0)) p.a.write(d)
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) {
          p.a.destroy()
          p.b.destroy()
        }
        pairs.clear()
        srv.close(() => resolve())
      }),
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
