/**
 * The monitor page (`--monitor`) end to end: a real two-worker supervisor
 * with real clients in a few rooms; the API refuses a request without the
 * token (401, counted), lists rooms with players, capacity, age and worker
 * with it; Debian's Chromium (playwright-core) opens the page, enters the
 * token, shows the rooms, draws each worker's charts and the recent
 * disconnects, and closes a room through the confirm dialog: its players see
 * 4017 CLOSED_BY_OPERATOR and the counter moves. The screenshot is saved in
 * test/output/ (gitignored) and its path printed. Also: a single process,
 * cross-site POSTs, and the config refusals.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { request } from 'node:http'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { CloseCode } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { ConfigError, parseConfig } from '../src/config.js'
import type { MonitorState } from '../src/monitor/http.js'
import { DisconnectLog, TickWindow } from '../src/monitor/local.js'
import { launchChromium } from './helpers/browser.js'
import { startCluster } from './helpers/cluster.js'
import { freeDirectPort } from './helpers/lb.js'
import { startMachine } from './helpers/machines.js'
import { REDIS_SERVER, startRedis } from './helpers/redis.js'
import { freePort, sample, startTest, waitFor } from './helpers/server.js'

const TOKEN = 'monitor-test-token-4f1c9a'
const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))
const outDir = fileURLToPath(new URL('./output/', import.meta.url))

const api = (port: number, path: string, opts: { token?: string; method?: string; headers?: Record<string, string> } = {}) =>
  fetch(`http://127.0.0.1:${port}${path}`, {
    method: opts.method ?? 'GET',
    headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
  })
const state = async (port: number): Promise<MonitorState> => (await (await api(port, '/monitor/api/state', { token: TOKEN })).json()) as MonitorState
const metrics = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()

/** Width and height from a PNG's IHDR. */
function pngSize(file: string): { width: number; height: number; signature: boolean } {
  const b = readFileSync(file)
  return { signature: b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
}

t.test('the tick window: quantiles and load over the last seconds only; the disconnect log is bounded', async (t) => {
  const w = new TickWindow(301) // 10 s at 30 Hz, and one
  // 20 s of ticks at 30 Hz: the first 10 s take 30 ms each, the last 10 s 1..30 ms.
  for (let i = 0; i < 600; i++) w.record(i * (1000 / 30), i < 300 ? 0.03 : ((i % 30) + 1) / 1000)
  const f = w.figures(600 * (1000 / 30), 10, 1 / 30)
  t.equal(f.ticks, 300, 'only the last 10 s')
  t.equal(f.p50, 0.016, 'median')
  t.equal(f.p99, 0.03, 'p99')
  t.ok(Math.abs(f.load - (300 * 0.0155) / 10) < 1e-9, `load ${f.load}: tick time per second of the window`)
  t.same(new TickWindow(4).figures(0, 10, 1 / 30), { ticks: 0, p50: 0, p99: 0, budget: 1 / 30, load: 0 }, 'no ticks: zeros')
  const log = new DisconnectLog(3)
  for (let i = 0; i < 5; i++) log.add({ at: i, reason: 'client_closed', room: 'r', player: i })
  t.same(log.list().map((d) => d.player), [2, 3, 4], 'the newest 3')
})

t.test('--monitor beyond loopback without a token refuses to start, naming the fix', async (t) => {
  t.throws(() => parseConfig(['--monitor', '--metrics-host', '0.0.0.0']), { name: 'ConfigError', message: /--monitor-token/ })
  t.throws(() => parseConfig(['--monitor', '--metrics-port', '0']), ConfigError, 'the monitor needs the metrics port')
  t.throws(() => parseConfig(['--monitor-token', 'x']), { message: /--monitor is off/ }, 'a token without the monitor is a mistake')
  t.equal(parseConfig(['--monitor']).config.monitor, true, '`--monitor` alone means true (loopback: no token needed)')
  t.equal(parseConfig(['--monitor', 'false']).config.monitor, false)
  t.equal(parseConfig([], { TICKWIRE_MONITOR: '1' }).config.monitor, true)
  t.equal(parseConfig(['--monitor', '--metrics-host', '0.0.0.0', '--monitor-token', TOKEN]).config.monitorToken, TOKEN)
  // The CLI: exit 2 with the message, before binding anything.
  const r = spawnSync(process.execPath, [main, '--workers', '1', '--port', '0', '--monitor', '--metrics-host', '0.0.0.0'], { encoding: 'utf8', timeout: 15000 })
  t.equal(r.status, 2, 'exit status 2 (configuration)')
  t.match(r.stderr, /--monitor-token/, 'the message names --monitor-token')
})

t.test('a single process: the API, closing a player, refusals', async (t) => {
  const metricsPort = await freePort()
  const tw = await startTest({ metricsPort, metricsHost: '127.0.0.1', metricsCache: 0, monitor: true, monitorToken: TOKEN })
  t.teardown(() => tw.stop())
  const a = await TickwireClient.connect(tw.url, { room: 'solo', name: 'ann' })
  const b = await TickwireClient.connect(tw.url, { room: 'solo', name: 'bob' })
  t.teardown(() => {
    a.close()
    b.close()
  })
  t.equal((await api(metricsPort, '/monitor/api/state')).status, 401, 'no token: 401')
  t.equal((await api(metricsPort, '/monitor/api/state', { token: 'wrong' })).status, 401, 'a wrong token: 401')
  t.equal((await api(metricsPort, '/monitor/api/rooms/solo/close', { method: 'POST' })).status, 401, 'a close without the token: 401')
  const s = await state(metricsPort)
  const room = s.rooms.find((r) => r.id === 'solo')
  t.ok(room, 'the room is listed')
  t.equal(room?.players, 2)
  t.equal(room?.worker, 0)
  t.same(room?.list.map((p) => p.name).sort(), ['ann', 'bob'])
  t.equal(s.workers.length, 1)
  const cross = await api(metricsPort, '/monitor/api/rooms/solo/close', { method: 'POST', token: TOKEN, headers: { origin: 'http://evil.example' } })
  t.equal(cross.status, 403, 'a POST from another origin: 403')
  t.equal((await api(metricsPort, '/monitor/api/rooms/bad!id/close', { method: 'POST', token: TOKEN })).status, 400)
  const nope = await api(metricsPort, '/monitor/api/players/0/99999/close', { method: 'POST', token: TOKEN })
  t.equal(nope.status, 404, 'an unknown player: 404')
  t.match(((await nope.json()) as { error: string }).error, /no player/)
  const closed = new Promise<number>((resolve) => b.on('close', (code) => resolve(code)))
  const bob = room?.list.find((p) => p.name === 'bob')
  const res = await api(metricsPort, `/monitor/api/players/0/${bob?.id}/close`, { method: 'POST', token: TOKEN })
  t.equal(res.status, 200)
  t.equal(await closed, CloseCode.CLOSED_BY_OPERATOR, 'the player sees 4017 CLOSED_BY_OPERATOR')
  const text = await metrics(metricsPort)
  t.equal(sample(text, 'tickwire_monitor_refused_total{reason="token"}'), 3, 'refusals counted')
  t.equal(sample(text, 'tickwire_monitor_refused_total{reason="origin"}'), 1)
  t.equal(sample(text, 'tickwire_monitor_actions_total{action="close_player",outcome="ok"}'), 1, 'the close is counted')
  t.equal(sample(text, 'tickwire_monitor_actions_total{action="close_player",outcome="not_found"}'), 1)
  await waitFor(() => tw.rooms.byId.get('solo')?.seats.length === 1, 5000, 'the seat to be released (not held)')
  const after = await state(metricsPort)
  t.ok(after.disconnects.some((d) => d.reason === 'closed_by_operator' && d.room === 'solo'), 'the close is a recent disconnect')
})

/** GET with a Host header of our choosing (fetch does not let one set it). */
function getWithHost(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('without a token (loopback only) the API answers loopback Host names only: no DNS rebinding', async (t) => {
  const metricsPort = await freePort()
  const tw = await startTest({ metricsPort, metricsHost: '127.0.0.1', metricsCache: 0, monitor: true })
  t.teardown(() => tw.stop())
  t.equal(await getWithHost(metricsPort, '/monitor/api/state', `127.0.0.1:${metricsPort}`), 200, 'Host 127.0.0.1: 200 without a token')
  t.equal(await getWithHost(metricsPort, '/monitor/api/state', `localhost:${metricsPort}`), 200, 'Host localhost: 200')
  t.equal(await getWithHost(metricsPort, '/monitor/api/state', `rebind.example:${metricsPort}`), 403, 'another Host: 403')
  t.equal(await getWithHost(metricsPort, '/monitor', `rebind.example:${metricsPort}`), 200, 'the page itself holds no data')
  t.equal(sample(await metrics(metricsPort), 'tickwire_monitor_refused_total{reason="host"}'), 1, 'counted')
})

t.test('a two-worker supervisor: API and the page in Chromium', async (t) => {
  const c = await startCluster(2, ['--monitor', '--monitor-token', TOKEN])
  t.teardown(() => {
    c.child.kill('SIGKILL')
  })
  const clients: TickwireClient[] = []
  t.teardown(() => {
    for (const x of clients) x.close()
  })
  const join = async (room: string, name: string) => {
    const x = await TickwireClient.connect(c.url, { room, name })
    clients.push(x)
    return x
  }
  const alpha = [await join('alpha', 'ann'), await join('alpha', 'amy'), await join('alpha', 'abe')]
  await join('beta', 'ben')
  const leaver = await join('gamma', 'gus')
  await join('gamma', 'gil')

  // Without the token: 401, counted in /metrics.
  const refused = await api(c.metricsPort, '/monitor/api/state')
  t.equal(refused.status, 401, 'the API without the token: 401')
  t.match(refused.headers.get('www-authenticate') ?? '', /^Bearer /)
  t.equal(sample(await metrics(c.metricsPort), 'tickwire_monitor_refused_total{reason="token"}'), 1, 'the refusal is counted')
  t.equal((await api(c.metricsPort, '/monitor/api/rooms/alpha/close', { method: 'POST' })).status, 401, 'a close without the token: 401')
  const unknown = await api(c.metricsPort, '/monitor/api/rooms/nosuchroom/close', { method: 'POST', token: TOKEN })
  t.equal(unknown.status, 404, 'an unknown room: 404')
  t.match(((await unknown.json()) as { error: string }).error, /no room nosuchroom/)

  // With it: every room, with its worker, players, capacity and age; both workers' tick figures.
  let s = await state(c.metricsPort)
  for (const [id, players] of [['alpha', 3], ['beta', 1], ['gamma', 2]] as const) {
    const r = s.rooms.find((x) => x.id === id)
    t.ok(r, `${id} is listed`)
    t.equal(r?.players, players, `${id}: ${players} players`)
    t.equal(r?.capacity, 64, `${id}: capacity`)
    t.ok(r && r.age !== null && r.age >= 0 && r.age < 60, `${id}: age ${r?.age} s`)
    t.ok(r && (r.worker === 0 || r.worker === 1), `${id}: worker ${r?.worker}`)
    t.equal(r?.remote, false)
  }
  t.same(s.workers.map((w) => [w.worker, w.up]), [[0, true], [1, true]], 'both workers answer')
  const busy = s.workers.find((w) => w.rooms > 0)
  t.ok(busy && busy.tick.ticks > 0 && busy.tick.p99 > 0 && busy.tick.load > 0, 'a worker with rooms has tick figures')

  // A worker that does not answer (stopped) costs the page at most the 1 s wait: shown down, with its last rooms.
  const stopped = c.pids[1] as number
  process.kill(stopped, 'SIGSTOP')
  const t0 = performance.now()
  const frozen = await state(c.metricsPort)
  const waited = performance.now() - t0
  process.kill(stopped, 'SIGCONT')
  t.ok(waited < 2500, `the page answered in ${Math.round(waited)} ms with a worker stopped`)
  t.same(frozen.workers.map((w) => w.up), [true, false], 'the stopped worker is shown not answering')
  t.same(frozen.rooms.map((r) => r.id).sort(), s.rooms.map((r) => r.id).sort(), 'its rooms stay listed (its last answer)')

  const browser = await launchChromium(t, 'the monitor page in a browser')
  if (!browser) return
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused/.test(m.text())) errors.push(m.text()) // (the first poll's 401 is logged too: expected)
  })
  const base = `http://127.0.0.1:${c.metricsPort}`
  const res = await page.goto(`${base}/monitor`)
  t.match(res?.headers()['content-security-policy'] ?? '', /default-src 'none'; script-src 'sha256-/, 'a strict CSP')
  // The page asks for the token (its first poll got 401), then shows the rooms.
  await page.waitForSelector('#token', { state: 'visible', timeout: 10000 })
  await page.fill('#token', TOKEN)
  await page.click('#login-form button[type=submit]')
  await page.waitForSelector('#rooms tr[data-room="alpha"]', { timeout: 10000 })
  t.match(await page.textContent('#rooms tr[data-room="alpha"] .players'), /^3 \/ 64/, 'alpha: 3 / 64 players')
  t.ok(await page.$('#rooms tr[data-room="beta"]'), 'beta is shown')
  // Charts: each worker's SVG polylines get points once a few polls are in.
  await page.waitForFunction(() => {
    const boxes = Array.from(document.querySelectorAll('#workers .worker'))
    return boxes.length === 2 && boxes.every((b) => Array.from(b.querySelectorAll('svg.spark polyline')).some((p) => (p.getAttribute('points') ?? '').split(' ').length >= 3))
  }, undefined, { timeout: 15000 })
  t.pass('both workers have their tick and load charts drawn')

  // One client leaves: the disconnect shows up.
  leaver.close()
  await page.waitForSelector('#disconnects tr[data-reason="client_closed"]', { timeout: 10000 })
  t.match(await page.textContent('#disconnects tr[data-reason="client_closed"]'), /gamma/, 'the disconnect names its room')

  // Close alpha through the page: confirm(), then its players see 4017.
  const codes = alpha.map((x) => new Promise<number>((resolve) => x.on('close', (code) => resolve(code))))
  const dialogs: string[] = []
  page.on('dialog', (d) => {
    dialogs.push(d.message())
    void d.accept()
  })
  await page.click('#rooms tr[data-room="alpha"] button.close-room')
  t.same(await Promise.all(codes), [4017, 4017, 4017], 'every alpha player is closed with 4017 CLOSED_BY_OPERATOR')
  t.match(dialogs[0] ?? '', /Close room alpha/, 'the page asked for confirmation')
  await page.waitForSelector('#rooms tr[data-room="alpha"]', { state: 'detached', timeout: 10000 })
  t.equal(sample(await metrics(c.metricsPort), 'tickwire_monitor_actions_total{action="close_room",outcome="ok"}'), 1, 'the close is counted')
  t.match(c.stderr(), /monitor: closed by operator/, 'and logged')
  t.notMatch(c.stderr(), TOKEN, 'no log line carries the token')
  s = await state(c.metricsPort)
  t.notOk(s.rooms.some((r) => r.id === 'alpha'), 'alpha is gone')
  await page.waitForSelector('#disconnects tr[data-reason="closed_by_operator"]', { timeout: 10000 })

  mkdirSync(outDir, { recursive: true })
  const shot = `${outDir}monitor.png`
  await page.screenshot({ path: shot, fullPage: true })
  const png = pngSize(shot)
  t.ok(png.signature, 'a PNG')
  t.ok(png.width >= 1200 && png.height >= 600, `${png.width} x ${png.height}`)
  t.ok(statSync(shot).size > 30_000, `${statSync(shot).size} bytes: not a blank page`)
  t.comment(`screenshot: ${shot}`)
  t.same(errors, [], 'no page errors or CSP violations')
})

