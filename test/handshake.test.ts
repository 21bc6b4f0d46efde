/**
 * HTTP and WebSocket conformance of the public port over raw TCP: every
 * refusal tickwire sends (byte-exact status line and headers), HEAD, and -
 * labelled "documents a limit" - what the bundled uWS build does that RFC 6455
 * / RFC 9110 do not allow and tickwire cannot change, pinned so that a uWS
 * upgrade that fixes it makes these tests fail and the README's limits can be
 * updated.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { MsgType, decodeServerMessage, encodePing } from '../proto/index.js'
import { HandshakeRefusal, handshakeRefusal, type HeaderSource } from '../src/net/handshake.js'
import { sample, startTest } from './helpers/server.js'

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==' // RFC 6455's example key
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

/** A fake request: `getHeader` as uWS gives it (the first value, or ''). */
function fake(headers: Record<string, string>): HeaderSource {
  return { getHeader: (name) => headers[name] ?? '' }
}
const VALID = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-version': '13', 'sec-websocket-key': KEY }

t.test('handshakeRefusal: a valid handshake passes, with tokens in any case and in lists', async (t) => {
  t.equal(handshakeRefusal(fake(VALID)), null)
  t.equal(handshakeRefusal(fake({ ...VALID, upgrade: 'WebSocket', connection: 'keep-alive, UPGRADE' })), null)
  t.equal(handshakeRefusal(fake({ ...VALID, upgrade: 'h2c, websocket' })), null)
  t.equal(handshakeRefusal(fake({ ...VALID, 'sec-websocket-key': 'AAAAAAAAAAAAAAAAAAAAAA==' })), null, '16 zero bytes')
  t.equal(handshakeRefusal(fake({ ...VALID, 'sec-websocket-key': '+/+/+/+/+/+/+/+/+/+/+w==' })), null, 'base64 + and /')
})

