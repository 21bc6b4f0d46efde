/**
 * Simulated machines for the many-machines tests: each is a real tickwire
 * supervisor (the built CLI) with its own workers, bound to its own loopback
 * address (127.0.1.1, 127.0.1.2, ...), in a process group of its own so a
 * test can kill -9 the whole machine at once, as a power cut would.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { waitFor } from './server.js'

const main = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url))

export interface MachineOptions {
  /** Node id: workers are `<id>-0`, `<id>-1`, ... */
  readonly id: string
  /** The machine's loopback address, e.g. 127.0.1.1 (every port of the machine binds it). */
  readonly host: string
  readonly workers: number
  /** Public port (shared by the workers), direct ports from `directPort`, metrics port: all on `host`. */
  readonly port: number
  readonly directPort: number
  readonly metricsPort: number
  readonly redisUrl?: string
  readonly publicUrl?: string
  readonly resumeSecret?: string
  readonly args?: readonly string[]
}

export interface Machine {
  readonly opts: MachineOptions
  readonly child: ChildProcess
  /** Worker pids as the supervisor logged them. */
  readonly pids: number[]
  /** Worker names and their direct ports, as a load balancer's server list needs them. */
  readonly workers: { readonly name: string; readonly host: string; readonly port: number }[]
  log(): string
  readonly exited: Promise<number | null>
  /** SIGTERM: a graceful drain. */
  term(): void
  /** SIGKILL to the supervisor and every worker at once (the machine dies). */
  kill(): void
}

export const SECRET = 'test-resume-secret-0123456789abcdef0123'

export async function startMachine(o: MachineOptions): Promise<Machine> {
  const args = [
    main,
    '--node-id', o.id,
    '--workers', String(o.workers),
    '--host', o.host,
    '--port', String(o.port),
    '--direct-port', String(o.directPort),
    '--metrics-host', o.host,
    '--metrics-port', String(o.metricsPort),
    '--metrics-cache', '0',
    '--log-format', 'pretty', // the human lines (stderr is a pipe, which defaults to JSON)
    '--resume-secret', o.resumeSecret ?? SECRET,
    ...(o.redisUrl ? ['--redis-url', o.redisUrl] : []),
    ...(o.publicUrl ? ['--public-url', o.publicUrl] : []),
    ...(o.args ?? []),
  ]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let err = ''
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  await waitFor(() => err.includes('supervisor listening') || child.exitCode !== null, 30_000, `machine ${o.id} to listen`)
  if (child.exitCode !== null) throw new Error(`machine ${o.id} exited ${child.exitCode}: ${err}`)
  const line = err.split('\n').find((l) => l.includes('supervisor listening')) as string
  const pids = JSON.parse(/pids=(\[[^\]]*\])/.exec(line)?.[1] ?? '[]') as number[]
  const workers = Array.from({ length: o.workers }, (_, i) => ({ name: `${o.id}-${i}`, host: o.host, port: o.directPort + i }))
  const group = (sig: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), sig)
    } catch {
      // already gone
    }
  }
  return {
    opts: o,
    child,
    pids,
    workers,
    log: () => err,
    exited,
    term: () => child.kill('SIGTERM'),
    kill: () => group('SIGKILL'),
  }
}
