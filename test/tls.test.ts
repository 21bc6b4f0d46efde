/**
 * TLS served by tickwire itself (--tls-cert, --tls-key, --tls-passphrase):
 * certificates made with openssl at test time in a temporary folder; a real
 * tickwire in this process and the real CLI with two workers; SDK clients over
 * wss:// that trust the test certificate (or another one, and are refused);
 * https:// probes; and every bad certificate a clear start-up error naming the
 * option.
 */
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { WebSocket } from 'ws'
import { TickwireClient } from '../src/client/index.js'
import { ConfigError, type Config } from '../src/config.js'
import { createLogger } from '../src/log.js'
import { TLS_EXPIRY_WARN_DAYS, checkTls } from '../src/net/tls.js'
import { alive, clientPort, serverPidsByClientPort, startCluster } from './helpers/cluster.js'
import { startTest, waitFor } from './helpers/server.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'tickwire-tls-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const f = (name: string) => join(dir, name)
const PASS = 'correct horse battery staple'

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}
/** A self-signed EC certificate and its unencrypted key. */
function selfSigned(name: string, cn: string, days: number, san?: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}-key.pem`), '-out', f(`${name}.pem`),
    '-days', String(days), '-subj', `/CN=${cn}`, ...(san ? ['-addext', `subjectAltName=${san}`] : []))
}
selfSigned('server', 'localhost', 30, 'DNS:localhost,IP:127.0.0.1')
selfSigned('other', 'other.test', 30, 'DNS:other.test,IP:127.0.0.1')
selfSigned('soon', 'localhost', 3, 'DNS:localhost,IP:127.0.0.1')
// The server's key again, encrypted (PKCS#8, AES-256).
openssl('pkey', '-in', f('server-key.pem'), '-aes256', '-passout', `pass:${PASS}`, '-out', f('server-key-enc.pem'))
openssl('x509', '-in', f('server.pem'), '-outform', 'DER', '-out', f('server.der'))
writeFileSync(f('garbage.pem'), 'this is not a certificate\n')
mkdirSync(f('a-folder'))
const ca = readFileSync(f('server.pem'))
const otherCa = readFileSync(f('other.pem'))

const TLS = { tlsCert: f('server.pem'), tlsKey: f('server-key.pem') } satisfies Partial<Config>

/** A `ws` WebSocket class for the SDK that trusts only `trust`. */
function trusting(trust: Buffer) {
  return class extends WebSocket {
    constructor(u: string) {
      super(u, { ca: trust })
    }
  }
}

/** GET over https with `trust` as the only CA: status and body. */
function httpsGet(url: string, trust: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca: trust, timeout: 10000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error('https timeout')))
    req.on('error', reject)
  })
}

/** Resolves with the `roomPlayers` of the next PONG. */
function pong(c: TickwireClient): Promise<number> {
  return new Promise((resolve) => {
    const fn = (_rtt: number, players: number) => {
      c.off('pong', fn)
      resolve(players)
    }
    c.on('pong', fn)
    c.ping()
  })
}

const wssUrl = (port: number) => `wss://127.0.0.1:${port}/play`

t.test('one process: wss:// play and https:// probes with the certificate', async (t) => {
  const tw = await startTest(TLS)
  t.teardown(() => tw.stop(100))
  const c = await TickwireClient.connect(wssUrl(tw.port), { WebSocket: trusting(ca), name: 'tls', reconnect: false, timeoutMs: 10000 })
  t.teardown(() => c.close())
  t.ok(c.welcome.playerId > 0, 'WELCOME over wss')
  let states = 0
  c.on('state', () => states++)
  await waitFor(() => states >= 3, 10000, 'three STATE frames over wss')
  t.ok(states >= 3, 'STATE frames arrive over wss')
  t.equal(await pong(c), 1, 'PONG over wss: one player in the room')

  const health = await httpsGet(`https://127.0.0.1:${tw.port}/healthz`, ca)
  t.equal(health.status, 200, 'https /healthz')
  const info = await httpsGet(`https://localhost:${tw.port}/info`, ca)
  t.equal(info.status, 200, 'https /info (by name: the certificate names localhost)')
  t.type((JSON.parse(info.body) as object), 'object', '/info is JSON')

  // A client that trusts another CA is refused by its own TLS check: no WELCOME.
  await t.rejects(
    TickwireClient.connect(wssUrl(tw.port), { WebSocket: trusting(otherCa), reconnect: false, timeoutMs: 10000 }),
    { name: 'ConnectError', message: /closed before WELCOME/ },
    'an SDK client trusting another CA gets no WELCOME',
  )
  const raw = new WebSocket(wssUrl(tw.port), { ca: otherCa })
  const [err] = (await once(raw, 'error')) as [NodeJS.ErrnoException]
  t.match(err.code, /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/, `the TLS error says why (${err.code})`)
  await t.rejects(httpsGet(`https://127.0.0.1:${tw.port}/healthz`, otherCa), { code: /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/ }, 'https with another CA is refused')
  // Plain ws:// to a TLS port gets nothing either.
  await t.rejects(
    TickwireClient.connect(`ws://127.0.0.1:${tw.port}/play`, { reconnect: false, timeoutMs: 10000 }),
    { name: 'ConnectError' },
    'plain ws:// to a TLS port gets no WELCOME',
  )
})

