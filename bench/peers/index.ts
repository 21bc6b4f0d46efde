/**
 * The benchmark's peers: the servers a user would otherwise pick, each with
 * its bot adapter, started and loaded the same way.
 *
 *   ws-json    ./ws-json/   plain `ws` + JSON, full state every tick (compiled with the root build)
 *   floor      ./floor/     bare uWS: one corked frame of --frame-bytes per socket per tick, no game
 *                           (the kernel-write floor; driven by tickwire's own bots)
 *   colyseus   ./colyseus/  Colyseus 0.17 + @colyseus/schema (plain ESM, its own package.json:
 *                           `npm --prefix bench/peers/colyseus ci`)
 *
 * Both run tickwire's own simulation (src/sim, src/games/arena) from the root
 * build, so `npm run build` comes first.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Adapter } from '../load/adapter.js'
import { freePort } from '../../src/net/ports.js'
export { freePort }

export type PeerName = 'ws-json' | 'colyseus' | 'floor'

export interface PeerSpec {
  readonly name: PeerName
  /** The server's entry script (absolute path). */
  readonly script: string
  /** What must exist before it runs, and the command that makes it. */
  readonly needs: readonly { readonly path: string; readonly fix: string }[]
  /** Loads its bot adapter. */
  adapter(): Promise<Adapter>
}

/** The repository root, from dist/bench/peers/index.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const at = (p: string): string => ROOT + p

const BUILD = { path: at('dist/src/sim/room.js'), fix: 'npm run build' }
const COLYSEUS_DEPS = { path: at('bench/peers/colyseus/node_modules/@colyseus/sdk/package.json'), fix: 'npm --prefix bench/peers/colyseus ci' }

export const PEERS: Readonly<Record<PeerName, PeerSpec>> = {
  'ws-json': {
    name: 'ws-json',
    script: at('dist/bench/peers/ws-json/server.js'),
    needs: [BUILD],
    adapter: async () => (await import('./ws-json/adapter.js')).wsJsonAdapter,
  },
  floor: {
    name: 'floor',
    script: at('dist/bench/peers/floor/server.js'),
    needs: [BUILD],
    adapter: async () => (await import('../load/tickwire.js')).tickwireAdapter,
  },
  colyseus: {
    name: 'colyseus',
    script: at('bench/peers/colyseus/server.mjs'),
    needs: [BUILD, COLYSEUS_DEPS],
    adapter: async () => {
      checkNeeds(PEERS.colyseus)
      // Plain ESM outside dist/ (the root tsc never sees Colyseus): loaded by path.
      const mod = (await import(new URL('../../../bench/peers/colyseus/adapter.mjs', import.meta.url).href)) as { colyseusAdapter?: Adapter }
      if (typeof mod.colyseusAdapter?.connect !== 'function') throw new Error('bench/peers/colyseus/adapter.mjs does not export colyseusAdapter')
      return mod.colyseusAdapter
    },
  },
}

export function isPeerName(s: string): s is PeerName {
  return Object.hasOwn(PEERS, s)
}

/** Throws naming the missing file and the command that makes it. */
export function checkNeeds(spec: PeerSpec): void {
  for (const n of spec.needs) {
    if (!existsSync(n.path)) throw new Error(`peer ${spec.name}: ${n.path} is missing; run \`${n.fix}\` at the repository root`)
  }
}

export interface StartOptions {
  /** 0: a free port. */
  readonly port: number
  readonly tickHz: number
  /** 0: no metrics endpoint. */
  readonly metricsPort: number
  readonly host?: string
  /** Extra `node` flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  readonly nodeArgs?: readonly string[]
  /** Where the server's stderr goes (default: inherited). */
  readonly stderr?: 'inherit' | 'ignore'
  /** How long to wait for `listening <port>`, ms (default 15 s). */
  readonly startTimeoutMs?: number
}

export interface RunningPeer {
  readonly name: PeerName
  readonly port: number
  readonly metricsPort: number
  readonly pid: number
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit code (null if killed by a signal). */
  stop(timeoutMs?: number): Promise<number | null>
}

/** Starts a peer server as a child process; resolves once it prints `listening <port>`. */
export function startPeer(name: PeerName, opts: StartOptions): Promise<RunningPeer> {
  const spec = PEERS[name]
  checkNeeds(spec)
  const args = [...(opts.nodeArgs ?? []), spec.script, '--port', String(opts.port), '--tick-hz', String(opts.tickHz), '--metrics-port', String(opts.metricsPort)]
  if (opts.host !== undefined) args.push('--host', opts.host)
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', opts.stderr ?? 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    const fail = (msg: string): void => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`peer ${name}: ${msg}`))
    }
    const timer = setTimeout(() => fail(`no "listening <port>" line within ${opts.startTimeoutMs ?? 15000} ms`), opts.startTimeoutMs ?? 15000)
    child.once('error', (err) => fail(err.message))
    child.once('exit', (code, signal) => fail(`exited before listening (code ${code}, signal ${signal})`))
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', (chunk: string) => {
      out += chunk
      const m = /^listening (\d+)$/m.exec(out)
      if (!m) return
      clearTimeout(timer)
      child.removeAllListeners('exit')
      child.stdout?.removeAllListeners('data')
      child.stdout?.resume()
      resolve({ name, port: Number(m[1]), metricsPort: opts.metricsPort, pid: child.pid as number, stop: (ms) => stop(child, ms ?? 5000) })
    })
  })
}

function stop(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(kill)
      resolve(code)
    })
    child.kill('SIGTERM')
  })
}

