/**
 * The SDK's join tokens against small real WebSocket servers (the `ws`
 * package on 127.0.0.1, port 0; one over TLS with a certificate made by
 * openssl at test time): the token travels in Sec-WebSocket-Protocol as
 * `tickwire.bearer.<token>` beside `tickwire`, never in the URL; `getToken`
 * is asked again for every attempt (reconnects, redirect hops); HTTP 401
 * during a reconnect is retried with a fresh token, 403 ends the session;
 * errors never carry the token.
 */
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { CloseCode, CloseReason, MsgType, encodeRedirect, encodeWelcome, type Welcome } from '../proto/index.js'
import { ConnectError, TickwireClient } from '../src/client/index.js'

/** The prefix the server reads (src/auth/auth.ts BEARER_PROTOCOL); spelled out here to check the SDK's copy. */
const BEARER = 'tickwire.bearer.'

/** One upgrade as the server saw it. */
interface Upgrade {
  /** The request path and query. */
  readonly url: string
  /** The raw Sec-WebSocket-Protocol header, or null without one. */
  readonly protocols: string | null
  /** The token of the bearer entry, or null. */
  readonly token: string | null
}

type Answer = { readonly http: number } | { readonly play: (ws: WebSocket, query: URLSearchParams) => void }

interface FakeServer {
  readonly port: number
  readonly url: string
  readonly upgrades: Upgrade[]
  readonly sockets: Set<WebSocket>
}

/**
 * A WebSocket server on 127.0.0.1:0 (TLS when `tls` is given) that answers
 * the subprotocol `tickwire` when offered, as tickwire's server does;
 * `answer(n, upgrade)` decides the n-th upgrade. Closed in teardown.
 */
async function fakeServer(t: Test, answer: (n: number, u: Upgrade) => Answer, tls?: { key: string; cert: string }): Promise<FakeServer> {
  const http: Server = tls ? createTlsServer(tls, (_req, res) => res.writeHead(404).end()) : createServer((_req, res) => res.writeHead(404).end())
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (offered.has('tickwire') ? 'tickwire' : false) })
  const upgrades: Upgrade[] = []
  const sockets = new Set<WebSocket>()
  const raw = new Set<Socket>()
  http.on(tls ? 'secureConnection' : 'connection', (s: Socket) => {
    raw.add(s)
    s.on('close', () => raw.delete(s))
  })
  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const header = req.headers['sec-websocket-protocol'] ?? null
    const bearer = header?.split(',').map((p) => p.trim()).find((p) => p.startsWith(BEARER))
    const u: Upgrade = { url: req.url ?? '/', protocols: header, token: bearer === undefined ? null : bearer.slice(BEARER.length) }
    const a = answer(upgrades.length, u)
    upgrades.push(u)
    if ('http' in a) {
      socket.end(`HTTP/1.1 ${a.http} Refused\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nrefused\n`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws)
      ws.on('close', () => sockets.delete(ws))
      a.play(ws, new URL(u.url, 'ws://x').searchParams)
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const port = (http.address() as AddressInfo).port
  t.teardown(async () => {
    for (const ws of sockets) ws.terminate()
    for (const s of raw) s.destroy()
    wss.close()
    await new Promise<void>((r) => http.close(() => r()))
  })
  return { port, url: `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/play`, upgrades, sockets }
}

const packr = new Packr({ useRecords: false })
let nextPlayer = 1

function welcome(ws: WebSocket, query: URLSearchParams, over: Partial<Welcome> = {}): Welcome {
  const w: Welcome = {
    version: Number(query.get('v') ?? 2),
    playerId: Number(query.get('player') ?? nextPlayer++),
    roomId: query.get('room') ?? 'lobby',
    tickHz: 30,
    entityId: 0,
    historyTicks: 8,
    fields: [{ name: 'x', quantum: 1 }],
    input: [{ name: 'mx', min: -1, max: 1 }],
    resumeToken: `resume-${nextPlayer}`,
    ackWindow: Number(query.get('v') ?? 2) >= 3 ? 4 : 0,
    messageSeq: 0,
    messages: [],
    clientMessages: [],
    props: [],
    ...over,
  }
  ws.send(encodeWelcome(w))
  ws.send(packr.pack([MsgType.STATE, 1, 0, 0, [], [], [0, 5]]))
  return w
}

const seat: Answer = { play: (ws, q) => welcome(ws, q) }

function connect(t: Test, url: string, opts: Parameters<typeof TickwireClient.connect>[1]): Promise<TickwireClient> {
  return TickwireClient.connect(url, { timeoutMs: 10_000, ...opts }).then((c) => {
    t.teardown(() => c.close())
    return c
  })
}

