/**
 * A real load balancer in front of tickwire workers, for tests: HAProxy
 * (`haproxy -db`) or nginx (one foreground process), configured by
 * scripts/lb-config.ts, with TLS from a self-signed certificate made by
 * `openssl` at test time. Everything lives in one temp dir, removed by stop().
 *
 * @example
 *   const directPort = await freeDirectPort(['127.0.1.1', '127.0.1.2'], 2)
 *   // ... start machines m1 on 127.0.1.1 and m2 on 127.0.1.2 with --direct-port directPort ...
 *   const lb = await startLb({ kind: 'haproxy', nodes: [{ id: 'm1', host: '127.0.1.1' }, { id: 'm2', host: '127.0.1.2' }], workers: 2, directPort })
 *   t.teardown(() => lb.stop())
 *   // players: lb.wsUrl (wss://127.0.0.1:PORT/play); trust lb.ca (ws: { ca: lb.ca }); tickwire: --public-url lb.wsUrl, --trusted-proxies 127.0.0.1
 *   await lb.waitServer('m1-0', 'UP', 15000)   // HAProxy only: the health checks' view
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { haproxyConfig, lbWorkers, nginxConfig, type LbInput, type LbKind, type LbNode, type LbWorker } from '../../scripts/lb-config.js'
import { WebSocket as WsSocket } from 'ws'
import { freePort } from '../../src/net/ports.js'

export type { LbKind, LbNode, LbWorker }

/** The machines behind the balancer: node ids and the addresses their direct ports listen on. */
export interface LbTopology {
  readonly nodes: readonly LbNode[]
  readonly workers: number
  readonly directPort: number
}

export interface StartLbOptions extends LbTopology {
  readonly kind: LbKind
  /** TLS on the public side (default true); false: plain HTTP. */
  readonly tls?: boolean
  /** HAProxy health checks: interval (default 1000 ms), fall and rise (default 2, 2). */
  readonly checkInterMs?: number
  readonly fall?: number
  readonly rise?: number
  /** Where the balancer listens (default 127.0.0.1 on a free port). */
  readonly host?: string
  readonly port?: number
}

/** A running balancer. */
export interface Lb {
  readonly kind: LbKind
  readonly host: string
  readonly port: number
  readonly tls: boolean
  /** `https://HOST:PORT` (or http://). */
  readonly httpUrl: string
  /** `wss://HOST:PORT/play` (or ws://): the public URL, for tickwire's --public-url too. */
  readonly wsUrl: string
  /** The certificate PEM the balancer serves; trust it as the CA (it is self-signed, for localhost and 127.0.0.1). */
  readonly ca: string
  readonly workers: readonly LbWorker[]
  readonly dir: string
  readonly configPath: string
  readonly config: string
  readonly child: ChildProcess
  /** The balancer's stdout and stderr so far (HAProxy logs every request there). */
  output(): string
  /** HAProxy only: each worker's state as the health checks see it (`UP`, `DOWN`, `UP 1/2`, ...), from the runtime API. */
  serverStates(): Promise<Map<string, string>>
  /** HAProxy only: waits until worker `name`'s state starts with `state` ('UP' or 'DOWN'); rejects after `ms`. */
  waitServer(name: string, state: 'UP' | 'DOWN', ms: number): Promise<void>
  /** SIGTERM, then SIGKILL after 5 s; removes the temp dir. Safe to call twice. */
  stop(): Promise<void>
}

/** Files of a self-signed certificate for localhost and 127.0.0.1. */
export interface TlsFiles {
  readonly key: string
  readonly cert: string
  /** Certificate then key in one file: what HAProxy's `crt` reads. */
  readonly pem: string
  /** The certificate's text, to trust as a CA. */
  readonly ca: string
}

/** Makes a fresh P-256 key and a self-signed certificate (2 days, SAN localhost and 127.0.0.1) in `dir` with openssl. */
export function makeTlsFiles(dir: string): TlsFiles {
  const key = join(dir, 'tls.key')
  const cert = join(dir, 'tls.crt')
  const pem = join(dir, 'tls.pem')
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const ca = readFileSync(cert, 'utf8')
  writeFileSync(pem, ca + readFileSync(key, 'utf8'), { mode: 0o600 })
  return { key, cert, pem, ca }
}

/**
 * The nginx main file that runs `snippet` (an http-context file, as lb-config writes) as
 * an ordinary process: pid, logs and temp files in `dir`.
 */
export function nginxMain(dir: string, snippet: string): string {
  const temp = (name: string) => `${name}_temp_path ${join(dir, `${name}-temp`)};`
  return [
    `pid ${join(dir, 'nginx.pid')};`,
    'error_log stderr warn;',
    'events { worker_connections 1024; }',
    'http {',
    '    access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `    ${temp(n)}`),
    `    include ${snippet};`,
    '}',
    '',
  ].join('\n')
}

