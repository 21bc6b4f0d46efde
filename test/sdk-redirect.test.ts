/**
 * The SDK against small real WebSocket servers (the `ws` package, 127.0.0.1,
 * port 0) that play the parts of a load balancer's public endpoint and of the
 * workers behind it: protocol 3 REDIRECTs to a url with a route, protocol 2
 * REDIRECTs to a port, ROOM_MOVED, and reconnects that start again from the
 * public URL (through an HTTP 503) rather than from where a redirect led.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Packr } from 'msgpackr'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { CloseCode, CloseReason, MsgType, PROTOCOL_VERSION, encodeRedirect, encodeWelcome, type Welcome } from '../proto/index.js'
import { TickwireClient, redirectTarget } from '../src/client/index.js'

/** What a fake server does with one upgrade: answer HTTP (no WebSocket), or accept and play. */
type Answer = { readonly http: number } | { readonly play: (ws: WebSocket, query: URLSearchParams) => void }

interface FakeServer {
  readonly port: number
  /** `ws://127.0.0.1:<port>/play` */
  readonly url: string
  /** The query of every upgrade received, in order. */
  readonly queries: URLSearchParams[]
  /** Open server-side sockets. */
  readonly sockets: Set<WebSocket>
}

/**
 * A WebSocket server on 127.0.0.1:0; `answer(n, query)` decides the n-th
 * upgrade (from 0). Closed in teardown, with every connection it holds.
 */
