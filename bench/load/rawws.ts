/**
 * The load generator's WebSocket client: just enough of RFC 6455 over a raw
 * `net` socket for bots, so thousands of them fit on one core.
 *
 * What `ws` does per message and a bot does not need: an EventEmitter per
 * socket, a Buffer per frame (and per fragment), a random mask per send, UTF-8
 * validation, permessage-deflate negotiation. Here a frame's payload is a
 * view into the chunk the kernel handed over (no copy unless the frame spans
 * chunks), and client frames use the all-zero mask: RFC 6455 asks for an
 * unpredictable key to protect intermediaries from cache poisoning by
 * browser scripts, which a load generator on its own connections is not;
 * a server cannot tell (it unmasks either way) and the bot skips the XOR.
 *
 * `wss://` goes through `ws` (TLS costs dwarf framing there), behind the same
 * interface: see openSocket.
 */
import { createHash, randomBytes } from 'node:crypto'
import { connect as netConnect, type Socket } from 'node:net'
import { WebSocket } from 'ws'

/** What a bot needs of a WebSocket, whichever implementation is behind it. */
export interface BotSocket {
  /** Sends one binary message (copied into the socket's queue before return). */
  send(data: Uint8Array): void
  /** Starts the closing handshake (code 1000 unless given). */
  close(code?: number): void
  /** Stops reading: the kernel buffers fill and the server sees a slow reader. */
  pause(): void
  resume(): void
  readonly open: boolean
}

export interface SocketEvents {
  /** A binary or text message; `data` is valid only during the call (a view into a reused chunk). */
  message(data: Uint8Array): void
  /** The connection ended: the peer's close code, 1005 when its close frame had none, 1006 when cut. */
  close(code: number, reason: string): void
}

export interface OpenOptions {
  readonly localAddress?: string | undefined
  /** Upgrade and first byte within this long, ms (default 10 s). */
  readonly timeoutMs?: number
}

/** A handshake the server refused: its HTTP status, so callers can report 401/429/... as such. */
export class UpgradeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
    this.name = 'UpgradeError'
  }
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** Largest message a bot accepts (a server frame is a few hundred bytes; a full state a few KiB). */
const MAX_MESSAGE = 16 * 1024 * 1024

/** Opens a bot socket: raw framing for ws://, the `ws` package for wss://. Resolves once the upgrade succeeded. */
export function openSocket(url: string, opts: OpenOptions, events: SocketEvents): Promise<BotSocket> {
  const u = new URL(url)
  if (u.protocol === 'ws:') return RawSocket.open(u, opts, events)
  if (u.protocol === 'wss:') return openWs(url, opts, events)
  return Promise.reject(new Error(`not a WebSocket URL: ${url}`))
}

function openWs(url: string, opts: OpenOptions, events: SocketEvents): Promise<BotSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress: opts.localAddress, perMessageDeflate: false, handshakeTimeout: opts.timeoutMs ?? 10_000 })
    ws.binaryType = 'nodebuffer'
    let opened = false
    ws.on('unexpected-response', (_req, res) => {
      reject(new UpgradeError(res.statusCode ?? 0, `upgrade refused: HTTP ${res.statusCode}`))
      ws.terminate()
    })
    ws.on('error', (err) => {
      if (!opened) reject(err)
    })
    ws.on('open', () => {
      opened = true
      resolve({
        send: (d) => ws.send(d),
        close: (code = 1000) => ws.close(code),
        pause: () => (ws as unknown as { _socket: Socket })._socket.pause(),
        resume: () => (ws as unknown as { _socket: Socket })._socket.resume(),
        get open() {
          return ws.readyState === WebSocket.OPEN
        },
      })
    })
    ws.on('message', (d: Buffer) => events.message(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)))
    ws.on('close', (code, reason) => {
      if (opened) events.close(code, reason.toString())
    })
  })
}

const enum State {
  UPGRADING,
  OPEN,
  CLOSING,
  CLOSED,
}

/** A WebSocket client over `net`: one object and one 'data' listener per connection. */
export class RawSocket implements BotSocket {
  readonly #sock: Socket
  readonly #events: SocketEvents
  #state = State.UPGRADING
  /** Bytes of an incomplete frame carried to the next chunk (rare: frames are small). */
  #carry: Buffer | null = null
  /** Fragments of a message in progress (FIN=0), rare in practice. */
  #fragments: Buffer[] | null = null
  #closeCode = 1006
  #closeReason = ''

  private constructor(sock: Socket, events: SocketEvents) {
    this.#sock = sock
    this.#events = events
  }

  static open(u: URL, opts: OpenOptions, events: SocketEvents): Promise<BotSocket> {
    const port = Number(u.port || 80)
    const host = u.hostname.replace(/^\[|\]$/g, '')
    const sock = netConnect({ host, port, localAddress: opts.localAddress, noDelay: true })
    const ws = new RawSocket(sock, events)
    const key = randomBytes(16).toString('base64')
    const accept = createHash('sha1').update(key + GUID).digest('base64')
    return new Promise((resolve, reject) => {
      let head: Buffer = Buffer.alloc(0)
      const timer = setTimeout(() => fail(new Error(`no upgrade answer within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000)
      const fail = (err: Error): void => {
        clearTimeout(timer)
        ws.#state = State.CLOSED
        sock.destroy()
        reject(err)
      }
      sock.once('error', fail)
      sock.once('close', () => fail(new Error('connection closed during the upgrade')))
      sock.on('connect', () => {
        sock.write(
          `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        )
      })
      const onHead = (chunk: Buffer): void => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) {
          if (head.length > 16384) fail(new Error('upgrade answer headers over 16 KiB'))
          return
        }
        const lines = head.subarray(0, end).toString('latin1').split('\r\n')
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
        if (status !== 101) return fail(new UpgradeError(status, `upgrade refused: ${lines[0] ?? '(no status line)'}`))
        const got = lines.find((l) => /^sec-websocket-accept:/i.test(l))?.split(':')[1]?.trim()
        if (got !== accept) return fail(new Error('upgrade answer has a wrong Sec-WebSocket-Accept'))
        clearTimeout(timer)
        sock.removeAllListeners('error')
        sock.removeAllListeners('close')
        sock.off('data', onHead)
        ws.#state = State.OPEN
        sock.on('data', (c: Buffer) => ws.#onData(c))
        sock.on('error', () => {}) // 'close' follows and reports 1006
        sock.on('close', () => ws.#finish())
        resolve(ws)
        const rest = head.subarray(end + 4)
        if (rest.length > 0) ws.#onData(rest)
      }
      sock.on('data', onHead)
    })
  }