/** Whether `text` is a valid configuration: `haproxy -c -f` or `nginx -t` (nginx: wrapped by nginxMain), in `dir`. */
export function checkLbConfig(kind: LbKind, text: string, dir: string): { ok: boolean; output: string } {
  const file = join(dir, kind === 'haproxy' ? 'check.cfg' : 'check.conf')
  writeFileSync(file, text)
  const r =
    kind === 'haproxy'
      ? spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' })
      : (writeFileSync(join(dir, 'check-main.conf'), nginxMain(dir, file)), spawnSync('nginx', ['-t', '-p', dir, '-c', join(dir, 'check-main.conf'), '-g', 'daemon off;'], { encoding: 'utf8' }))
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` }
}

/** A temp dir for one balancer (or a config check); the caller removes it. */
export function lbTempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tickwire-lb-'))
}

/**
 * A direct port base P such that P .. P + workers - 1 were free on every host a moment ago
 * (bounded tries; another process may still take one before use).
 */
export async function freeDirectPort(hosts: readonly string[], workers: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort()
    if (base + workers - 1 > 65535) continue
    let ok = true
    for (const host of hosts) for (let i = 0; i < workers && ok; i++) ok = await canBind(host, base + i)
    if (ok) return base
  }
  throw new Error(`no run of ${workers} free ports on ${hosts.join(', ')} after 50 tries`)
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, host, () => srv.close(() => resolve(true)))
  })
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host)
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })
}

/** Sends one line to HAProxy's runtime API socket and resolves with the whole answer. */
function runtimeApi(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket)
    let out = ''
    s.setTimeout(5000, () => s.destroy(new Error(`runtime API: no answer to ${command} in 5 s`)))
    s.on('data', (d: Buffer) => (out += d.toString()))
    s.once('connect', () => s.write(`${command}\n`))
    s.once('end', () => resolve(out))
    s.once('error', reject)
  })
}

/** Starts a balancer for the topology and resolves once it accepts connections (10 s at most). */
export async function startLb(opts: StartLbOptions): Promise<Lb> {
  const tls = opts.tls ?? true
  const host = opts.host ?? '127.0.0.1'
  const port = opts.port ?? (await freePort(host))
  const dir = lbTempDir()
  const files = makeTlsFiles(dir)
  const statsSocket = join(dir, 'admin.sock')
  const input: LbInput = {
    nodes: opts.nodes,
    workers: opts.workers,
    directPort: opts.directPort,
    listen: `${host}:${port}`,
    ...(tls ? { cert: opts.kind === 'haproxy' ? files.pem : files.cert, ...(opts.kind === 'nginx' ? { key: files.key } : {}) } : {}),
    checkInterMs: opts.checkInterMs,
    fall: opts.fall,
    rise: opts.rise,
    log: 'stdout format raw local0',
    statsSocket,
    user: '',
  }
  const config = opts.kind === 'haproxy' ? haproxyConfig(input) : nginxConfig(input)
  const configPath = join(dir, opts.kind === 'haproxy' ? 'haproxy.cfg' : 'tickwire.conf')
  writeFileSync(configPath, config)
  let child: ChildProcess
  if (opts.kind === 'haproxy') {
    child = spawn('haproxy', ['-db', '-f', configPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  } else {
    const main = join(dir, 'nginx.conf')
    writeFileSync(main, nginxMain(dir, configPath))
    // One process (no master): a kill ends all of nginx.
    child = spawn('nginx', ['-p', dir, '-c', main, '-g', 'daemon off; master_process off;'], { stdio: ['ignore', 'pipe', 'pipe'] })
  }
  let out = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let stopped = false
  const stop = async () => {
    if (!stopped) {
      stopped = true
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const deadline = Date.now() + 10000
  while (!(await accepts(host, port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`${opts.kind} did not accept on ${host}:${port} within 10 s (exit ${child.exitCode}): ${out}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  const serverStates = async (): Promise<Map<string, string>> => {
    if (opts.kind !== 'haproxy') throw new Error('serverStates: nginx has no runtime API for upstream state')
    const csv = await runtimeApi(statsSocket, 'show stat')
    const states = new Map<string, string>()
    // # pxname,svname,qcur,...: status is column 18 (index 17).
    for (const line of csv.split('\n')) {
      const cols = line.split(',')
      if (cols[0] === 'tickwire' && cols[1] !== 'BACKEND' && cols[1] !== undefined) states.set(cols[1], cols[17] ?? '')
    }
    return states
  }
  const scheme = tls ? 'https' : 'http'
  return {
    kind: opts.kind,
    host,
    port,
    tls,
    httpUrl: `${scheme}://${host}:${port}`,
    wsUrl: `${tls ? 'wss' : 'ws'}://${host}:${port}/play`,
    ca: files.ca,
    workers: lbWorkers(input),
    dir,
    configPath,
    config,
    child,
    output: () => out,
    serverStates,
    async waitServer(name, state, ms) {
      const end = Date.now() + ms
      let last = ''
      while (Date.now() <= end) {
        last = (await serverStates()).get(name) ?? '(no such server)'
        if (last.startsWith(state)) return
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error(`timed out after ${ms} ms waiting for ${name} to be ${state} (last: ${last})`)
    },
    stop,
  }
}

/** One answer through a balancer. */
export interface LbResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** GET `path` through `lb` on a fresh connection (so each request is balanced on its own); trusts lb.ca. */
export function lbGet(lb: Lb, path: string, headers: Record<string, string> = {}): Promise<LbResponse> {
  return new Promise((resolve, reject) => {
    const opts = { host: lb.host, port: lb.port, path, headers, agent: false, timeout: 10000, ...(lb.tls ? { ca: lb.ca } : {}) }
    const req = (lb.tls ? httpsRequest : httpRequest)(opts, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} through ${lb.kind}: no answer in 10 s`)))
    req.on('error', reject)
    req.end()
  })
}

/** HTTP status and body of a WebSocket upgrade through `lb` that does not open (status 0: it opened); trusts lb.ca. */
export function upgradeStatus(lb: Lb, query: string): Promise<{ status: number; body: string }> {
  return upgradeStatusAt(`${lb.wsUrl}?${query}`, lb.ca)
}

/** HTTP status and body of a WebSocket upgrade of `url` that does not open (status 0: it opened). */
export function upgradeStatusAt(url: string, ca?: string | Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WsSocket(url, ca === undefined ? {} : { ca })
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (b: Buffer) => (body += b.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    ws.on('open', () => {
      ws.close()
      resolve({ status: 0, body: '' })
    })
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err)
    })
  })
}
