/**
 * start() (the one-process embedding API) drains on SIGINT/SIGTERM: an
 * application that embeds it, as a real child process, closes its players
 * with 1001 SHUTDOWN and exits 0; `signals: false` leaves signals to the
 * application; stop() removes the handlers.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { CloseCode } from '../proto/index.js'
import { join, type Player } from './helpers/players.js'
import { startTest, waitFor } from './helpers/server.js'

const fixture = fileURLToPath(new URL('./fixtures/start-embedded.mjs', import.meta.url))

interface Embedded {
  readonly child: ChildProcess
  readonly port: number
  readonly sigterm: number
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly stderr: () => string
}

async function embed(env: Record<string, string> = {}): Promise<Embedded> {
  const child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  await waitFor(() => out.includes('\n') || child.exitCode !== null, 15000, 'the embedded server to listen')
  if (child.exitCode !== null) throw new Error(`fixture exited ${child.exitCode}: ${err}`)
  const { port, sigterm } = JSON.parse(out) as { port: number; sigterm: number }
  return { child, port, sigterm, exited, stderr: () => err }
}

/** A player that does not reconnect, and the close code it got. */
async function player(port: number, room: string): Promise<{ p: Player; code: Promise<number> }> {
  const p = await join(`ws://127.0.0.1:${port}/play`, room, 'ada', [], { reconnect: false })
  return { p, code: new Promise<number>((resolve) => p.c.on('close', (code) => resolve(code))) }
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${sig} to a process running start(): its players get 1001 SHUTDOWN and it exits 0`, async (t) => {
    const e = await embed()
    t.teardown(() => e.child.kill('SIGKILL'))
    t.equal(e.sigterm, 1, 'start() installed one SIGTERM handler')
    const a = await player(e.port, 'one')
    const b = await player(e.port, 'two')
    const since = Date.now()
    e.child.kill(sig)
    const exit = await e.exited
    const ms = Date.now() - since
    t.same(exit, { code: 0, signal: null }, `exit code 0, in ${ms} ms`)
    t.ok(ms < 4500, `exited before the drain timeout (5 s): ${ms} ms`)
    t.same(await Promise.all([a.code, b.code]), [CloseCode.SHUTDOWN, CloseCode.SHUTDOWN], 'both players got 1001')
    t.match(e.stderr(), new RegExp(`info stopping signal=${sig} players=2`), 'it logged why')
  })
}

t.test('signals: false leaves signals to the application (the default SIGTERM ends the process, no drain)', async (t) => {
  const e = await embed({ SIGNALS: 'off' })
  t.teardown(() => e.child.kill('SIGKILL'))
  t.equal(e.sigterm, 0, 'no handler installed')
  const a = await player(e.port, 'one')
  e.child.kill('SIGTERM')
  t.same(await e.exited, { code: null, signal: 'SIGTERM' }, 'killed by the signal')
  t.equal(await a.code, 1006, 'the player saw the connection drop, not a SHUTDOWN')
})

t.test('stop() removes the handlers; one pair serves several instances', async (t) => {
  const before = process.listenerCount('SIGTERM')
  const one = await startTest()
  const two = await startTest()
  t.equal(process.listenerCount('SIGTERM'), before + 1, 'one SIGTERM handler for both')
  t.equal(process.listenerCount('SIGINT') > 0, true)
  await one.stop()
  t.equal(process.listenerCount('SIGTERM'), before + 1, 'still there while one instance runs')
  await two.stop()
  t.equal(process.listenerCount('SIGTERM'), before, 'gone once both stopped')
  const worker = await startTest({}, { signals: false })
  t.equal(process.listenerCount('SIGTERM'), before, 'signals: false installs none')
  await worker.stop()
})