/** A getToken that gives `jwt-1`, `jwt-2`, ... (JWT-like characters), and the list of what it gave. */
function tokens(): { getToken: () => Promise<string>; given: string[] } {
  const given: string[] = []
  return {
    given,
    getToken: async () => {
      const tok = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1${given.length + 1}.sig-_${given.length + 1}`
      given.push(tok)
      return tok
    },
  }
}

/** The URL never carries a token: no `token` parameter and not the token's text. */
function noTokenInUrl(t: Test, u: Upgrade, token: string): void {
  t.equal(new URL(u.url, 'ws://x').searchParams.get('token'), null, 'no token= in the URL')
  t.notOk(u.url.includes(token), 'the token text is not in the URL')
}

t.test('a static token travels as tickwire + tickwire.bearer.<token>, the server answers tickwire', async (t) => {
  const s = await fakeServer(t, () => seat)
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2ln'
  const c = await connect(t, s.url, { room: 'lobby', name: 'ada', token })
  const u = s.upgrades[0] as Upgrade
  t.same(u.protocols?.split(',').map((p) => p.trim()), ['tickwire', `${BEARER}${token}`], 'both entries, tickwire first')
  t.equal(u.token, token)
  noTokenInUrl(t, u, token)
  t.equal((c.socket as WebSocket).protocol, 'tickwire', 'the subprotocol the server chose')
})

t.test('no token, or an empty one: no Sec-WebSocket-Protocol at all (a server without --auth need not answer one)', async (t) => {
  const s = await fakeServer(t, () => seat)
  await connect(t, s.url, { room: 'lobby' })
  await connect(t, s.url, { room: 'lobby', getToken: () => '' })
  await connect(t, s.url, { room: 'lobby', token: '' })
  t.same(s.upgrades.map((u) => u.protocols), [null, null, null])
})

t.test('getToken is asked again for every reconnect attempt', async (t) => {
  const s = await fakeServer(t, () => seat)
  const tk = tokens()
  const c = await connect(t, s.url, { room: 'lobby', getToken: tk.getToken })
  t.equal(tk.given.length, 1)
  const resumed = new Promise<void>((r) => c.on('resumed', () => r()))
  for (const ws of s.sockets) ws.terminate() // no close frame: the client sees 1006 and resumes
  await resumed
  t.equal(tk.given.length, 2, 'a second token for the reconnect')
  t.same(s.upgrades.map((u) => u.token), tk.given, 'each upgrade carried the token given for it')
  const resume = s.upgrades[1] as Upgrade
  t.ok(new URL(resume.url, 'ws://x').searchParams.has('resume'), 'the second upgrade was the resume')
  noTokenInUrl(t, resume, tk.given[1] as string)
})

t.test('getToken is asked again for each redirect hop', async (t) => {
  const worker = await fakeServer(t, () => seat)
  const publicEp = await fakeServer(t, () => ({
    play: (ws, q) => {
      ws.send(encodeRedirect({ port: 0, host: '', url: `ws://127.0.0.1:${worker.port}/play?room=lobby&route=w1` }, Number(q.get('v'))))
      ws.close(CloseCode.REDIRECT, CloseReason.REDIRECT)
    },
  }))
  const tk = tokens()
  const c = await connect(t, publicEp.url, { room: 'lobby', getToken: tk.getToken })
  t.equal(c.redirects, 1)
  t.equal(tk.given.length, 2, 'one token per hop')
  t.equal(publicEp.upgrades[0]?.token, tk.given[0], 'the public endpoint got the first')
  t.equal(worker.upgrades[0]?.token, tk.given[1], 'the worker got a fresh one')
  noTokenInUrl(t, worker.upgrades[0] as Upgrade, tk.given[1] as string)
})

t.test('HTTP 401 on a reconnect: retried with a fresh token, and the seat resumed', async (t) => {
  // 0: seated; 1: the token "expired" (401); 2: accepted.
  const s = await fakeServer(t, (n) => (n === 1 ? { http: 401 } : seat))
  const tk = tokens()
  const c = await connect(t, s.url, { room: 'lobby', getToken: tk.getToken })
  const first = c.welcome
  const attempts: [number, number][] = []
  c.on('reconnecting', (code, _name, attempt) => attempts.push([code, attempt]))
  const resumed = new Promise<void>((r) => c.on('resumed', () => r()))
  for (const ws of s.sockets) ws.terminate()
  await resumed
  t.same(attempts, [[1006, 1], [1006, 2]], 'the 401 was a failed attempt, retried')
  t.equal(tk.given.length, 3, 'a fresh token for the retry')
  t.same(s.upgrades.map((u) => u.token), tk.given)
  t.equal(c.welcome.playerId, first.playerId, 'the same seat')
  t.notOk(c.closed)
})