t.test('an encrypted key works with the right passphrase', async (t) => {
  const tw = await startTest({ tlsCert: f('server.pem'), tlsKey: f('server-key-enc.pem'), tlsPassphrase: PASS })
  t.teardown(() => tw.stop(100))
  const c = await TickwireClient.connect(wssUrl(tw.port), { WebSocket: trusting(ca), reconnect: false, timeoutMs: 10000 })
  t.teardown(() => c.close())
  t.ok(c.welcome.playerId > 0, 'WELCOME over wss with the decrypted key')
  t.equal((await httpsGet(`https://127.0.0.1:${tw.port}/healthz`, ca)).status, 200, 'https /healthz')
})

t.test('a certificate that cannot be loaded is a ConfigError naming the option', async (t) => {
  const cases: [string, Partial<Config>, RegExp][] = [
    ['missing certificate file', { tlsCert: f('nope.pem'), tlsKey: f('server-key.pem') }, /^--tls-cert ".*nope\.pem": cannot read it \(no such file\)/],
    ['missing key file', { tlsCert: f('server.pem'), tlsKey: f('nope-key.pem') }, /^--tls-key ".*nope-key\.pem": cannot read it \(no such file\)/],
    ['certificate path is a folder (unreadable)', { tlsCert: f('a-folder'), tlsKey: f('server-key.pem') }, /^--tls-cert ".*a-folder": cannot read it \(is a directory\)/],
    ['certificate not PEM (garbage)', { tlsCert: f('garbage.pem'), tlsKey: f('server-key.pem') }, /^--tls-cert ".*garbage\.pem": not a PEM certificate/],
    ['certificate in DER, not PEM', { tlsCert: f('server.der'), tlsKey: f('server-key.pem') }, /^--tls-cert ".*server\.der": not a PEM certificate/],
    ['key file holds a certificate', { tlsCert: f('server.pem'), tlsKey: f('server.pem') }, /^--tls-key ".*server\.pem": not a PEM private key/],
    ['certificate file holds a key', { tlsCert: f('server-key.pem'), tlsKey: f('server-key.pem') }, /^--tls-cert ".*server-key\.pem": not a PEM certificate/],
    ['key of another certificate', { tlsCert: f('server.pem'), tlsKey: f('other-key.pem') }, /^--tls-key ".*other-key\.pem" is not the private key of --tls-cert ".*server\.pem"/],
    ['encrypted key, no passphrase', { tlsCert: f('server.pem'), tlsKey: f('server-key-enc.pem') }, /^--tls-key ".*server-key-enc\.pem" is encrypted: set --tls-passphrase/],
    ['encrypted key, wrong passphrase', { tlsCert: f('server.pem'), tlsKey: f('server-key-enc.pem'), tlsPassphrase: 'wrong' }, /^--tls-passphrase does not decrypt --tls-key/],
  ]
  for (const [what, tls, message] of cases) {
    const err = await startTest(tls).then(
      async (tw) => {
        await tw.stop(100)
        return null
      },
      (e: unknown) => e,
    )
    t.ok(err instanceof ConfigError, `${what}: start() throws ConfigError`)
    t.match((err as Error | null)?.message, message, `${what}: ${(err as Error | null)?.message}`)
  }
})

