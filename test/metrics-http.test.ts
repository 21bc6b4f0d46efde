/**
 * The metrics listener under hostile use: its default bind (the real CLI, read
 * back with `ss`), the bearer token, scrape floods (429s, renders bounded by the
 * cache), the probes it serves, and the start-up warning for an open bind.
 */
import { execFileSync, spawn } from 'node:child_process'
import { request, Agent } from 'node:http'
import { fileURLToPath } from 'node:url'
import client from 'prom-client'
import t, { type Test } from 'tap'
import { createLogger } from '../src/log.js'
import { AddressBuckets, METRICS_DEFAULTS, serveMetrics, type MetricsOptions } from '../src/net/metrics-http.js'
import { freePort, sample, silent, sleep, startTest, waitFor } from './helpers/server.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One GET over a real socket; `from` picks the client address (any of 127.0.0.0/8). */
function get(port: number, path: string, opts: { headers?: Record<string, string>; from?: string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: opts.headers, localAddress: opts.from, agent: opts.agent, timeout: 10000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

/** A registry with one series, and a render that counts its calls. */
function counted(delayMs = 0): { registry: client.Registry; render: () => Promise<string>; renders: () => number } {
  const registry = new client.Registry()
  new client.Gauge({ name: 'test_value', help: 'a value', registers: [registry], collect() { this.set(42) } })
  let n = 0
  const render = async () => {
    n++
    if (delayMs > 0) await sleep(delayMs)
    return registry.metrics()
  }
  return { registry, render, renders: () => n }
}

async function endpoint(t: Test, opts: Partial<MetricsOptions> = {}, renderDelayMs = 0) {
  const c = counted(renderDelayMs)
  const ep = await serveMetrics({ host: '127.0.0.1', port: 0, registry: c.registry, render: c.render, log: silent, ...opts })
  t.teardown(() => ep.close())
  return { ...c, port: ep.port }
}

/** Local address of the TCP listener on `port`, from `ss -tlnpH`. */
function listenAddress(port: number): string[] {
  const out = execFileSync('ss', ['-tlnH', `( sport = :${port} )`], { encoding: 'utf8' })
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const local = l.trim().split(/\s+/)[3] ?? ''
      return local.slice(0, local.lastIndexOf(':'))
    })
}

t.test('by default the metrics port listens on 127.0.0.1 only, the public port on 0.0.0.0', async (t) => {
  const port = await freePort('0.0.0.0')
  const metricsPort = await freePort()
  // No --host, no --metrics-host: the defaults.
  const child = spawn(process.execPath, [main, '--workers', '1', '--port', String(port), '--metrics-port', String(metricsPort)], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  t.teardown(() => child.kill('SIGKILL'))
  await waitFor(() => err.includes('tickwire listening') || child.exitCode !== null, 15000, 'the server to listen')
  t.equal(child.exitCode, null, `the server runs: ${err}`)
  t.same(listenAddress(metricsPort), ['127.0.0.1'], 'metrics: loopback only')
  t.same(listenAddress(port), ['0.0.0.0'], 'public port: all addresses')
  t.notMatch(err, /metrics port reachable beyond/, 'no open-bind warning for the default')
  const r = await get(metricsPort, '/healthz')
  t.equal(r.status, 200, '/healthz on the metrics port')
  t.equal((await get(metricsPort, '/readyz')).status, 200, '/readyz on the metrics port')
})

t.test('a bind beyond loopback without a token logs one warning; with a token it does not', async (t) => {
  const lines: string[] = []
  const log = createLogger('info', (l) => lines.push(l))
  const open = await endpoint(t, { host: '0.0.0.0', log })
  t.equal(lines.filter((l) => l.includes('metrics port reachable beyond this machine without a token')).length, 1, lines.join('\n'))
  t.match(lines.join('\n'), new RegExp(`warn .*host=0\\.0\\.0\\.0 port=${open.port}`))
  lines.length = 0
  await endpoint(t, { host: '0.0.0.0', log, token: 'a-token-long-enough' })
  t.same(lines, [], 'no warning with a token')
  t.notMatch(lines.join('\n'), /a-token-long-enough/)
})

t.test('with a token, /metrics needs the bearer header; the probes stay open', async (t) => {
  const token = 'k3y-' + 'x'.repeat(28)
  const lines: string[] = []
  const { port, renders } = await endpoint(t, { token, log: createLogger('debug', (l) => lines.push(l)), cacheSeconds: 0 })
  const none = await get(port, '/metrics')
  t.equal(none.status, 401, 'no header: 401')
  t.match(String(none.headers['www-authenticate']), /^Bearer/)
  t.equal((await get(port, '/metrics', { headers: { authorization: `Bearer ${token}x` } })).status, 401, 'a longer token: 401')
  t.equal((await get(port, '/metrics', { headers: { authorization: `Bearer ${token.slice(0, -1)}` } })).status, 401, 'a prefix: 401')
  t.equal((await get(port, '/metrics', { headers: { authorization: `Basic ${token}` } })).status, 401, 'another scheme: 401')
  t.equal(renders(), 0, 'nothing rendered for a refused scrape')
  const ok = await get(port, '/metrics', { headers: { authorization: `Bearer ${token}` } })
  t.equal(ok.status, 200)
  t.match(ok.body, /^test_value 42$/m)
  t.equal(sample(ok.body, 'tickwire_metrics_refused_total{reason="token"}'), 4, 'refusals counted in the page')
  t.equal(sample(ok.body, 'tickwire_metrics_refused_total{reason="rate"}'), 0)
  t.equal((await get(port, '/metrics', { headers: { authorization: `bearer ${token}` } })).status, 200, 'the scheme is case-insensitive')
  t.equal((await get(port, '/healthz')).status, 200, '/healthz needs no token')
  t.equal((await get(port, '/readyz')).status, 200, '/readyz needs no token')
  t.equal((await get(port, '/other')).status, 404)
  t.notMatch(lines.join('\n'), new RegExp(token), 'the token is never logged')
})

t.test('a flood of 300 scrapes from one address: 429s with retry-after, and at most a few renders', async (t) => {
  const { port, renders } = await endpoint(t, { cacheSeconds: 1 })
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  t.teardown(() => agent.destroy())
  const t0 = Date.now()
  const replies = await Promise.all(Array.from({ length: 300 }, () => get(port, '/metrics', { agent, from: '127.0.0.7' })))
  const seconds = (Date.now() - t0) / 1000
  const ok = replies.filter((r) => r.status === 200).length
  const limited = replies.filter((r) => r.status === 429)
  t.equal(ok + limited.length, 300, 'every request answered, 200 or 429')
  // The burst plus the rate while the flood lasted.
  const { burstPerAddress: burst, ratePerAddress: rate } = METRICS_DEFAULTS
  t.ok(ok >= burst && ok <= burst + Math.ceil(rate * seconds) + 1, `${ok} answered in ${seconds.toFixed(2)} s (burst ${burst}, ${rate}/s)`)
  t.ok(limited.length >= 300 - ok, `${limited.length} refused`)
  t.ok(limited.every((r) => Number(r.headers['retry-after']) >= 1), 'each 429 says when to retry')
  t.ok(renders() <= Math.ceil(seconds) + 1, `${renders()} renders for ${ok} pages in ${seconds.toFixed(2)} s`)
  t.equal((await get(port, '/metrics', { from: '127.0.0.8' })).status, 200, 'another address is not affected')
  await sleep(1100) // past the cached render
  const later = await get(port, '/metrics', { from: '127.0.0.9' })
  t.equal(sample(later.body, 'tickwire_metrics_refused_total{reason="rate"}'), limited.length, 'refusals counted in the next render')
  t.equal((await get(port, '/healthz', { from: '127.0.0.7' })).status, 200, 'the flooding address still gets /healthz')
})

t.test('a flood spread over many addresses passes the rate limit but still renders once a period', async (t) => {
  const { port, renders } = await endpoint(t, { cacheSeconds: 2 })
  const t0 = Date.now()
  // 60 addresses x 5 scrapes: each within its burst.
  const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => get(port, '/metrics', { from: `127.0.1.${1 + (i % 60)}` })))
  const seconds = (Date.now() - t0) / 1000
  t.ok(replies.every((r) => r.status === 200), 'all answered')
  t.ok(renders() <= Math.ceil(seconds / 2) + 1, `${renders()} renders for 300 pages in ${seconds.toFixed(2)} s`)
})