t.test('handshakeRefusal: each fault gets its refusal, checked in order', async (t) => {
  const R = HandshakeRefusal
  const cases: [string, Record<string, string>, unknown][] = [
    ['no Upgrade', { ...VALID, upgrade: '' }, R.NOT_WEBSOCKET],
    ['Upgrade: h2c', { ...VALID, upgrade: 'h2c' }, R.NOT_WEBSOCKET],
    ['Upgrade: websockets', { ...VALID, upgrade: 'websockets' }, R.NOT_WEBSOCKET],
    ['no Connection', { ...VALID, connection: '' }, R.NO_CONNECTION_UPGRADE],
    ['Connection: keep-alive', { ...VALID, connection: 'keep-alive' }, R.NO_CONNECTION_UPGRADE],
    ['no version', { ...VALID, 'sec-websocket-version': '' }, R.VERSION],
    ['version 8', { ...VALID, 'sec-websocket-version': '8' }, R.VERSION],
    ['version 13, 8', { ...VALID, 'sec-websocket-version': '13, 8' }, R.VERSION],
    ['version 130', { ...VALID, 'sec-websocket-version': '130' }, R.VERSION],
    ['no key', { ...VALID, 'sec-websocket-key': '' }, R.BAD_KEY],
    ['24 characters, not base64', { ...VALID, 'sec-websocket-key': '!!!!!!!!!!!!!!!!!!!!!!==' }, R.BAD_KEY],
    ['base64 of 17 bytes (24 characters)', { ...VALID, 'sec-websocket-key': 'AAAAAAAAAAAAAAAAAAAAAAA=' }, R.BAD_KEY],
    ['base64 of 15 bytes', { ...VALID, 'sec-websocket-key': 'AAAAAAAAAAAAAAAAAAAA' }, R.BAD_KEY],
    ['23 characters', { ...VALID, 'sec-websocket-key': KEY.slice(1) }, R.BAD_KEY],
    ['key with a space', { ...VALID, 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ== ' }, R.BAD_KEY],
    // A hybi-00 client (no key, no version) learns the version it must speak.
    ['wrong version and bad key', { upgrade: 'websocket', connection: 'Upgrade' }, R.VERSION],
    ['no Upgrade and wrong version', { connection: 'Upgrade', 'sec-websocket-version': '8' }, R.NOT_WEBSOCKET],
  ]
  for (const [what, headers, want] of cases) t.equal(handshakeRefusal(fake(headers)), want, what)
})

t.test('handshakeRefusal: the refusals are exact and frozen', async (t) => {
  t.same(HandshakeRefusal.VERSION, {
    status: '426 Upgrade Required',
    headers: [
      ['upgrade', 'websocket'],
      ['connection', 'Upgrade'],
      ['sec-websocket-version', '13'],
      ['content-type', 'text/plain'],
    ],
    body: 'websocket version 13 required\n',
  })
  t.same(HandshakeRefusal.NOT_WEBSOCKET.headers, [
    ['upgrade', 'websocket'],
    ['connection', 'Upgrade'],
    ['content-type', 'text/plain'],
  ])
  t.equal(HandshakeRefusal.BAD_KEY.status, '400 Bad Request')
  t.equal(HandshakeRefusal.NO_CONNECTION_UPGRADE.status, '400 Bad Request')
  for (const r of Object.values(HandshakeRefusal)) {
    t.ok(Object.isFrozen(r) && Object.isFrozen(r.headers) && r.headers.every((h) => Object.isFrozen(h)), r.status)
    t.ok(r.body.endsWith('\n'))
  }
})

// ---- raw TCP -------------------------------------------------------------------------------------------------

interface Exchange {
  /** Everything the server sent. */
  readonly bytes: Buffer
  /** Whether the server closed the connection (FIN or RST) before `ms` ran out. */
  readonly closed: boolean
  readonly ms: number
}

/**
 * Sends `request` on a new connection and collects the answer until the
 * server closes, `done(bytes)` holds, or `ms` passes (a ceiling).
 */
function exchange(port: number, request: string | Buffer, opts: { done?: (b: Buffer) => boolean; ms?: number } = {}): Promise<Exchange> {
  const { done = () => false, ms = 5000 } = opts
  return new Promise((resolve) => {
    const t0 = Date.now()
    const s = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let over = false
    const finish = (closed: boolean) => {
      if (over) return
      over = true
      clearTimeout(timer)
      s.destroy()
      resolve({ bytes: Buffer.concat(chunks), closed, ms: Date.now() - t0 })
    }
    const timer = setTimeout(() => finish(false), ms)
    s.on('data', (d: Buffer) => {
      chunks.push(d)
      if (done(Buffer.concat(chunks))) finish(false)
    })
    s.on('end', () => finish(true))
    s.on('close', () => finish(true))
    s.on('error', () => finish(true))
    s.on('connect', () => s.write(request))
  })
}

interface HttpResponse {
  /** `HTTP/1.1 426 Upgrade Required` */
  readonly status: string
  /** Header lines as sent, without the two that vary (`Date`, `uWebSockets`). */
  readonly headers: readonly string[]
  readonly body: string
}

/** Splits `bytes` into the responses to `methods` (a HEAD response has no body, whatever its Content-Length). */
function responses(bytes: Buffer, methods: readonly string[]): { list: HttpResponse[]; rest: string } {
  let text = bytes.toString('latin1')
  const list: HttpResponse[] = []
  for (const method of methods) {
    const end = text.indexOf('\r\n\r\n')
    if (end < 0) break
    const [status = '', ...lines] = text.slice(0, end).split('\r\n')
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end + 2))?.[1] ?? 0)
    const bodyLength = method === 'HEAD' || /^HTTP\/1\.1 (1\d\d|304)/.test(status) ? 0 : length
    if (text.length < end + 4 + bodyLength) break // not all in yet
    list.push({ status, headers: lines.filter((l) => !/^(date|uwebsockets):/i.test(l)), body: text.slice(end + 4, end + 4 + bodyLength) })
    text = text.slice(end + 4 + bodyLength)
  }
  return { list, rest: text }
}

/** A done() for `exchange`: all responses to `methods` are in. */
const complete = (methods: readonly string[]) => (b: Buffer) => {
  const r = responses(b, methods)
  return r.list.length === methods.length
}