  get open(): boolean {
    return this.#state === State.OPEN
  }

  send(data: Uint8Array): void {
    if (this.#state !== State.OPEN) return
    this.#sock.write(frame(0x2, data))
  }

  close(code = 1000): void {
    if (this.#state !== State.OPEN) return
    this.#state = State.CLOSING
    const body = Buffer.allocUnsafe(2)
    body.writeUInt16BE(code, 0)
    this.#sock.write(frame(0x8, body))
    // The server answers with its close frame and ends the TCP connection; do not wait forever.
    setTimeout(() => this.#sock.destroy(), 2000).unref()
  }

  pause(): void {
    this.#sock.pause()
  }

  resume(): void {
    this.#sock.resume()
  }

  #onData(chunk: Buffer): void {
    let buf = chunk
    if (this.#carry) {
      buf = Buffer.concat([this.#carry, chunk])
      this.#carry = null
    }
    let o = 0
    const n = buf.length
    while (this.#state !== State.CLOSED && n - o >= 2) {
      const b0 = buf[o] as number
      const b1 = buf[o + 1] as number
      if ((b1 & 0x80) !== 0) return this.#fail('masked server frame')
      let len = b1 & 0x7f
      let p = o + 2
      if (len === 126) {
        if (n - p < 2) break
        len = buf.readUInt16BE(p)
        p += 2
      } else if (len === 127) {
        if (n - p < 8) break
        const hi = buf.readUInt32BE(p)
        len = hi * 2 ** 32 + buf.readUInt32BE(p + 4)
        p += 8
      }
      if (len > MAX_MESSAGE) return this.#fail(`frame of ${len} bytes`)
      if (n - p < len) break
      const payload = buf.subarray(p, p + len)
      o = p + len
      this.#onFrame(b0, payload)
    }
    if (o < n && this.#state !== State.CLOSED) this.#carry = Buffer.from(buf.subarray(o)) // copy: the chunk may be reused
  }

  #onFrame(b0: number, payload: Buffer): void {
    const fin = (b0 & 0x80) !== 0
    const op = b0 & 0x0f
    switch (op) {
      case 0x1:
      case 0x2:
        if (this.#fragments) return this.#fail('new message inside a fragmented one')
        if (fin) {
          if (this.#state === State.OPEN) this.#events.message(payload)
        } else this.#fragments = [Buffer.from(payload)]
        return
      case 0x0: {
        const parts = this.#fragments
        if (!parts) return this.#fail('continuation frame without a message')
        parts.push(Buffer.from(payload))
        if (fin) {
          this.#fragments = null
          if (this.#state === State.OPEN) this.#events.message(Buffer.concat(parts))
        }
        return
      }
      case 0x8: {
        this.#closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
        this.#closeReason = payload.length > 2 ? payload.subarray(2).toString('utf8') : ''
        if (this.#state === State.OPEN) {
          // Echo the code back, as the closing handshake asks; the server then ends the TCP connection.
          this.#state = State.CLOSING
          this.#sock.write(frame(0x8, payload.subarray(0, Math.min(2, payload.length))))
        }
        this.#sock.end()
        return
      }
      case 0x9:
        if (this.#state === State.OPEN) this.#sock.write(frame(0xa, payload))
        return
      case 0xa:
        return
      default:
        this.#fail(`unknown opcode ${op}`)
    }
  }

  /** A protocol error by the server: close 1002 and cut. */
  #fail(why: string): void {
    this.#closeCode = 1002
    this.#closeReason = why
    if (this.#state === State.OPEN) {
      const body = Buffer.allocUnsafe(2)
      body.writeUInt16BE(1002, 0)
      this.#sock.write(frame(0x8, body))
    }
    this.#sock.destroy()
    this.#finish()
  }

  #finish(): void {
    if (this.#state === State.CLOSED) return
    this.#state = State.CLOSED
    this.#events.close(this.#closeCode, this.#closeReason)
  }
}

/** A client frame with FIN set and the all-zero mask (see the file comment), so the payload goes as is. */
function frame(op: number, payload: Uint8Array): Buffer {
  const len = payload.length
  const hl = len < 126 ? 6 : len < 65536 ? 8 : 14
  const out = Buffer.allocUnsafe(hl + len)
  out[0] = 0x80 | op
  if (len < 126) out[1] = 0x80 | len
  else if (len < 65536) {
    out[1] = 0x80 | 126
    out.writeUInt16BE(len, 2)
  } else {
    out[1] = 0x80 | 127
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2)
    out.writeUInt32BE(len >>> 0, 6)
  }
  out.writeUInt32BE(0, hl - 4) // the mask key
  out.set(payload, hl)
  return out
}
