/**
 * The load balancers' configurations (scripts/lb-config.ts) checked by the real
 * programs (`haproxy -c`, `nginx -t`) and run for real with TLS in front of small
 * backend workers on 127.0.1.x: route=R reaches R, other requests are spread,
 * a draining worker leaves rotation, a route to a dead worker is answered by
 * another, WebSockets pass through; and HAProxy's health check against a real
 * tickwire.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { haproxyConfig, lbConfig, lbWorkers, main, nginxConfig, parseLbArgs, type LbInput, type LbKind, type LbWorker } from '../scripts/lb-config.js'
import { checkLbConfig, freeDirectPort, lbGet, lbTempDir, makeTlsFiles, startLb, type Lb } from './helpers/lb.js'

const cli = fileURLToPath(new URL('../dist/scripts/lb-config.js', import.meta.url))
const repo = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url))
const NODES = [
  { id: 'm1', host: '127.0.1.1' },
  { id: 'm2', host: '127.0.1.2' },
]

/** The command lines that wrote the shipped examples (deploy/README.md repeats them). */
const EXAMPLES: Record<LbKind, string[]> = {
  haproxy: ['haproxy', '--node', 'm1=10.0.0.1', '--node', 'm2=10.0.0.2', '--workers', '2', '--direct-port', '9101', '--listen', '443', '--cert', '/etc/haproxy/tickwire.pem'],
  nginx: ['nginx', '--node', 'm1=10.0.0.1', '--node', 'm2=10.0.0.2', '--workers', '2', '--direct-port', '9101', '--listen', '443', '--cert', '/etc/nginx/tickwire.crt', '--key', '/etc/nginx/tickwire.key', '--server-name', 'play.example.com'],
}

/** A stand-in worker: answers its name on every path, /readyz 200 or 503 on demand, WebSockets that say its name and echo. */
interface Backend {
  readonly worker: LbWorker
  ready: boolean
  /** Requests other than /readyz, with their headers. */
  readonly seen: IncomingHttpHeaders[]
  readonly checks: number[]
  /** Stops listening and drops every connection: the port now refuses, as a killed worker's would. */
  kill(): Promise<void>
}

async function startBackend(worker: LbWorker): Promise<Backend> {
  const wss = new WebSocketServer({ noServer: true })
  const server: Server = createServer((req, res) => {
    if (req.url === '/readyz') {
      b.checks.push(Date.now())
      res.writeHead(b.ready ? 200 : 503).end(b.ready ? 'ready\n' : 'draining\n')
      return
    }
    b.seen.push(req.headers)
    res.writeHead(200, { 'content-type': 'text/plain', 'x-worker': worker.name }).end(worker.name)
  })
  server.on('upgrade', (req, socket, head) => {
    b.seen.push(req.headers)
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(worker.name)
      ws.on('message', (m) => ws.send(`echo:${m.toString()}`))
    })
  })
  const b: Backend = {
    worker,
    ready: true,
    seen: [],
    checks: [],
    kill: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve()
        for (const c of wss.clients) c.terminate()
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(worker.port, worker.host, () => resolve())
  })
  return b
}

/** Backends for every worker of NODES (2 each) on a free direct port; killed in teardown. */
async function startBackends(t: Test): Promise<{ directPort: number; backends: Map<string, Backend> }> {
  const directPort = await freeDirectPort(NODES.map((n) => n.host), 2)
  const backends = new Map<string, Backend>()
  t.teardown(async () => {
    for (const b of backends.values()) await b.kill()
  })
  for (const w of lbWorkers({ nodes: NODES, workers: 2, directPort })) backends.set(w.name, await startBackend(w))
  return { directPort, backends }
}

async function lbStart(t: Test, opts: Parameters<typeof startLb>[0]): Promise<Lb> {
  const lb = await startLb(opts)
  t.teardown(() => lb.stop())
  return lb
}

/** Who answered `n` fresh GETs of `path`: worker name -> count. */
async function answers(lb: Lb, path: string, n: number): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const r = await lbGet(lb, path)
    const who = r.status === 200 ? r.body : `status ${r.status}`
    out.set(who, (out.get(who) ?? 0) + 1)
  }
  return out
}