t.test('expiry: warned within the warning window, an error line once expired', async (t) => {
  const lines: string[] = []
  const log = createLogger('info', (l) => lines.push(l))
  const soon = { tlsCert: f('soon.pem'), tlsKey: f('soon-key.pem'), tlsPassphrase: '' }
  const info = checkTls(soon, log)
  t.ok(info && info.daysLeft >= 1 && info.daysLeft < TLS_EXPIRY_WARN_DAYS, `3-day certificate: ${info?.daysLeft} days left`)
  t.match(info?.subject, /CN=localhost/, 'subject')
  t.match(info?.subjectAltName, /IP Address:127\.0\.0\.1/, 'subjectAltName')
  t.match(lines.join('\n'), /warn TLS certificate expires soon.*daysLeft=\d/, 'a warning line')

  lines.length = 0
  t.ok(checkTls({ ...TLS, tlsPassphrase: '' }, log), '30-day certificate loads')
  t.equal(lines.length, 0, 'no line for a certificate with 30 days left')

  // The same real certificate, checked as if 40 days had passed.
  const later = new Date(Date.now() + 40 * 86_400_000)
  const expired = checkTls({ ...TLS, tlsPassphrase: '' }, log, later)
  t.ok(expired && expired.daysLeft < 0, 'expired: negative days left')
  t.match(lines.join('\n'), /error TLS certificate has expired/, 'an error line once expired')
  t.equal(checkTls({ tlsCert: '', tlsKey: '', tlsPassphrase: '' }, log), null, 'no TLS: null')
})

t.test('the CLI exits 2 with the message for a bad certificate', async (t) => {
  for (const workers of ['1', '2']) {
    const child = spawn(process.execPath, [main, '--workers', workers, '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--log-format', 'pretty', '--tls-cert', f('server.pem'), '--tls-key', f('other-key.pem')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000)
    const [code] = (await once(child, 'exit')) as [number | null]
    clearTimeout(timer)
    t.equal(code, 2, `--workers ${workers}: exit 2`)
    t.match(err, /--tls-key ".*other-key\.pem" is not the private key of --tls-cert/, `--workers ${workers}: the message names the option`)
  }
})

t.test('two workers: wss on the shared port, and a named room redirected to a direct port over wss', async (t) => {
  const cl = await startCluster(2, ['--tls-cert', TLS.tlsCert, '--tls-key', TLS.tlsKey])
  t.teardown(async () => {
    // A graceful stop takes the workers along; whatever is left after a generous ceiling is killed.
    cl.child.kill('SIGTERM')
    const timer = setTimeout(() => cl.child.kill('SIGKILL'), 20000)
    await cl.exited
    clearTimeout(timer)
    for (const pid of cl.pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  t.equal(cl.pids.length, 2, 'two workers')
  const WS = trusting(ca)
  const clients: TickwireClient[] = []
  t.teardown(() => {
    for (const c of clients) c.close()
  })
  const connect = async (room?: string) => {
    const c = await TickwireClient.connect(wssUrl(cl.port), { WebSocket: WS, reconnect: false, timeoutMs: 10000, ...(room ? { room } : {}) })
    clients.push(c)
    return c
  }

  // Quick play stays on the accepting worker: connect until both workers have served one (the kernel spreads them).
  const servedBy = new Set<number>()
  for (let i = 0; i < 40 && servedBy.size < 2; i++) {
    const c = await connect()
    const port = clientPort(c)
    let pid: number | undefined
    await waitFor(() => (pid = serverPidsByClientPort(cl.port).get(port)) !== undefined, 10000, 'ss to show the connection')
    servedBy.add(pid as number)
  }
  t.same([...servedBy].sort(), [...cl.pids].sort(), 'both workers served wss on the shared port')

  // Two players per named room until one of them was redirected to the owner's direct port.
  let redirected: TickwireClient | null = null
  for (let i = 0; i < 20 && !redirected; i++) {
    const room = `tls-${i}`
    const a = await connect(room)
    const b = await connect(room)
    t.equal(a.welcome.roomId, room, `${room}: the first player joined it`)
    t.equal(b.welcome.roomId, room, `${room}: the second player joined it`)
    const [pa, pb] = await Promise.all([pong(a), pong(b)])
    t.equal(pa, 2, `${room}: the first player sees two in the room`)
    t.equal(pb, 2, `${room}: the second player sees two in the room`)
    redirected = [a, b].find((c) => c.redirects > 0) ?? null
  }
  t.ok(redirected, 'a named room was reached through a redirect')
  const url = (redirected?.socket as { url: string } | undefined)?.url ?? ''
  t.match(url, /^wss:\/\/127\.0\.0\.1:\d+\//, `the redirect kept wss (${url})`)
  t.ok(cl.directPorts.includes(Number(new URL(url).port)), 'to a worker\'s direct port')
  let states = 0
  redirected?.on('state', () => states++)
  await waitFor(() => states >= 2, 10000, 'STATE frames on the direct port')
  t.ok(states >= 2, 'STATE frames over wss on the direct port')
})
