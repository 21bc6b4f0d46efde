/**
 * The open-file limit, reached for real: the CLI in a child process under
 * `ulimit -n 256`, flooded with raw TCP connections until it stops accepting.
 * It must not spin (uSockets retries an EMFILE accept forever), its probes and
 * metrics must answer on the metrics port, and it must accept players again
 * once the connections go. Plus the start-up check of --max-players.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { defaultConfig } from '../src/config.js'
import { createLogger } from '../src/log.js'
import { fitFdLimit, readFdLimit } from '../src/net/fdguard.js'
import { freePort, sample, sleep, waitFor } from './helpers/server.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))
const LIMIT = 256
/** Kernel clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on every Linux we run). */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** `node main.js args` under `ulimit -n limit` (exec: the child's pid is the server's), logging human lines (the test reads them). */
function underLimit(limit: number, args: string[]): ChildProcess {
  const cmd = `ulimit -n ${limit} && exec ${quote(process.execPath)} ${quote(main)} --log-format pretty ${args.map(quote).join(' ')}`
  return spawn('bash', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] })
}

async function startLimited(t: Test, args: string[]): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = underLimit(LIMIT, args)
  let err = ''
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  await waitFor(() => err.includes('tickwire listening') || child.exitCode !== null, 15000, 'the server to listen')
  if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${err}`)
  return { child, stderr: () => err }
}

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces) start at field 3 (state); utime and stime are fields 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

/** Opens one raw TCP connection; resolves with it, or with the reason it failed (refused, timeout). */
function rawConnect(port: number, from: string): Promise<Socket | string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from })
    const timer = setTimeout(() => {
      s.destroy()
      resolve('timeout')
    }, 1000)
    // Later errors (a reset of a connection the server never accepted) are expected: ignore them.
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resolve(e.code ?? e.message)
    })
    s.once('connect', () => {
      clearTimeout(timer)
      resolve(s)
    })
  })
}

/** GET on the metrics port with a time bound; a timeout rejects (the behaviour this test exists to catch). */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) })
  return { status: res.status, body: await res.text() }
}

/**
 * Floods the public port with raw connections that never send a request, from several addresses.
 * Paced (batches of 8, 20 ms apart), the guard sees usage climb and pauses before the limit; a burst
 * (all at once) reaches the limit between two checks, and the guard must get the server out of the
 * EMFILE loop. Either way: no spinning, the probes answer, and it recovers.
 */
function floodTest(paced: boolean): void {
  const what = paced ? 'a paced flood: the server pauses accepting before the limit' : 'a burst reaches the limit: the server leaves the EMFILE loop'
  t.test(`ulimit -n ${LIMIT}, ${what}, keeps its probes, and recovers`, async (t) => {
    const port = await freePort()
    const metricsPort = await freePort()
    const { child, stderr } = await startLimited(t, ['--workers', '1', '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--max-players', '100'])
    const pid = child.pid as number

    const held: Socket[] = []
    t.teardown(() => held.forEach((s) => s.destroy()))
    let stoppedBy = ''
    const keep = (r: Socket | string) => (typeof r === 'string' ? (stoppedBy ||= r) : held.push(r))
    if (paced) {
      for (let i = 0; i < 2 * LIMIT && stoppedBy === ''; i += 8) {
        const batch = await Promise.all(Array.from({ length: 8 }, (_, k) => rawConnect(port, `127.0.0.${2 + ((i + k) % 50)}`)))
        batch.forEach(keep)
        await sleep(20)
      }
      t.ok(stoppedBy !== '', `the server stopped accepting after ${held.length} connections (${stoppedBy || 'never'})`)
    } else {
      const all = await Promise.all(Array.from({ length: 2 * LIMIT }, (_, i) => rawConnect(port, `127.0.0.${2 + (i % 50)}`)))
      all.forEach(keep)
    }
    await waitFor(() => stderr().includes('fd pressure'), 5000, 'the fd-pressure warning')
    const warn = stderr()
      .split('\n')
      .find((l) => l.includes('fd pressure')) as string
    const m = new RegExp(`warn security: fd pressure: not accepting on the public port fds=(\\d+) limit=${LIMIT}`).exec(warn)
    t.ok(m, `one warn line with the count and the limit: ${warn}`)
    if (paced) t.ok(Number(m?.[1]) < LIMIT, `paused at ${m?.[1]} descriptors, before the limit`)
    const refused = await rawConnect(port, '127.0.0.99')
    t.equal(typeof refused === 'string' ? refused : (keep(refused), 'connected'), 'ECONNREFUSED', 'the public port is closed while paused')

    // A busy loop would use a whole core; the server, paused, idles at a 30 Hz tick.
    const c0 = cpuSeconds(pid)
    const w0 = Date.now()
    await sleep(2000)
    const ratio = (cpuSeconds(pid) - c0) / ((Date.now() - w0) / 1000)
    t.ok(ratio < 0.5, `server CPU while paused: ${(ratio * 100).toFixed(1)}% of a core`)

    t.equal((await get(metricsPort, '/healthz')).status, 200, '/healthz answers on the metrics port')
    const metrics = await get(metricsPort, '/metrics')
    t.equal(metrics.status, 200, '/metrics answers')
    t.ok(sample(metrics.body, 'tickwire_accept_pauses_total') >= 1, 'the pause is counted')
    t.equal((await get(metricsPort, '/readyz')).status, 503, 'not ready while not accepting')

    // Connections go: the public port accepts again and a real player gets state.
    for (const s of held) s.destroy()
    await waitFor(() => stderr().includes('fd pressure over: accepting again'), 10000, 'accepting to resume')
    const c = await TickwireClient.connect(`ws://127.0.0.1:${port}/play`, { reconnect: false })
    t.teardown(() => c.close())
    await waitFor(() => c.table.tick > 0 && c.table.entities.size > 0, 5000, 'state frames')
    t.pass('a new player joins and gets state after the pause')
    t.equal((await get(metricsPort, '/readyz')).status, 200, 'ready again')
    t.equal(stderr().split('\n').filter((l) => l.includes('fd pressure: not accepting')).length, 1, 'the warning was logged once')
    c.close()
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
  })
}
floodTest(true)
floodTest(false)