t.test('HTTP 403 on connect: ConnectError with status 403, without the token', async (t) => {
  const s = await fakeServer(t, () => ({ http: 403 }))
  const token = 'eyJhbGciOiJIUzI1NiJ9.eyJyb29tIjoiYSJ9.secret-sig'
  const err = await TickwireClient.connect(s.url, { room: 'b', token, timeoutMs: 10_000 }).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof ConnectError, 'a ConnectError')
  const e = err as ConnectError
  t.equal(e.status, 403)
  t.equal(e.code, 1006, 'no close code: 1006')
  t.match(e.message, /forbidden \(403\)/)
  t.notOk(e.message.includes('secret-sig'), 'the token is not in the message')

  const s401 = await fakeServer(t, () => ({ http: 401 }))
  await t.rejects(TickwireClient.connect(s401.url, { token, timeoutMs: 10_000 }), { name: 'ConnectError', status: 401, message: /unauthorized \(401\)/ })
})

t.test('HTTP 403 on a reconnect ends the session: close 1006 "forbidden (403)", no more attempts', async (t) => {
  const s = await fakeServer(t, (n) => (n === 0 ? seat : { http: 403 }))
  const tk = tokens()
  const c = await connect(t, s.url, { room: 'lobby', getToken: tk.getToken })
  const closed = new Promise<[number, string]>((r) => c.on('close', (code, reason) => r([code, reason])))
  for (const ws of s.sockets) ws.terminate()
  t.same(await closed, [1006, 'forbidden (403)'])
  t.ok(c.closed)
  t.equal(s.upgrades.length, 2, 'one refused attempt, then no more')
})

t.test('getToken failing: connect rejects and says so; a bad token is refused before it is sent; neither error shows a token', async (t) => {
  const s = await fakeServer(t, () => seat)
  await t.rejects(
    TickwireClient.connect(s.url, { getToken: () => Promise.reject(new Error('auth backend down')), timeoutMs: 10_000 }),
    { name: 'ConnectError', message: 'getToken failed: auth backend down' },
  )
  await t.rejects(
    TickwireClient.connect(s.url, {
      getToken: () => {
        throw new Error('no session')
      },
      timeoutMs: 10_000,
    }),
    { name: 'ConnectError', message: 'getToken failed: no session' },
  )
  // A space cannot travel in a subprotocol: refused here, where a browser's SyntaxError would quote it.
  const bad = 'secret token'
  const err = (await TickwireClient.connect(s.url, { token: bad, timeoutMs: 10_000 }).catch((e: unknown) => e)) as Error
  t.match(err, { name: 'ConnectError', message: /cannot carry/ })
  t.notOk(err.message.includes('secret'), 'the token is not in the message')
  // A getToken that never answers is bounded by timeoutMs.
  await t.rejects(TickwireClient.connect(s.url, { getToken: () => new Promise<string>(() => {}), timeoutMs: 200 }), { message: /getToken failed: no answer within 200 ms/ })
  t.equal(s.upgrades.length, 0, 'nothing reached the server')
})

t.test('getToken failing during a reconnect: a failed attempt, retried with backoff', async (t) => {
  const s = await fakeServer(t, () => seat)
  let calls = 0
  const getToken = (): string => {
    calls++
    if (calls === 2) throw new Error('refresh failed')
    return `tok.${calls}`
  }
  const c = await connect(t, s.url, { room: 'lobby', getToken })
  const attempts: number[] = []
  c.on('reconnecting', (_code, _name, attempt) => attempts.push(attempt))
  const resumed = new Promise<void>((r) => c.on('resumed', () => r()))
  for (const ws of s.sockets) ws.terminate()
  await resumed
  t.same(attempts, [1, 2], 'attempt 1 failed in getToken, attempt 2 got in')
  t.same(s.upgrades.map((u) => u.token), ['tok.1', 'tok.3'], 'the failed attempt sent nothing')
})

t.test('over TLS: wss:// with a WebSocket subclass that trusts the test CA and passes the protocols on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdk-auth-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  const pem = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') }
  const s = await fakeServer(t, () => seat, pem)
  // The documented pattern (WebSocketClass): the second argument carries the token.
  class TrustedWs extends WebSocket {
    constructor(url: string, protocols?: string[]) {
      super(url, protocols, { ca: pem.cert })
    }
  }
  const tk = tokens()
  const c = await connect(t, s.url, { room: 'lobby', getToken: tk.getToken, WebSocket: TrustedWs })
  t.ok(s.url.startsWith('wss://'))
  t.equal(s.upgrades[0]?.token, tk.given[0], 'the token went over TLS in the subprotocol')
  t.equal((c.socket as WebSocket).protocol, 'tickwire')
  // Without the CA the handshake fails, and says why.
  await t.rejects(TickwireClient.connect(s.url, { timeoutMs: 10_000, token: 'a.b.c' }), { name: 'ConnectError', code: 1006, message: /certificate/ })
})