function upgradeRequest(headers: Record<string, string | null>, path = '/play'): string {
  const all: Record<string, string | null> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': KEY,
    'Sec-WebSocket-Version': '13',
    ...headers,
  }
  let s = `GET ${path} HTTP/1.1\r\n`
  for (const [k, v] of Object.entries(all)) if (v !== null) s += `${k}: ${v}\r\n`
  return s + '\r\n'
}

/** The header lines tickwire sends for a refusal, then what uWS adds (Connection: close when closing, Content-Length). */
function refusalLines(r: { headers: readonly (readonly [string, string])[]; body: string }, close: boolean): string[] {
  return [...r.headers.map(([k, v]) => `${k}: ${v}`), ...(close ? ['Connection: close'] : []), `Content-Length: ${Buffer.byteLength(r.body)}`]
}

t.test('a handshake refused by handshakeRefusal in the upgrade handler (wired by the server)', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const R = HandshakeRefusal
  const cases: [string, Record<string, string | null>, typeof R.VERSION][] = [
    ['no Sec-WebSocket-Version', { 'Sec-WebSocket-Version': null }, R.VERSION],
    ['Sec-WebSocket-Version: 8', { 'Sec-WebSocket-Version': '8' }, R.VERSION],
    ['a 24-character key that is not base64', { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' }, R.BAD_KEY],
    ['base64 of 17 bytes', { 'Sec-WebSocket-Key': 'AAAAAAAAAAAAAAAAAAAAAAA=' }, R.BAD_KEY],
    ['a key but no Upgrade header', { Upgrade: null }, R.NOT_WEBSOCKET],
    ['Upgrade without Connection: Upgrade', { Connection: 'keep-alive' }, R.NO_CONNECTION_UPGRADE],
  ]
  for (const [what, headers, want] of cases) {
    const x = await exchange(tw.port, upgradeRequest(headers))
    const [r] = responses(x.bytes, ['GET']).list
    t.equal(r?.status, `HTTP/1.1 ${want.status}`, what)
    t.same(r?.headers, refusalLines(want, true), `${what}: headers`)
    t.equal(r?.body, want.body, `${what}: body`)
    t.ok(x.closed, `${what}: the server closes after refusing (${x.ms} ms)`)
  }
  t.equal(tw.server.connections, 0, 'no WebSocket opened')
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_http_rejected_total{reason="handshake"}'), cases.length)
})

t.test('a valid handshake still upgrades (control)', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const x = await exchange(tw.port, upgradeRequest({}), { done: (b) => b.includes('\r\n\r\n') })
  const [r] = responses(x.bytes, ['GET']).list
  t.equal(r?.status, 'HTTP/1.1 101 Switching Protocols')
  t.ok(r?.headers.includes(`Sec-WebSocket-Accept: ${ACCEPT}`), 'RFC 6455 accept value')
})

