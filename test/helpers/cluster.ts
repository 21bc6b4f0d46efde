/** Test helpers for multi-worker runs: the real CLI as a child process, and `ss` to see which process holds a socket. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { TickwireClient } from '../../src/client/index.js'
import { freePort, waitFor } from './server.js'

const main = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url))

export interface Cluster {
  readonly child: ChildProcess
  readonly port: number
  readonly metricsPort: number
  readonly url: string
  /** Worker pids and direct ports, as the supervisor logged them at start. */
  readonly pids: number[]
  readonly directPorts: number[]
  stderr(): string
  /** Resolves with the supervisor's exit code. */
  readonly exited: Promise<number | null>
}

/**
 * Starts `main.js --workers N` and resolves once the supervisor reports all workers serving.
 * `--port 0`: the supervisor picks the public port and each worker's direct port is the kernel's
 * pick (a fixed `port + 1 + i` could collide with other tests' ephemeral client ports).
 * `--metrics-cache 0`: tests read counters right after the events they count. `--log-format pretty`: tests read
 * the human lines (stderr is a pipe, which defaults to JSON).
 */
export async function startCluster(workers: number, args: string[] = []): Promise<Cluster> {
  const metricsPort = await freePort()
  const child = spawn(
    process.execPath,
    [main, '--workers', String(workers), '--port', '0', '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--metrics-host', '127.0.0.1', '--metrics-cache', '0', '--log-format', 'pretty', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let err = ''
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  await waitFor(() => err.includes('supervisor listening') || child.exitCode !== null, 15000, 'the supervisor to listen')
  if (child.exitCode !== null) throw new Error(`supervisor exited ${child.exitCode}: ${err}`)
  const line = err.split('\n').find((l) => l.includes('supervisor listening')) as string
  const pids = JSON.parse(/pids=(\[[^\]]*\])/.exec(line)?.[1] ?? '[]') as number[]
  const directPorts = JSON.parse(/directPorts=(\[[^\]]*\])/.exec(line)?.[1] ?? '[]') as number[]
  const port = Number(/ port=(\d+)/.exec(line)?.[1])
  return { child, port, metricsPort, url: `ws://127.0.0.1:${port}/play`, pids, directPorts, stderr: () => err, exited }
}

/** `ss` lines for TCP sockets of `state` whose local port is `port`, with the owning process. */
function ssLines(state: 'listening' | 'established', port: number): string[] {
  const out = execFileSync('ss', ['-tnpH', 'state', state, `( sport = :${port} )`], { encoding: 'utf8' })
  return out.split('\n').filter((l) => l.trim() !== '')
}

/** Pids of the processes listening on `port` (one per listening socket). */
export function listenerPids(port: number): number[] {
  return ssLines('listening', port).map((l) => Number(/pid=(\d+)/.exec(l)?.[1] ?? 0))
}

/** For connections to server port `port`: client port -> pid of the server process that holds the connection. */
export function serverPidsByClientPort(port: number): Map<number, number> {
  const out = new Map<number, number>()
  for (const l of ssLines('established', port)) {
    const cols = l.trim().split(/\s+/)
    // Recv-Q Send-Q Local Peer Process
    const peer = cols[3] ?? ''
    const pid = Number(/pid=(\d+)/.exec(l)?.[1] ?? 0)
    out.set(Number(peer.slice(peer.lastIndexOf(':') + 1)), pid)
  }
  return out
}

/** The local TCP port of an SDK client's current connection (Node, `ws`). */
export function clientPort(c: TickwireClient): number {
  return (c.socket as { _socket: { localPort: number } })._socket.localPort
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