t.test('cache 0 renders per scrape; scrapes that overlap one render share it', async (t) => {
  const { port, renders } = await endpoint(t, { cacheSeconds: 0, burstPerAddress: 1000 }, 200)
  await get(port, '/metrics')
  await get(port, '/metrics')
  t.equal(renders(), 2, 'sequential scrapes each render')
  const pages = await Promise.all(Array.from({ length: 10 }, () => get(port, '/metrics')))
  t.ok(pages.every((p) => p.status === 200 && p.body.includes('test_value 42')))
  t.equal(renders(), 3, '10 scrapes during one 200 ms render share it')
})

t.test('/readyz on the metrics port follows the ready callback', async (t) => {
  let ready = false
  const { port } = await endpoint(t, { ready: () => ready })
  t.equal((await get(port, '/readyz')).status, 503)
  t.equal((await get(port, '/healthz')).status, 200)
  ready = true
  t.equal((await get(port, '/readyz')).status, 200)
})

t.test('the per-address table is bounded', async (t) => {
  const b = new AddressBuckets(5, 2, 100)
  for (let i = 0; i < 10_000; i++) b.take(`10.0.${i >> 8}.${i & 255}`, 0)
  t.equal(b.size, 100)
  // A bucket refills at its rate.
  const one = new AddressBuckets(5, 2, 10)
  t.equal(one.take('a', 0), 0)
  t.equal(one.take('a', 0), 0)
  t.ok(one.take('a', 0) > 0, 'burst spent')
  t.equal(one.take('a', 200), 0, 'one token back after 1/5 s')
})

t.test('wired into start(): the token from config, probes and readiness while the public port is paused', async (t) => {
  const metricsPort = await freePort()
  const tw = await startTest({ metricsPort, metricsToken: 'start-token-0123456789abcdef0123', metricsCache: 0 })
  t.teardown(() => tw.stop())
  t.equal((await get(metricsPort, '/metrics')).status, 401)
  const ok = await get(metricsPort, '/metrics', { headers: { authorization: 'Bearer start-token-0123456789abcdef0123' } })
  t.equal(ok.status, 200)
  t.equal(sample(ok.body, 'tickwire_metrics_refused_total{reason="token"}'), 1)
  t.ok(ok.body.includes('tickwire_accept_pauses_total'), 'the game metrics are there')
  tw.server.pauseAccepting()
  t.equal((await get(metricsPort, '/healthz')).status, 200, 'healthz while the public port is closed')
  t.equal((await get(metricsPort, '/readyz')).status, 503, 'not ready while not accepting')
  await tw.server.resumeAccepting()
  t.equal((await get(metricsPort, '/readyz')).status, 200, 'ready again')
})
