/**
 * The load generator's raw WebSocket client (bench/load/rawws.ts) against
 * real servers: tickwire (uWS) for the protocol it exists for, and a `ws`
 * server for what uWS never sends (fragments, pings, frames split across
 * TCP chunks, 64-bit lengths).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { unpack } from 'msgpackr'
import { CloseCode, MsgType, PROTOCOL_VERSION, decodeServerMessage, encodePing, newClientMessage, parseClientMessage } from '../proto/index.js'
import { arena } from '../src/games/arena.js'
import { openSocket, UpgradeError, type BotSocket } from '../bench/load/rawws.js'
import { stateHeader, writeAck, writeStickInput } from '../bench/load/tickwire.js'
import { startTest, waitFor } from './helpers/server.js'

interface Seen {
  messages: Uint8Array[]
  closed: { code: number; reason: string } | null
}

function open(url: string, localAddress?: string): Promise<{ ws: BotSocket; seen: Seen }> {
  const seen: Seen = { messages: [], closed: null }
  return openSocket(url, { localAddress }, {
    message: (d) => seen.messages.push(Uint8Array.from(d)), // a view into a reused chunk: copy to keep
    close: (code, reason) => (seen.closed = { code, reason }),
  }).then((ws) => ({ ws, seen }))
}

/** A `ws` server on a free loopback port (closed in t's teardown) and our client connected to it: both ends. */
async function wsPair(t: Test): Promise<{ ws: BotSocket; seen: Seen; s: WebSocket }> {
  const http = createServer()
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    wss.close()
    http.close()
  })
  const server = new Promise<WebSocket>((resolve) => wss.on('connection', resolve))
  const { ws, seen } = await open(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/`)
  return { ws, seen, s: await server }
}

t.test('against tickwire: WELCOME, STATE frames, sparse acks in place, PING/PONG, a close code with its reason', async (t) => {
  const tw = await startTest({ tickHz: 30 })
  t.teardown(() => tw.stop())
  const { ws, seen } = await open(`${tw.url}?v=${PROTOCOL_VERSION}`, '127.0.0.3')
  t.ok(ws.open)
  await waitFor(() => seen.messages.some((m) => stateHeader(m) !== null), 5000, 'a STATE')
  const welcome = decodeServerMessage(seen.messages[0] as Uint8Array)
  t.equal(welcome.type, MsgType.WELCOME, 'WELCOME first')
  // Ack every state for a while with the reused buffer: the server keeps sending (no ack_window stall) and never closes.
  const ackBuf = new Uint8Array(7)
  let last = 0
  const end = Date.now() + 1500
  while (Date.now() < end) {
    for (const m of seen.messages.splice(0)) {
      const h = stateHeader(m)
      if (!h) continue
      t.ok(h.tick > last, 'ticks increase') || t.bailout()
      last = h.tick
      ws.send(writeAck(ackBuf, h.tick))
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  t.ok(last > 0 && seen.closed === null, `acked up to tick ${last}, still open`)
  ws.send(encodePing(1234))
  await waitFor(() => seen.messages.some((m) => stateHeader(m) === null && decodeServerMessage(m).type === MsgType.PONG), 3000, 'a PONG')
  // A text frame is refused by tickwire with its documented close code: the client must report code and reason.
  const text = await open(`${tw.url}?v=${PROTOCOL_VERSION}`, '127.0.0.3')
  await waitFor(() => text.seen.messages.length > 0, 5000, 'WELCOME')
  ;(text.ws as unknown as { send(d: Uint8Array): void }).send(new Uint8Array([0xc1])) // 0xc1: never valid msgpack
  await waitFor(() => text.seen.closed !== null, 5000, 'the server closing a bad message')
  t.equal(text.seen.closed?.code, CloseCode.BAD_MESSAGE, 'close code 4xxx from the server, through the raw client')
  t.ok((text.seen.closed?.reason ?? '').length > 0, `with a reason: ${text.seen.closed?.reason}`)
  ws.close()
  await waitFor(() => seen.closed !== null, 5000, 'our own close to finish')
  t.equal(seen.closed?.code, 1000, 'a client close ends with 1000 (the server echoes it)')
})

t.test("the bots' in-place ACK and stick INPUT encodings read back through the server's own parser", async (t) => {
  const buf = new Uint8Array(16)
  const msg = newClientMessage(2)
  for (const [seq, ack, mx, my] of [
    [1, 0, 0, 0],
    [300, 70000, -100, 100],
    [2 ** 31 - 1, 2 ** 32 - 1, 37, -1],
  ] as const) {
    t.equal(parseClientMessage(writeStickInput(buf, seq, ack, mx, my), arena.input, msg), null, `input ${seq}`)
    t.same([msg.type, msg.seq, msg.ackTick, ...msg.values], [MsgType.INPUT, seq, ack, mx, my])
  }
  const ack = new Uint8Array(7)
  for (const tick of [0, 1, 65536, 2 ** 32 - 1]) {
    t.equal(parseClientMessage(writeAck(ack, tick), arena.input, msg), null)
    t.same([msg.type, msg.ackTick], [MsgType.ACK, tick])
    t.same(unpack(ack), [MsgType.ACK, tick])
  }
})

t.test('a refused upgrade rejects with the HTTP status', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const err = await open(tw.url.replace('/play', '/nowhere')).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof UpgradeError, `an UpgradeError: ${String(err)}`)
  t.equal((err as UpgradeError).status, 404)
  await t.rejects(open('http://127.0.0.1:1/'), /not a WebSocket URL/)
})

t.test('against ws: fragments, pings, split chunks, 16- and 64-bit lengths, a close without a code', async (t) => {
  const got: Buffer[] = []
  let pongs = 0
  const { ws, seen, s } = await wsPair(t)
  s.on('message', (d: Buffer) => got.push(d))
  s.on('pong', () => pongs++)
  const big = Buffer.alloc(70_000, 7) // over 65,535: a 64-bit length
  const mid = Buffer.alloc(300, 3) // a 16-bit length
  s.send(Buffer.from([1, 2]), { fin: false, binary: true })
  s.ping()
  s.send(Buffer.from([3, 4]), { fin: true, binary: true })
  s.send(mid)
  s.send(big)
  await waitFor(() => seen.messages.length >= 3 && pongs >= 1, 5000, 'three messages and a pong')
  t.same([...(seen.messages[0] as Uint8Array)], [1, 2, 3, 4], 'a fragmented message is reassembled; the ping between its fragments answered')
  t.equal(seen.messages[1]?.length, 300)
  t.equal(seen.messages[2]?.length, 70_000, 'big frames arrive whole across TCP chunks')
  t.ok(seen.messages[2]?.every((b) => b === 7))
  // Client -> server: every length form, unmasked by ws correctly (the zero mask is a valid mask).
  for (const n of [0, 5, 125, 126, 65535, 65536]) ws.send(new Uint8Array(n).fill(n & 0xff))
  await waitFor(() => got.length === 6, 5000, 'the six sends')
  t.same(
    got.map((b) => b.length),
    [0, 5, 125, 126, 65535, 65536],
  )
  t.ok(got.every((b) => b.every((x) => x === (b.length & 0xff))), 'payloads intact')
  // A server close frame without a body: 1005, as RFC 6455 reports it.
  s.close()
  await waitFor(() => seen.closed !== null, 5000, 'close')
  t.equal(seen.closed?.code, 1005)
  t.notOk(ws.open)
})

t.test('a cut connection reports 1006; pause stops reading until resume', async (t) => {
  const { ws, seen, s } = await wsPair(t)
  ws.pause()
  s.send(Buffer.from([9]))
  await new Promise((r) => setTimeout(r, 200))
  t.equal(seen.messages.length, 0, 'nothing read while paused')
  ws.resume()
  await waitFor(() => seen.messages.length === 1, 5000, 'the message after resume')
  s.terminate()
  await waitFor(() => seen.closed !== null, 5000, 'close')
  t.equal(seen.closed?.code, 1006)
})