t.test('many machines: the room directory lists the other machines\' rooms, read-only', { timeout: 120_000 }, async (t) => {
  if (!existsSync(REDIS_SERVER)) {
    const why = `no ${REDIS_SERVER}: apt-get install redis-server`
    if (process.env.TICKWIRE_REQUIRE_BROWSER === '1') return t.fail(why)
    return t.pass('many machines', { skip: why })
  }
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const hosts = ['127.0.1.1', '127.0.1.2'] as const
  const port = await freeDirectPort(hosts, 1)
  let directPort = await freeDirectPort(hosts, 1)
  while (directPort === port) directPort = await freeDirectPort(hosts, 1)
  let metricsPort = await freeDirectPort(hosts, 1)
  while (metricsPort === port || metricsPort === directPort) metricsPort = await freeDirectPort(hosts, 1)
  const [a, b] = await Promise.all(
    hosts.map((host, i) => startMachine({ id: `mon${i + 1}`, host, workers: 1, port, directPort, metricsPort, redisUrl: redis.url, args: ['--monitor', '--monitor-token', TOKEN] })),
  )
  t.teardown(() => {
    a?.kill()
    b?.kill()
  })
  const far = await TickwireClient.connect(`ws://127.0.1.2:${port}/play`, { room: 'far', name: 'fay' })
  const near = await TickwireClient.connect(`ws://127.0.1.1:${port}/play`, { room: 'near', name: 'ned' })
  t.teardown(() => {
    far.close()
    near.close()
  })
  const at = (host: string, path: string, method = 'GET') => fetch(`http://${host}:${metricsPort}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } })
  let s: MonitorState | null = null
  const end = Date.now() + 10_000 // rooms are published once a second
  while (Date.now() < end) {
    s = (await (await at(hosts[0], '/monitor/api/state')).json()) as MonitorState
    if (s.rooms.some((r) => r.id === 'far')) break
    await new Promise((r) => setTimeout(r, 300))
  }
  const farRoom = s?.rooms.find((r) => r.id === 'far')
  t.match(farRoom, { machine: 'mon2', workerName: 'mon2-0', worker: null, players: 1, capacity: 64, age: null, remote: true }, 'the other machine\'s room: its machine, players, capacity; read-only')
  t.match(s?.rooms.find((r) => r.id === 'near'), { machine: 'mon1', worker: 0, players: 1, remote: false }, 'this machine\'s own room, once')
  t.equal(s?.rooms.filter((r) => r.id === 'near').length, 1, 'not listed twice (directory and worker)')
  t.equal((await at(hosts[0], '/monitor/api/rooms/far/close', 'POST')).status, 404, 'closing it here: 404 (close it on its own machine)')
  const closed = new Promise<number>((resolve) => far.on('close', (code) => resolve(code)))
  t.equal((await at(hosts[1], '/monitor/api/rooms/far/close', 'POST')).status, 200, 'its own machine closes it')
  t.equal(await closed, CloseCode.CLOSED_BY_OPERATOR)
})