t.test('a GET /play that uWS does not route to the upgrade handler is refused by the /play route', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const R = HandshakeRefusal
  const cases: [string, string, typeof R.VERSION][] = [
    ['plain GET /play (a browser tab)', 'GET /play HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n', R.NOT_WEBSOCKET],
    ['plain GET /play with a query', 'GET /play?room=abc HTTP/1.1\r\nHost: x\r\n\r\n', R.NOT_WEBSOCKET],
    ['Upgrade: h2c', 'GET /play HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n', R.NOT_WEBSOCKET],
    ['no Sec-WebSocket-Key', upgradeRequest({ 'Sec-WebSocket-Key': null }), R.BAD_KEY],
    ['a key of 20 characters', upgradeRequest({ 'Sec-WebSocket-Key': 'AAAAAAAAAAAAAAAAAAAA' }), R.BAD_KEY],
    ['a key of 28 characters', upgradeRequest({ 'Sec-WebSocket-Key': KEY + 'AAAA' }), R.BAD_KEY],
    ['hybi-00 (Sec-WebSocket-Key1/Key2, no version)', upgradeRequest({ 'Sec-WebSocket-Key': null, 'Sec-WebSocket-Version': null, 'Sec-WebSocket-Key1': '4 @1  46546xW%0l 1 5', 'Sec-WebSocket-Key2': '12998 5 Y3 1  .P00' }), R.VERSION],
  ]
  for (const [what, request, want] of cases) {
    const x = await exchange(tw.port, request)
    const [r] = responses(x.bytes, ['GET']).list
    t.equal(r?.status, `HTTP/1.1 ${want.status}`, what)
    t.same(r?.headers, refusalLines(want, true), `${what}: headers`)
    t.equal(r?.body, want.body, `${what}: body`)
    t.ok(x.closed, `${what}: closed after the refusal (${x.ms} ms)`)
  }
  // HEAD /play: the same refusal without a body; the connection stays usable (a pipelined GET is answered).
  const x = await exchange(tw.port, 'HEAD /play HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { done: complete(['HEAD', 'GET']) })
  const { list, rest } = responses(x.bytes, ['HEAD', 'GET'])
  t.equal(list[0]?.status, 'HTTP/1.1 426 Upgrade Required', 'HEAD /play')
  t.same(list[0]?.headers, refusalLines(R.NOT_WEBSOCKET, false))
  t.equal(list[1]?.status, 'HTTP/1.1 200 OK', 'the pipelined GET after HEAD /play')
  t.equal(list[1]?.body, 'ok\n')
  t.equal(rest, '', 'no stray body bytes')
  // Other methods: 405 with Allow.
  const post = await exchange(tw.port, 'POST /play HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
  const [p] = responses(post.bytes, ['POST']).list
  t.equal(p?.status, 'HTTP/1.1 405 Method Not Allowed')
  t.same(p?.headers, ['allow: GET, HEAD', 'content-type: text/plain', 'Connection: close', 'Content-Length: 33'])
  t.equal(p?.body, 'use GET with a websocket upgrade\n')
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_http_rejected_total{reason="handshake"}'), cases.length + 2)
  t.equal(sample(m, 'tickwire_http_rejected_total{reason="not_found"}'), 0, 'none of them counted as not_found')
})

t.test('HEAD on every GET route: the GET headers and Content-Length, no body, the connection stays usable', async (t) => {
  const web = mkdtempSync(join(tmpdir(), 'tickwire-web-'))
  t.teardown(() => rmSync(web, { recursive: true, force: true }))
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>t</title>\n')
  writeFileSync(join(web, 'app-ABCDEFGH.js'), 'console.log(1)\n')
  const tw = await startTest({}, { webDir: web })
  t.teardown(() => tw.stop())
  for (const path of ['/healthz', '/readyz', '/info', '/', '/index.html', '/app-ABCDEFGH.js', '/nope']) {
    // GET, then HEAD, then GET again on one connection: the HEAD must not carry a body that would corrupt the next response.
    const methods = ['GET', 'HEAD', 'GET'] as const
    const request = methods.map((m) => `${m} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join('')
    const x = await exchange(tw.port, request, { done: complete(methods) })
    const { list, rest } = responses(x.bytes, methods)
    const [get, head, again] = list
    t.ok(get && head && again, `${path}: three responses`)
    t.equal(head?.status, get?.status, `${path}: HEAD has the GET's status (${get?.status})`)
    t.same(head?.headers, get?.headers, `${path}: HEAD has the GET's headers, Content-Length included`)
    t.equal(head?.body, '', `${path}: no body`)
    t.same(again, get, `${path}: the GET after HEAD is intact`)
    t.equal(rest, '', `${path}: no stray bytes`)
    t.notOk(x.closed, `${path}: connection kept open`)
  }
  // A 304 carries no Content-Length (RFC 9110 §8.6: it would have to be the 200's length).
  const first = responses((await exchange(tw.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { done: complete(['GET']) })).bytes, ['GET']).list[0]
  const etag = first?.headers.find((h) => h.startsWith('etag: '))?.slice(6) as string
  t.ok(etag, 'the page has an etag')
  const x = await exchange(tw.port, `GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: ${etag}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`, { done: complete(['GET', 'GET']) })
  const [nm, ok] = responses(x.bytes, ['GET', 'GET']).list
  t.equal(nm?.status, 'HTTP/1.1 304 Not Modified')
  t.same(nm?.headers, [`etag: ${etag}`, 'cache-control: no-cache'])
  t.equal(ok?.body, 'ok\n', 'the next response on the connection is intact')
})

// ---- what the bundled uWS does not allow: pinned so an upgrade that changes it shows up ------------------------

t.test('documents a limit: requests the uWS parser rejects get no 400/431/505, the socket is closed by its ~10 s idle timeout', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: v\r\n`).join('')
  const cases: [string, string][] = [
    ['junk bytes', 'hello there\r\n\r\n'],
    ['HTTP/1.0', 'GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n'],
    ['HTTP/1.1 without Host', 'GET /healthz HTTP/1.1\r\n\r\n'],
    ['60 header fields', `GET /healthz HTTP/1.1\r\nHost: x\r\n${fields(59)}\r\n`],
    ['a space in a header name', 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n'],
  ]
  // All at once: each takes the idle timeout (measured 12 s); 40 s is a ceiling for a busy machine.
  const results = await Promise.all(cases.map(([, req]) => exchange(tw.port, req, { ms: 40_000 })))
  for (const [i, [what]] of cases.entries()) {
    const x = results[i] as Exchange
    t.equal(x.bytes.length, 0, `${what}: no response at all`)
    t.ok(x.closed, `${what}: closed by the server after ${x.ms} ms`)
    t.ok(x.ms >= 4000, `${what}: only after uWS's HTTP idle timeout, not at once (${x.ms} ms)`)
  }
  // A too-large header set (256 KiB) is cut at once, also without a 431.
  const big = await exchange(tw.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(256 * 1024)}\r\n\r\n`, { ms: 10_000 })
  t.equal(big.bytes.length, 0, '256 KiB of headers: no 431')
  t.ok(big.closed, `256 KiB of headers: connection cut (${big.ms} ms)`)
  t.equal(tw.server.connections, 0)
})

/** An open raw WebSocket: the server's frames as they come, and the socket to write client frames on. */
interface RawWs {
  readonly socket: net.Socket
  readonly frames: { op: number; payload: Buffer }[]
  /** Resolves once the server closed the TCP connection. */
  readonly ended: Promise<void>
}

async function openRaw(port: number): Promise<RawWs> {
  const socket = net.connect(port, '127.0.0.1')
  const frames: { op: number; payload: Buffer }[] = []
  let buf = Buffer.alloc(0)
  let upgraded = false
  const ended = new Promise<void>((resolve) => {
    socket.on('close', () => resolve())
    socket.on('error', () => resolve())
  })
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!buf.subarray(0, end).toString().startsWith('HTTP/1.1 101 ')) reject(new Error(`not upgraded: ${buf.toString()}`))
        upgraded = true
        buf = buf.subarray(end + 4)
        resolve()
      }
      // Server frames are never masked.
      for (;;) {
        if (buf.length < 2) return
        let len = (buf[1] as number) & 0x7f
        let at = 2
        if (len === 126) {
          if (buf.length < 4) return
          len = buf.readUInt16BE(2)
          at = 4
        } else if (len === 127) {
          if (buf.length < 10) return
          len = Number(buf.readBigUInt64BE(2))
          at = 10
        }
        if (buf.length < at + len) return
        frames.push({ op: (buf[0] as number) & 0x0f, payload: Buffer.from(buf.subarray(at, at + len)) })
        buf = buf.subarray(at + len)
      }
    })
    socket.on('error', reject)
    socket.on('connect', () => socket.write(upgradeRequest({})))
  })
  return { socket, frames, ended }
}

/** A client frame (FIN set); masked with `mask` unless `masked` is false, in which case `mask` is sent where a key would be. */
function clientFrame(op: number, payload: Uint8Array, opts: { masked?: boolean; rsv?: number; mask?: Uint8Array } = {}): Buffer {
  const { masked = true, rsv = 0, mask = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d) } = opts
  if (payload.length > 125) throw new Error('short frames only')
  const body = Buffer.from(payload.map((b, i) => b ^ (masked ? (mask[i % 4] as number) : 0)))
  return Buffer.concat([Buffer.from([0x80 | (rsv << 4) | op, (masked ? 0x80 : 0) | payload.length]), Buffer.from(mask), body])
}

function closePayload(code: number, reason: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(code)
  return Buffer.concat([b, reason])
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms))])

t.test('close frames: valid codes are echoed (control)', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  for (const code of [1000, 1001, 4000]) {
    const ws = await openRaw(tw.port)
    ws.socket.write(clientFrame(8, closePayload(code, Buffer.from('bye'))))
    await within(ws.ended, 5000, 'the server to close')
    const close = ws.frames.find((f) => f.op === 8)
    t.equal(close?.payload.toString('hex'), closePayload(code, Buffer.from('bye')).toString('hex'), `${code} echoed`)
  }
})

t.test('documents a limit: an invalid close frame is answered with an empty close (peer sees 1005), not 1002/1007', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const cases: [string, Buffer][] = [
    ['code 999', closePayload(999)],
    ['code 1004 (reserved)', closePayload(1004)],
    ['code 1005 (must not be sent)', closePayload(1005)],
    ['code 1006 (must not be sent)', closePayload(1006)],
    ['code 1015 (must not be sent)', closePayload(1015)],
    ['code 5000', closePayload(5000)],
    ['a one-byte payload', Buffer.from([3])],
    ['1000 with a reason that is not UTF-8', closePayload(1000, Uint8Array.of(0xff, 0xfe))],
    // Valid by RFC 6455 / the IANA registry, yet refused the same way by this uWS build.
    ['code 1012 (valid)', closePayload(1012)],
    ['code 3000 (valid)', closePayload(3000)],
  ]
  for (const [what, payload] of cases) {
    const ws = await openRaw(tw.port)
    ws.socket.write(clientFrame(8, payload))
    await within(ws.ended, 5000, `${what}: the server to close`)
    const close = ws.frames.find((f) => f.op === 8)
    t.ok(close, `${what}: a close frame came back`)
    t.equal(close?.payload.length, 0, `${what}: empty (RFC 6455 wants 1002${what.includes('UTF-8') ? ' / 1007' : ''})`)
  }
})

t.test('documents a limit: protocol errors in frames end the TCP connection without a close frame', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const cases: [string, Buffer][] = [
    ['RSV1 set without an extension', clientFrame(2, encodePing(1), { rsv: 4 })],
    ['reserved opcode 3', clientFrame(3, Uint8Array.of(1))],
    ['text frame with invalid UTF-8', clientFrame(1, Uint8Array.of(0xc3, 0x28))],
  ]
  for (const [what, frame] of cases) {
    const ws = await openRaw(tw.port)
    ws.socket.write(frame)
    await within(ws.ended, 5000, `${what}: the server to close`)
    t.notOk(ws.frames.some((f) => f.op === 8), `${what}: no close frame (RFC 6455 wants 1002${what.includes('UTF-8') ? ' / 1007' : ''})`)
  }
})

t.test('documents a limit: an unmasked client frame is accepted (uWS reads a mask key that is not there)', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const pongs = (ws: RawWs) =>
    ws.frames.filter((f) => f.op === 2).map((f) => decodeServerMessage(f.payload)).filter((m) => m.type === MsgType.PONG)
  // Control: a masked PING is answered.
  const a = await openRaw(tw.port)
  t.teardown(() => a.socket.destroy())
  a.socket.write(clientFrame(2, encodePing(11)))
  // Unmasked, followed by four zero bytes: uWS takes them for the mask key and unmasks the payload with it.
  const b = await openRaw(tw.port)
  t.teardown(() => b.socket.destroy())
  b.socket.write(clientFrame(2, encodePing(22), { masked: false, mask: new Uint8Array(4) }))
  const deadline = Date.now() + 5000
  while ((pongs(a).length === 0 || pongs(b).length === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.same(pongs(a).map((m) => (m as { clientTime: number }).clientTime), [11], 'masked PING answered')
  t.same(pongs(b).map((m) => (m as { clientTime: number }).clientTime), [22], 'unmasked PING answered too (RFC 6455 §5.1: the server must close)')
  t.notOk(b.frames.some((f) => f.op === 8), 'and the connection was not closed')
})