/** Opens a WebSocket through the balancer; resolves with it and its first message (the worker's name). */
function openWs(lb: Lb, query: string): Promise<{ ws: WebSocket; name: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${lb.wsUrl}${query}`, lb.tls ? { ca: lb.ca } : {})
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('no first message in 10 s'))), 10000)
    ws.once('message', (m) => (clearTimeout(timer), resolve({ ws, name: m.toString() })))
    ws.once('error', (e) => (clearTimeout(timer), reject(e)))
  })
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message in 10 s')), 10000)
    ws.once('message', (m) => (clearTimeout(timer), resolve(m.toString())))
  })
}

/** What both balancers must do: routes, spreading, WebSockets. */
async function contract(t: Test, lb: Lb, backends: Map<string, Backend>): Promise<void> {
  for (const name of backends.keys()) {
    const who = await answers(lb, `/play?room=r1&route=${name}`, 5)
    t.same([...who], [[name, 5]], `route=${name}: all 5 requests reach ${name}`)
  }
  t.same([...(await answers(lb, `/info?v=3&route=m2-1&room=x`, 3))], [['m2-1', 3]], 'route among other parameters, on another path')
  const spread = await answers(lb, '/info', 40)
  t.same([...spread.keys()].sort(), [...backends.keys()].sort(), `40 requests without route reach every worker: ${JSON.stringify([...spread])}`)
  t.ok([...spread.values()].every((n) => n >= 5), 'and none gets fewer than 5 of 40')
  t.same([...(await answers(lb, '/info?route=nobody', 8)).keys()].length > 1, true, 'an unknown route is balanced like no route')

  const before = backends.get('m2-1')?.seen.length ?? 0
  const { ws, name } = await openWs(lb, '?room=friends&route=m2-1')
  t.teardown(() => ws.terminate())
  t.equal(name, 'm2-1', 'a routed WebSocket is upgraded by its worker')
  const upgrade = backends.get('m2-1')?.seen[before]
  t.match(upgrade?.['x-forwarded-for'], /127\.0\.0\.1/, 'the worker sees X-Forwarded-For with the client address')
  t.equal(upgrade?.['x-forwarded-proto'], lb.tls ? 'https' : 'http', 'and X-Forwarded-Proto')
  for (const msg of ['a', 'b', 'c']) {
    ws.send(msg)
    t.equal(await nextMessage(ws), `echo:${msg}`, `message ${msg} passes both ways`)
  }
  await new Promise((r) => setTimeout(r, 1500))
  t.equal(ws.readyState, WebSocket.OPEN, 'still open after 1.5 s idle')
  ws.send('late')
  t.equal(await nextMessage(ws), 'echo:late', 'and still passes messages')
  ws.close()
  const quick = await openWs(lb, '')
  t.ok(backends.has(quick.name), `a WebSocket without route reaches a worker (${quick.name})`)
  quick.ws.close()
}

t.test('generator: workers, CLI arguments, clear errors', async (t) => {
  t.same(
    lbWorkers({ nodes: [{ id: 'm1', host: '10.0.0.1' }, { id: 'b.x', host: 'fd00::2', directPort: 9200 }], workers: 2, directPort: 9101 }),
    [
      { name: 'm1-0', host: '10.0.0.1', port: 9101 },
      { name: 'm1-1', host: '10.0.0.1', port: 9102 },
      { name: 'b.x-0', host: 'fd00::2', port: 9200 },
      { name: 'b.x-1', host: 'fd00::2', port: 9201 },
    ],
  )
  const cmd = parseLbArgs(['nginx', '--node', 'a=h1', '--node', 'b=10.0.0.2:9300', '--node', 'c=[::1]:9400', '--node', 'd=::2', '--workers', '3', '--direct-port', '9101', '--plain', '--out', '/tmp/x'])
  t.equal(cmd.kind, 'nginx')
  t.equal(cmd.out, '/tmp/x')
  t.same(cmd.input.nodes, [{ id: 'a', host: 'h1' }, { id: 'b', host: '10.0.0.2', directPort: 9300 }, { id: 'c', host: '::1', directPort: 9400 }, { id: 'd', host: '::2' }])

  const base = ['--node', 'm1=10.0.0.1', '--workers', '2', '--direct-port', '9101']
  const bad: [string[], RegExp][] = [
    [[], /expected haproxy or nginx first/],
    [['envoy', ...base, '--plain'], /expected haproxy or nginx first/],
    [['haproxy', ...base], /--cert FILE is required \(TLS\), or --plain/],
    [['haproxy', ...base, '--plain', '--cert', '/x.pem'], /exclude each other/],
    [['haproxy', '--workers', '2', '--direct-port', '9101', '--plain'], /no --node given/],
    [['haproxy', '--node', 'm1=10.0.0.1', '--direct-port', '9101', '--plain'], /--workers is required/],
    [['haproxy', '--node', 'm1=10.0.0.1', '--workers', '2', '--plain'], /--direct-port is required/],
    [['haproxy', ...base, '--plain', '--workers', 'two'], /--workers: got "two", expected a whole number/],
    [['haproxy', ...base, '--plain', '--workers', '0'], /--workers: got 0, expected an integer from 1/],
    [['haproxy', ...base, '--plain', '--direct-port', '65535'], /the last direct port of node m1 would exceed 65535/],
    [['haproxy', ...base, '--plain', '--direct-port', '0'], /--direct-port: got 0, expected a port/],
    [['haproxy', ...base, '--plain', '--node', 'm1=10.0.0.2'], /node ids must differ/],
    [['haproxy', ...base, '--plain', '--node', 'M1=10.0.0.2'], /node ids must differ \(ignoring case\)/],
    [['haproxy', ...base, '--plain', '--node', 'bad id=10.0.0.2'], /a node id is 1-48 characters/],
    [['haproxy', ...base, '--plain', '--node', 'm2=not_a_host'], /expected an IPv4 or IPv6 address or a host name/],
    [['haproxy', ...base, '--plain', '--node', 'nohost'], /expected ID=HOST or ID=HOST:DIRECT_PORT/],
    [['haproxy', ...base, '--plain', '--node', 'm2=10.0.0.1:9102'], /workers m1-1 and m2-0 are both at 10\.0\.0\.1:9102/],
    [['haproxy', ...base, '--plain', '--listen', 'x:y'], /--listen: got "x:y"/],
    [['haproxy', ...base, '--plain', '--listen', '70000'], /--listen: got "70000"/],
    [['haproxy', ...base, '--plain', '--fall', '0'], /--fall: got 0/],
    [['haproxy', ...base, '--cert', '/x y.pem'], /--cert: got "\/x y.pem", expected a file path/],
    [['haproxy', ...base, '--cert', '/x.pem', '--key', '/x.key'], /--key is for nginx/],
    [['nginx', ...base, '--cert', '/x.crt'], /--cert and --key go together/],
    [['haproxy', ...base, '--plain', '--user', 'Root!'], /--user: got "Root!"/],
    [['haproxy', ...base, '--plain', '--log', 'a#b'], /--log: got "a#b"/],
    [['nginx', ...base, '--plain', '--server-name', 'a;b'], /--server-name: got "a;b"/],
    [['nginx', ...base, '--plain', '--node', 'a-b=10.0.0.3', '--node', 'a_b=10.0.0.4'], /share the upstream name tickwire_a_b_0/],
    [['haproxy', ...base, '--plain', '--frobnicate', '1'], /unknown option "--frobnicate"/],
    [['haproxy', ...base, '--plain', '--listen'], /--listen needs a value/],
    [['haproxy', ...base, '--plain', '--out', '/nonexistent-dir/x.cfg'], /--out \/nonexistent-dir\/x.cfg: ENOENT/],
  ]
  for (const [argv, re] of bad) {
    let err = ''
    const code = main(argv, () => {}, (s) => (err += s))
    t.equal(code, 2, `exit 2: ${argv.join(' ')}`)
    t.match(err, re, `says why: ${re}`)
    t.match(err, /^usage: lb-config/m, 'and prints the usage')
  }
  let help = ''
  t.equal(main(['--help'], (s) => (help += s), () => {}), 0, '--help exits 0')
  t.match(help, /--direct-port PORT/)

  // The built CLI, as an operator runs it.
  const ok = spawnSync(process.execPath, [cli, ...EXAMPLES.haproxy], { encoding: 'utf8' })
  t.equal(ok.status, 0, `the built CLI exits 0 (${ok.stderr})`)
  t.equal(ok.stdout, lbConfig('haproxy', parseLbArgs(EXAMPLES.haproxy).input), 'and prints the configuration')
  const no = spawnSync(process.execPath, [cli, 'haproxy', '--workers', '2'], { encoding: 'utf8' })
  t.equal(no.status, 2, 'bad input: the built CLI exits 2')
  t.match(no.stderr, /lb-config: /)
  t.equal(no.stdout, '', 'and prints no configuration')
  const dir = lbTempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal(main([...EXAMPLES.nginx, '--out', `${dir}/t.conf`], () => {}, () => {}), 0)
  t.equal(readFileSync(`${dir}/t.conf`, 'utf8'), lbConfig('nginx', parseLbArgs(EXAMPLES.nginx).input), '--out writes the file')
})

t.test('the shipped examples are the generator\'s output for their documented command', async (t) => {
  for (const [kind, path] of [['haproxy', 'deploy/haproxy/haproxy.cfg'], ['nginx', 'deploy/nginx/tickwire.conf']] as const) {
    t.equal(readFileSync(repo(path), 'utf8'), lbConfig(kind, parseLbArgs(EXAMPLES[kind]).input), `${path} is current (regenerate it: node dist/scripts/lb-config.js ${EXAMPLES[kind].join(' ')} --out ${path})`)
    t.match(readFileSync(repo('deploy/README.md'), 'utf8'), EXAMPLES[kind].slice(1).join(' '), `deploy/README.md shows the command for ${path}`)
  }
  const h = haproxyConfig(parseLbArgs(EXAMPLES.haproxy).input)
  for (const line of [
    'bind :443 ssl crt /etc/haproxy/tickwire.pem alpn http/1.1',
    'use-server m2-1 if { url_param(route) -m str m2-1 }',
    'server m2-1 10.0.0.2:9102',
    'http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host tickwire-lb',
    'default-server check inter 1000ms fall 2 rise 2',
    'timeout tunnel 3600s',
    'option forwardfor',
    'option redispatch 1',
  ]) {
    t.ok(h.split('\n').some((l) => l.trim() === line), `haproxy: ${line}`)
  }
  const n = nginxConfig(parseLbArgs(EXAMPLES.nginx).input)
  for (const line of ['m1-1 tickwire_m1_1;', 'default tickwire_any;', 'proxy_pass http://$tickwire_upstream;', 'server 10.0.0.1:9102 backup;', 'listen 443 ssl;', 'proxy_read_timeout 3600s;']) {
    t.ok(n.split('\n').some((l) => l.trim() === line), `nginx: ${line}`)
  }
})

t.test('haproxy -c and nginx -t accept what the generator writes', async (t) => {
  const dir = lbTempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tls = makeTlsFiles(dir)
  const long = 'a'.repeat(48)
  const inputs: [string, LbInput][] = [
    ['2 x 2 with TLS', { nodes: [{ id: 'm1', host: '10.0.0.1' }, { id: 'm2', host: '10.0.0.2' }], workers: 2, directPort: 9101 }],
    ['plain HTTP on an address', { nodes: [{ id: 'm1', host: '10.0.0.1' }], workers: 1, directPort: 9101, listen: '127.0.0.1:8080' }],
    ['IPv6, host names, long ids, 16 workers, per-node ports', { nodes: [{ id: long, host: 'fd00::1' }, { id: 'node.two', host: 'localhost', directPort: 9300 }], workers: 16, directPort: 9101, listen: '[::1]:8443', log: '', statsSocket: '', user: '' }],
  ]
  for (const [what, input] of inputs) {
    const tlsFiles = what.includes('plain') ? {} : { cert: tls.pem }
    const h = checkLbConfig('haproxy', haproxyConfig({ ...input, ...tlsFiles }), dir)
    t.ok(h.ok, `haproxy -c: ${what}`, { output: h.output })
    const n = checkLbConfig('nginx', nginxConfig({ ...input, ...(what.includes('plain') ? {} : { cert: tls.cert, key: tls.key }) }), dir)
    t.ok(n.ok, `nginx -t: ${what}`, { output: n.output })
  }
  const broken = checkLbConfig('haproxy', haproxyConfig({ ...inputs[0]![1], cert: `${dir}/missing.pem` }), dir)
  t.notOk(broken.ok, 'haproxy -c refuses a missing certificate (the check is real)')
})

t.test('HAProxy with TLS: routes, spreading, a draining worker leaves rotation, a route to a down worker is served elsewhere, WebSockets', async (t) => {
  const { directPort, backends } = await startBackends(t)
  const lb = await lbStart(t, { kind: 'haproxy', nodes: NODES, workers: 2, directPort })
  for (const name of backends.keys()) await lb.waitServer(name, 'UP', 15000)
  await contract(t, lb, backends)

  // Draining: /readyz 503. With inter 1 s and fall 2 about 2 s; the ceiling is generous.
  const drained = backends.get('m1-1') as Backend
  const since = Date.now()
  drained.ready = false
  await lb.waitServer('m1-1', 'DOWN', 20000)
  const took = Date.now() - since
  t.ok(took < 20000, `a worker answering /readyz 503 is marked down in ${took} ms`)
  const seen = drained.seen.length
  const spread = await answers(lb, '/info', 30)
  t.notOk(spread.has('m1-1'), `30 requests without route avoid it: ${JSON.stringify([...spread])}`)
  t.equal(spread.size, 3, 'and reach the three others')
  const routed = await answers(lb, '/play?room=r&route=m1-1', 6)
  t.notOk(routed.has('m1-1'), `route=m1-1 while m1-1 is down: the rule is ignored, answered by others: ${JSON.stringify([...routed])}`)
  t.ok([...routed.keys()].every((k) => backends.has(k)), 'every one answered 200 by a worker')
  t.equal(drained.seen.length, seen, 'the down worker got no request (health checks only)')
  drained.ready = true
  await lb.waitServer('m1-1', 'UP', 20000)
  t.same([...(await answers(lb, '/play?route=m1-1', 3))], [['m1-1', 3]], 'back in rotation, route=m1-1 reaches it again')
})

t.test('HAProxy: a worker killed before its checks notice: connect refused, retried on another worker (redispatch)', async (t) => {
  const { directPort, backends } = await startBackends(t)
  // Checks a minute apart: the killed worker stays UP for HAProxy during the whole test.
  const lb = await lbStart(t, { kind: 'haproxy', nodes: NODES, workers: 2, directPort, checkInterMs: 60000, tls: false })
  await backends.get('m2-0')?.kill()
  t.match((await lb.serverStates()).get('m2-0'), /^UP/, 'm2-0 is still UP for the health checks')
  const routed = await answers(lb, '/play?room=r&route=m2-0', 5)
  t.notOk(routed.has('m2-0'), `route=m2-0: answered by others: ${JSON.stringify([...routed])}`)
  t.ok([...routed.keys()].every((k) => backends.has(k)), 'all 200 from live workers')
  const spread = await answers(lb, '/info', 20)
  t.ok([...spread.keys()].every((k) => backends.has(k) && k !== 'm2-0'), `20 requests without route: all served, none failed: ${JSON.stringify([...spread])}`)
})

t.test('nginx with TLS: routes, spreading, WebSockets; a route to a killed worker goes to a backup', async (t) => {
  const { directPort, backends } = await startBackends(t)
  const lb = await lbStart(t, { kind: 'nginx', nodes: NODES, workers: 2, directPort })
  await contract(t, lb, backends)
  await backends.get('m1-0')?.kill()
  const routed = await answers(lb, '/play?room=r&route=m1-0', 5)
  t.notOk(routed.has('m1-0'), `route=m1-0 after m1-0 died: answered by its backups: ${JSON.stringify([...routed])}`)
  t.ok([...routed.keys()].every((k) => backends.has(k)), 'all 200 from live workers')
  const spread = await answers(lb, '/info', 20)
  t.ok([...spread.keys()].every((k) => backends.has(k) && k !== 'm1-0'), `requests without route: all served by live workers: ${JSON.stringify([...spread])}`)
})

t.test('HAProxy\'s health check passes against a real tickwire (uWS answers the HTTP/1.1 check), and a game socket goes through', async (t) => {
  const { start } = await import('../src/start.js')
  const { defaultConfig } = await import('../src/config.js')
  const { createLogger } = await import('../src/log.js')
  const tw = await start(defaultConfig({ port: 0, metricsPort: 0, host: '127.0.1.3', seed: 7 }), { log: createLogger('error', () => {}) })
  t.teardown(() => tw.stop(100))
  const lb = await lbStart(t, { kind: 'haproxy', nodes: [{ id: 'solo', host: '127.0.1.3' }], workers: 1, directPort: tw.port, checkInterMs: 200 })
  await lb.waitServer('solo-0', 'UP', 15000)
  await new Promise((r) => setTimeout(r, 1500))
  t.match((await lb.serverStates()).get('solo-0'), /^UP$/, 'still UP after several checks of /readyz')
  const info = await lbGet(lb, '/info')
  t.equal(info.status, 200, `/info through HAProxy with TLS: ${info.body}`)
  const rooms = await lbGet(lb, '/rooms?limit=5')
  t.equal(rooms.status, 200, `/rooms through HAProxy with TLS: ${rooms.body}`)
  t.same(JSON.parse(rooms.body), { rooms: [], total: 0 }, 'the room listing reaches a worker: no rooms yet')
  t.equal((await lbGet(lb, '/rooms?limit=0')).status, 400, 'a bad listing query is 400 through the balancer too')
  const { ws, name } = await openWs(lb, '?v=3')
  t.ok(name.length > 0, 'a game socket through HAProxy receives its first frame')
  ws.close()
  const since = Date.now()
  const stopping = tw.stop(100)
  await lb.waitServer('solo-0', 'DOWN', 20000)
  t.pass(`a stopping tickwire leaves rotation in ${Date.now() - since} ms`)
  await stopping
})
