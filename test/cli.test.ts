/** The CLI as a real child process: help, config errors, the native-binding guard, graceful stop. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { CloseCode } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { freePort, sample, waitFor } from './helpers/server.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))
const preload = fileURLToPath(new URL('./fixtures/no-native-uws.cjs', import.meta.url))

function run(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []) {
  return spawnSync(process.execPath, [...nodeArgs, main, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20000 })
}

/** Starts the server and resolves once it logs that it listens. */
async function startChild(args: string[]): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  await waitFor(() => err.includes('tickwire listening') || child.exitCode !== null, 10000, 'the server to listen')
  if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${err}`)
  return { child, stderr: () => err }
}

t.test('--help prints the option table and exits 0', async (t) => {
  const r = run(['--help'])
  t.equal(r.status, 0)
  t.match(r.stdout, /--port\s+TICKWIRE_PORT\s+9001/)
  t.match(r.stdout, /--metrics-port\s+TICKWIRE_METRICS_PORT\s+9464/)
})

t.test('a bad option exits 2 naming the option, the value and the expectation', async (t) => {
  const r = run(['--tick-hz', '1000'])
  t.equal(r.status, 2)
  t.match(r.stderr, /--tick-hz \(tickHz\): got 1000, expected 1 to 240 Hz/)
  const e = run([], { TICKWIRE_PORT: 'http' })
  t.equal(e.status, 2)
  t.match(e.stderr, /TICKWIRE_PORT \(port\): got "http", expected an integer/)
})

t.test('refuses to start when the uWS native binding did not load', async (t) => {
  const port = await freePort()
  const r = run(['--workers', '1', '--port', String(port), '--metrics-port', '0'], {}, ['--require', preload])
  t.equal(r.status, 1, 'exit 1')
  t.match(r.stderr, /native binding is not loaded/)
  t.match(r.stderr, /Refusing to start/)
  t.notMatch(r.stderr, /tickwire listening/)
  const sup = run(['--workers', '2', '--port', String(port), '--metrics-port', '0'], {}, ['--require', preload])
  t.equal(sup.status, 1, 'the supervisor refuses too, before forking')
  t.match(sup.stderr, /native binding is not loaded/)
})

t.test('a metrics port already in use is a clear start-up error (exit 1)', async (t) => {
  const metrics = await freePort()
  const holder = await startChild(['--workers', '1', '--port', '0', '--metrics-port', String(metrics), '--host', '127.0.0.1', '--metrics-host', '127.0.0.1'])
  t.teardown(() => holder.child.kill('SIGKILL'))
  // Both modes: one process, and a supervisor (which fails before starting any worker).
  const single = run(['--workers', '1', '--port', '0', '--metrics-port', String(metrics), '--metrics-host', '127.0.0.1'])
  t.equal(single.status, 1)
  t.match(single.stderr, new RegExp(`cannot listen for metrics on 127.0.0.1:${metrics}`))
  const r = run(['--workers', '2', '--port', '0', '--metrics-port', String(metrics), '--metrics-host', '127.0.0.1'])
  t.notMatch(r.stderr, /tickwire listening/, 'no worker started')
  t.equal(r.status, 1)
  t.match(r.stderr, new RegExp(`cannot listen for metrics on 127.0.0.1:${metrics}`))
})

t.test('SIGTERM: players get SHUTDOWN (1001), metrics stop, the process exits 0', async (t) => {
  const port = await freePort()
  const metricsPort = await freePort()
  const { child } = await startChild(['--workers', '1', '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1'])
  t.teardown(() => child.kill('SIGKILL'))
  const url = `ws://127.0.0.1:${port}/play`
  const a = await TickwireClient.connect(url, { reconnect: false })
  const b = await TickwireClient.connect(url, { reconnect: false, room: 'r' })
  const codes: number[] = []
  a.on('close', (c) => codes.push(c))
  b.on('close', (c) => codes.push(c))
  const m = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  t.equal(sample(m, 'tickwire_players'), 2)
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exit code 0')
  await waitFor(() => codes.length === 2, 2000, 'both clients to see the close')
  t.same(codes, [CloseCode.SHUTDOWN, CloseCode.SHUTDOWN])
})
