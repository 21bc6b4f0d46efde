/**
 * HTTP conformance of the public port where the bundled uWS (20.43 core)
 * leaves it to the application: the checks RFC 6455 §4.2.1 asks of a
 * WebSocket opening handshake, and HEAD (RFC 9110 §9.3.2).
 *
 * What reaches JavaScript, measured on raw sockets against this build:
 * - uWS sends every GET whose `Sec-WebSocket-Key` is 24 characters long to the
 *   upgrade handler, whatever its `Upgrade`, `Connection` and
 *   `Sec-WebSocket-Version` say, and would answer 101 to all of them: the
 *   upgrade handler must call `handshakeRefusal` first.
 * - A GET with no key, or one of another length, goes to the plain GET route
 *   of the path instead (for `/play`: answer it with `handshakeRefusal` too).
 * - uWS answers HEAD with the body of `end(body)`, and with `Content-Length: 0`
 *   for `end()`. `endWithoutBody(n)` with any argument (even `undefined`)
 *   leaves the response unfinished: uWS.js then aborts the process, or, with
 *   `onAborted` set, drops the connection. `writeHeader('Content-Length', n)`
 *   then `endWithoutBody()` is the one form that writes a correct HEAD
 *   response (see `endBody`).
 * - Requests its parser rejects (HTTP/1.0, no `Host`, more than 48 header
 *   fields, bytes that are not HTTP) never reach JavaScript: uWS sends nothing
 *   and closes at its 10 s HTTP idle timeout; a header block over 64 KiB or
 *   so is cut at once, also without a status. Nothing here can change that
 *   (see the README's limits).
 */
import type { HttpResponse } from './uws.js'

/** An HTTP refusal: a status line, headers, and a plain-text body ending with `\n`. */
export interface Refusal {
  /** Status code and reason phrase, as `writeStatus` takes it (`'426 Upgrade Required'`). */
  readonly status: string
  /** Lower-case names, sent in this order. */
  readonly headers: readonly (readonly [string, string])[]
  readonly body: string
}

/** The WebSocket version this server speaks (RFC 6455); the only one accepted. */
export const WEBSOCKET_VERSION = '13'

const TEXT: readonly [string, string] = ['content-type', 'text/plain']
/** RFC 9110 §15.5.22: a 426 names the protocol to upgrade to; §7.8: whoever sends Upgrade also sends `Connection: upgrade`. */
const UPGRADE: readonly (readonly [string, string])[] = [
  ['upgrade', 'websocket'],
  ['connection', 'Upgrade'],
]

/** Every refusal `handshakeRefusal` returns, by cause (frozen: the same objects every time). */
export const HandshakeRefusal = {
  /** No `Upgrade: websocket`: a plain HTTP request (or another protocol) on the WebSocket path. */
  NOT_WEBSOCKET: freeze({ status: '426 Upgrade Required', headers: [...UPGRADE, TEXT], body: 'websocket upgrade required\n' }),
  /** `Upgrade: websocket` without the `upgrade` token in `Connection`. */
  NO_CONNECTION_UPGRADE: freeze({ status: '400 Bad Request', headers: [TEXT], body: 'connection header must include upgrade\n' }),
  /** `Sec-WebSocket-Version` missing or not 13 (RFC 6455 §4.4: say which version we speak). */
  VERSION: freeze({
    status: '426 Upgrade Required',
    headers: [...UPGRADE, ['sec-websocket-version', WEBSOCKET_VERSION], TEXT],
    body: 'websocket version 13 required\n',
  }),
  /** `Sec-WebSocket-Key` missing, or not the base64 of 16 bytes. */
  BAD_KEY: freeze({ status: '400 Bad Request', headers: [TEXT], body: 'sec-websocket-key must be the base64 of 16 bytes\n' }),
} as const

/** 16 bytes in base64 are always 22 characters and `==` (the check the `ws` library makes). */
const KEY = /^[A-Za-z0-9+/]{22}==$/

/** What `handshakeRefusal` reads: uWS's `HttpRequest`, or anything with its `getHeader` (value or `''`). */
export interface HeaderSource {
  getHeader(lowerCaseName: string): string
}

/**
 * Checks a request on the WebSocket path against RFC 6455 §4.2.1: `null` if
 * it is a valid opening handshake, otherwise the refusal to send instead of
 * upgrading (with `writeRefusal`). Checked in this order, the first failure
 * wins: `Upgrade` has the token `websocket` (else 426 `NOT_WEBSOCKET`),
 * `Connection` has the token `upgrade` (else 400), `Sec-WebSocket-Version` is
 * 13 (else 426 `VERSION`), `Sec-WebSocket-Key` is the base64 of 16 bytes
 * (else 400 `BAD_KEY`). Tokens compare case-insensitively. The method (GET)
 * and the HTTP version (1.1) are already checked by uWS's routing and parser.
 * Reads headers only, so it must run synchronously in the uWS handler.
 *
 * @example
 * const refusal = handshakeRefusal(req)
 * if (refusal) return writeRefusal(res, refusal)
 */
export function handshakeRefusal(req: HeaderSource): Refusal | null {
  if (!hasToken(req.getHeader('upgrade'), 'websocket')) return HandshakeRefusal.NOT_WEBSOCKET
  if (!hasToken(req.getHeader('connection'), 'upgrade')) return HandshakeRefusal.NO_CONNECTION_UPGRADE
  if (req.getHeader('sec-websocket-version').trim() !== WEBSOCKET_VERSION) return HandshakeRefusal.VERSION
  if (!KEY.test(req.getHeader('sec-websocket-key'))) return HandshakeRefusal.BAD_KEY
  return null
}

/**
 * Sends a refusal and closes the connection after it (`Connection: close`):
 * a client whose handshake failed gets its answer at once instead of a socket
 * held for uWS's keep-alive. With `head`, the same status and headers with
 * the body's `Content-Length` and no body (the connection stays open: the
 * bundled uWS cannot end a body-less response and close). `Content-Length`
 * is spelled as uWS spells its own, so HEAD and GET headers match byte for byte.
 */
export function writeRefusal(res: HttpResponse, refusal: Refusal, head = false): void {
  res.writeStatus(refusal.status)
  for (const [k, v] of refusal.headers) res.writeHeader(k, v)
  if (head) res.writeHeader('Content-Length', String(Buffer.byteLength(refusal.body))).endWithoutBody()
  else res.end(refusal.body, true)
}

/**
 * Ends a response whose status and headers are written: with `body` for GET,
 * or for HEAD (`head`) with the `Content-Length` the GET would have and no
 * body, which uWS would otherwise send (RFC 9110 §9.3.2).
 */
export function endBody(res: HttpResponse, body: string | Buffer, head: boolean): void {
  if (head) res.writeHeader('Content-Length', String(Buffer.byteLength(body))).endWithoutBody()
  else res.end(body)
}

/** Whether a comma-separated header value lists `token` (lower case), ignoring case and spaces. */
function hasToken(value: string, token: string): boolean {
  if (value === '') return false
  for (const part of value.split(',')) if (part.trim().toLowerCase() === token) return true
  return false
}

function freeze(r: Refusal): Refusal {
  for (const h of r.headers) Object.freeze(h)
  Object.freeze(r.headers)
  return Object.freeze(r)
}