t.test('the default --max-players is lowered to fit the fd limit, with a warning', async (t) => {
  const port = await freePort()
  const { child, stderr } = await startLimited(t, ['--workers', '1', '--port', String(port), '--metrics-port', '0', '--host', '127.0.0.1'])
  const m = new RegExp(`warn open-file limit lowers the default --max-players.* maxPlayers=(\\d+) limit=${LIMIT} fdReserve=64`).exec(stderr())
  t.ok(m, 'one warn line with the lowered value, the limit and the reserve')
  // Below limit - reserve by the process's own descriptors, so a full server does not pause.
  const lowered = Number(m?.[1])
  t.ok(lowered > 100 && lowered < LIMIT - 64, `--max-players lowered to ${lowered}`)
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
})

t.test('an explicit --max-players above the fd limit exits 2 naming both values and the limit', async (t) => {
  for (const workers of ['1', '2']) {
    const child = underLimit(LIMIT, ['--workers', workers, '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--max-players', '1000', '--fd-reserve', '32'])
    let err = ''
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((r) => child.once('exit', r))
    t.equal(code, 2, `--workers ${workers}: exit 2 (${err.trim()})`)
    t.match(err, new RegExp(`--max-players 1000 plus --fd-reserve 32 exceeds the open-file limit of ${LIMIT}`))
    t.notMatch(err, /tickwire listening/)
  }
})

t.test('fitFdLimit and readFdLimit, without a process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tickwire-limits-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = (text: string) => {
    const p = join(dir, String(Math.random()))
    writeFileSync(p, text)
    return p
  }
  t.equal(readFdLimit(file('Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n')), 1024, 'the soft limit')
  t.equal(readFdLimit(file('Max open files            unlimited            unlimited            files\n')), null, 'unlimited: no check')
  t.equal(readFdLimit(join(dir, 'missing')), null, 'no /proc: no check')
  const lines: string[] = []
  const log = createLogger('info', (l) => lines.push(l))
  const fits = defaultConfig({ maxPlayers: 900 })
  t.equal(fitFdLimit(fits, log, 1024, 30), fits, 'an explicit value that fits is kept')
  t.equal(fitFdLimit(defaultConfig(), log, null, 30).maxPlayers, 15000, 'no known limit: unchanged')
  t.equal(fitFdLimit(defaultConfig(), log, 1024, 30).maxPlayers, 1024 - 64 - 30, 'the default is lowered below the pause threshold')
  t.equal(lines.length, 1, 'with one warn line')
  t.throws(() => fitFdLimit(defaultConfig({ maxPlayers: 961 }), log, 1024, 30), /--max-players 961 plus --fd-reserve 64 exceeds the open-file limit of 1024/)
  t.throws(() => fitFdLimit(defaultConfig(), log, 80, 30), /open-file limit of 80 .* leaves no room for players/)
})