async function fakeServer(t: Test, answer: (n: number, query: URLSearchParams) => Answer): Promise<FakeServer> {
  const http = createServer((_req, res) => res.writeHead(404).end())
  const wss = new WebSocketServer({ noServer: true })
  const queries: URLSearchParams[] = []
  const sockets = new Set<WebSocket>()
  const raw = new Set<Socket>()
  http.on('connection', (s: Socket) => {
    raw.add(s)
    s.on('close', () => raw.delete(s))
  })
  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const query = new URL(req.url ?? '/', 'ws://x').searchParams
    const a = answer(queries.length, query)
    queries.push(query)
    if ('http' in a) {
      socket.end(`HTTP/1.1 ${a.http} Refused\r\ncontent-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\n\r\nroom directory unavailable\n`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws)
      ws.on('close', () => sockets.delete(ws))
      a.play(ws, query)
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
  return { port, url: `ws://127.0.0.1:${port}/play`, queries, sockets }
}

const packr = new Packr({ useRecords: false })
let nextPlayer = 1

/** A WELCOME in `version` (that of the client's `v`, as a tickwire server answers), then one full STATE. */
function welcome(ws: WebSocket, query: URLSearchParams, room: string, over: Partial<Welcome> = {}): Welcome {
  const w: Welcome = {
    version: Number(query.get('v') ?? 2),
    playerId: nextPlayer++,
    roomId: room,
    tickHz: 30,
    entityId: 0,
    historyTicks: 8,
    fields: [{ name: 'x', quantum: 1 }],
    input: [{ name: 'mx', min: -1, max: 1 }],
    resumeToken: `token-${nextPlayer}`,
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

/** A REDIRECT in the client's version, then the 4009 close, as a worker that does not own the room sends. */
function redirect(ws: WebSocket, r: { port: number; host: string; url: string }, version: number): void {
  ws.send(encodeRedirect(r, version))
  ws.close(CloseCode.REDIRECT, CloseReason.REDIRECT)
}

/** Resolves when `cond` holds (polled every 10 ms); rejects after `ms` naming `what`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function connect(t: Test, url: string, opts: Parameters<typeof TickwireClient.connect>[1]): Promise<TickwireClient> {
  return TickwireClient.connect(url, { timeoutMs: 10_000, ...opts }).then((c) => {
    t.teardown(() => c.close())
    return c
  })
}

const params = (q: URLSearchParams) => [...q].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

t.test('a protocol 3 REDIRECT url: the SDK opens it with its own name and v; the url\'s room and route win', async (t) => {
  const worker = await fakeServer(t, (_n, q) => ({ play: (ws) => welcome(ws, q, q.get('room') ?? '') }))
  // The url names the room by its canonical id (here different from the asked one, to see that the url's value wins).
  const target = `ws://127.0.0.1:${worker.port}/play?room=lobby-b&route=m2-1`
  const publicEp = await fakeServer(t, (_n, q) => ({ play: (ws) => redirect(ws, { port: 0, host: '', url: target }, Number(q.get('v'))) }))

  const c = await connect(t, publicEp.url, { room: 'lobby', name: 'ada' })
  t.same(params(publicEp.queries[0] as URLSearchParams), [['name', 'ada'], ['room', 'lobby'], ['v', String(PROTOCOL_VERSION)]], 'the public endpoint got room, name and v=3')
  t.equal(worker.queries.length, 1, 'the SDK followed the url')
  const q = worker.queries[0] as URLSearchParams
  t.same(params(q), [['name', 'ada'], ['room', 'lobby-b'], ['route', 'm2-1'], ['v', '3']], 'the worker got the url\'s room and route, and the client\'s name and v')
  t.same(q.getAll('room'), ['lobby-b'], 'a parameter the url carries is not repeated from the old query')
  t.equal(c.welcome.version, 3, 'WELCOME in protocol 3')
  t.equal(c.welcome.roomId, 'lobby-b')
  t.equal(c.redirects, 1)
  await until(() => c.table.tick === 1, 10_000, 'the first STATE')
  t.equal(c.table.get(0, 'x'), 5, 'the STATE after the redirect was applied')
})

t.test('a protocol 2 REDIRECT (port and host), and a protocol 2 WELCOME', async (t) => {
  // A protocol 2 server: ignores v, answers WELCOME version 2 and REDIRECTs with 3 elements.
  const worker = await fakeServer(t, (_n, q) => ({ play: (ws) => welcome(ws, q, 'lobby', { version: 2 }) }))
  const publicEp = await fakeServer(t, () => ({ play: (ws) => redirect(ws, { port: worker.port, host: '127.0.0.1', url: '' }, 2) }))
  const c = await connect(t, publicEp.url, { room: 'lobby', name: 'bob' })
  t.same(params(worker.queries[0] as URLSearchParams), [['name', 'bob'], ['room', 'lobby'], ['v', '3']], 'the same query on the REDIRECT\'s port')
  t.equal(c.welcome.version, 2, 'a protocol 2 WELCOME is accepted')
  t.equal(c.redirects, 1)

  // A protocol 3 REDIRECT without a url means the same.
  const publicEp3 = await fakeServer(t, () => ({ play: (ws) => redirect(ws, { port: worker.port, host: '', url: '' }, 3) }))
  const c3 = await connect(t, publicEp3.url, { room: 'lobby', name: 'cy' })
  t.equal(worker.queries.length, 2, 'followed to the port')
  t.equal(c3.redirects, 1)
})

t.test('a WELCOME of an unknown version fails the connect clearly', async (t) => {
  const s = await fakeServer(t, (_n, q) => ({ play: (ws) => welcome(ws, q, 'lobby', { version: 4 }) }))
  await t.rejects(TickwireClient.connect(s.url, { timeoutMs: 10_000, reconnect: false }), { name: 'ConnectError', message: /server speaks protocol 4, this client 2 to 3/ })
})

t.test('at most 3 redirects per attempt', async (t) => {
  let self = ''
  const loop = await fakeServer(t, () => ({ play: (ws) => redirect(ws, { port: 0, host: '', url: `${self}?room=r&route=again` }, 3) }))
  self = loop.url
  await t.rejects(TickwireClient.connect(loop.url, { room: 'r', timeoutMs: 10_000 }), { name: 'ConnectError', code: CloseCode.REDIRECT, message: /more than 3 redirects/ })
  t.equal(loop.queries.length, 4, 'the first connection and 3 redirects')
})

t.test('a wss:// connection is not redirected to ws://', async (t) => {
  t.throws(() => redirectTarget('wss://play.example.com/play?resume=x', { port: 0, host: '', url: 'ws://evil.example/play' }), { name: 'ConnectError', message: /refused a REDIRECT from wss: to ws:/ })
  t.equal(redirectTarget('ws://a/play?name=n&v=3', { port: 0, host: '', url: 'wss://b/play?room=r&route=w' }), 'wss://b/play?room=r&route=w&name=n&v=3', 'ws -> wss is fine')
})

t.test('ROOM_MOVED during play: the SDK joins the same room again through its original URL', async (t) => {
  // Public endpoint -> REDIRECT (url) -> worker B, which later closes with ROOM_MOVED. The rejoin must go to the
  // public endpoint again (B may be the machine that lost the room), which now leads to worker C.
  const b = await fakeServer(t, (_n, q) => ({ play: (ws) => welcome(ws, q, 'lobby') }))
  const c = await fakeServer(t, (_n, q) => ({ play: (ws) => welcome(ws, q, 'lobby') }))
  const publicEp = await fakeServer(t, (n, q) => {
    const to = n === 0 ? b : c
    return { play: (ws) => redirect(ws, { port: 0, host: '', url: `ws://127.0.0.1:${to.port}/play?room=lobby&route=${n === 0 ? 'b' : 'c'}` }, Number(q.get('v'))) }
  })
  const client = await connect(t, publicEp.url, { room: 'lobby', name: 'dee' })
  const first = client.welcome
  await until(() => client.table.tick === 1, 10_000, 'the first STATE')
  const rejoined = new Promise<[Welcome, number, string | undefined]>((r) => client.on('rejoined', (w, code, name) => r([w, code, name])))
  for (const ws of b.sockets) ws.close(CloseCode.ROOM_MOVED, CloseReason.ROOM_MOVED)
  const [w, code, name] = await rejoined
  t.same([code, name], [CloseCode.ROOM_MOVED, 'ROOM_MOVED'], 'rejoined, with the reason')
  t.equal(publicEp.queries.length, 2, 'the rejoin went to the public endpoint')
  t.same(params(publicEp.queries[1] as URLSearchParams), [['name', 'dee'], ['room', 'lobby'], ['v', '3']], 'the same room, no resume')
  t.equal(b.queries.length, 1, 'not back to the worker that lost the room')
  t.same(params(c.queries[0] as URLSearchParams), [['name', 'dee'], ['room', 'lobby'], ['route', 'c'], ['v', '3']], 'then on to the new owner')
  t.not(w.playerId, first.playerId, 'a new seat')
  t.equal(client.welcome, w)
  t.equal(client.rejoins, 1)
  t.equal(client.redirects, 2)
  t.notOk(client.closed)
})

t.test('ROOM_MOVED after quick play: the rejoin names the room of the last WELCOME', async (t) => {
  const s = await fakeServer(t, (_n, q) => ({ play: (ws) => welcome(ws, q, 'qp-7f3a') }))
  const client = await connect(t, s.url, { name: 'eve' })
  t.equal(s.queries[0]?.get('room'), null, 'joined by quick play')
  const rejoined = new Promise<number>((r) => client.on('rejoined', (_w, code) => r(code)))
  for (const ws of s.sockets) ws.close(CloseCode.ROOM_MOVED, CloseReason.ROOM_MOVED)
  t.equal(await rejoined, CloseCode.ROOM_MOVED)
  t.same(params(s.queries[1] as URLSearchParams), [['name', 'eve'], ['room', 'qp-7f3a'], ['v', '3']], 'the same room by id, not quick play')
})

t.test('a lost connection resumes from the original URL, retrying through an HTTP 503', async (t) => {
  // The owner (B) dies; the public endpoint first answers 503 (the directory has not noticed yet), then seats the resume.
  const b = await fakeServer(t, (_n, q) => ({ play: (ws) => welcome(ws, q, 'lobby', { resumeToken: 'tok-b' }) }))
  let resumedAt: Welcome | null = null
  const publicEp = await fakeServer(t, (n, q) => {
    if (n === 0) return { play: (ws) => redirect(ws, { port: 0, host: '', url: `ws://127.0.0.1:${b.port}/play?room=lobby&route=b` }, Number(q.get('v'))) }
    if (n === 1) return { http: 503 }
    return { play: (ws) => (resumedAt = welcome(ws, q, 'lobby', { playerId: Number(q.get('player')) })) }
  })
  const client = await connect(t, publicEp.url, { room: 'lobby', name: 'fay' })
  const first = client.welcome
  const attempts: number[] = []
  client.on('reconnecting', (_code, _name, attempt) => attempts.push(attempt))
  const resumed = new Promise<void>((r) => client.on('resumed', () => r()))
  for (const ws of b.sockets) ws.terminate() // no close frame: the client sees 1006
  await resumed
  t.equal(b.queries.length, 1, 'never back to the redirect target')
  t.equal(publicEp.queries.length, 3, 'the first join, the 503, the resume')
  for (const i of [1, 2]) {
    t.same(params(publicEp.queries[i] as URLSearchParams), [['name', 'fay'], ['player', String(first.playerId)], ['resume', 'tok-b'], ['room', 'lobby'], ['v', '3']], `attempt ${i}: a resume of the seat`)
  }
  t.same(attempts, [1, 2], 'the 503 was retried')
  t.same(client.welcome, { type: MsgType.WELCOME, ...(resumedAt as Welcome | null) }, 'the resume\'s WELCOME')
  t.equal(client.welcome.playerId, first.playerId, 'the same seat')
  await until(() => client.table.tick === 1, 10_000, 'the STATE after the resume')
  t.equal(client.resumes, 1)
  t.notOk(client.closed)
})

t.test('during a reconnect a redirect loop (rooms moving) is a failed attempt, retried', async (t) => {
  let self = ''
  // 0: the first join; 1-4: one attempt that redirects more than 3 times; then a seat.
  const s = await fakeServer(t, (n, q) => {
    if (n >= 1 && n <= 4) return { play: (ws) => redirect(ws, { port: 0, host: '', url: `${self}?room=r&route=again` }, 3) }
    return { play: (ws) => welcome(ws, q, 'r') }
  })
  self = s.url
  const client = await connect(t, s.url, { room: 'r' })
  const attempts: [number, number][] = []
  client.on('reconnecting', (code, _name, attempt) => attempts.push([code, attempt]))
  const rejoined = new Promise<void>((r) => client.on('rejoined', () => r()))
  for (const ws of s.sockets) ws.close(CloseCode.SHUTDOWN, CloseReason.SHUTDOWN)
  await rejoined
  t.same(attempts, [[CloseCode.SHUTDOWN, 1], [CloseCode.REDIRECT, 2]], 'the loop failed attempt 1; attempt 2 got a seat')
  t.equal(s.queries.length, 6)
  t.notOk(client.closed)
})

t.test('SERVER_FULL while reconnecting is retried with backoff (the public URL may lead to a worker with room next time)', async (t) => {
  // Upgrade 0: seated, then closed 1001. Upgrade 1: SERVER_FULL. Upgrade 2: seated again.
  const ep = await fakeServer(t, (n, q) => ({
    play: (ws) => {
      if (n === 1) ws.close(CloseCode.SERVER_FULL, CloseReason.SERVER_FULL)
      else welcome(ws, q, 'lobby')
    },
  }))
  const client = await connect(t, ep.url, { room: 'lobby' })
  await until(() => client.table.tick === 1, 10_000, 'the first STATE')
  const codes: number[] = []
  client.on('reconnecting', (code) => codes.push(code))
  const rejoined = new Promise<void>((r) => client.on('rejoined', () => r()))
  for (const ws of ep.sockets) ws.close(CloseCode.SHUTDOWN, CloseReason.SHUTDOWN)
  await rejoined
  t.same(codes, [CloseCode.SHUTDOWN, CloseCode.SERVER_FULL], 'a second attempt after the SERVER_FULL one')
  t.equal(ep.queries.length, 3)
  t.notOk(client.closed, 'the session goes on')
})
