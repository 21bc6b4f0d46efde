/**
 * tickwire client SDK: connects to a tickwire server, keeps a local entity
 * table in sync with STATE frames, acknowledges every applied tick, and sends
 * inputs. Game-agnostic: field and input names come from the server's WELCOME.
 *
 * Runs in browsers (global `WebSocket`) and in Node 20 (through the `ws`
 * package, loaded only when there is no global WebSocket).
 *
 * @example
 * ```ts
 * import { TickwireClient } from 'tickwire/client'
 * const client = await TickwireClient.connect('ws://localhost:9001/play', { name: 'ada' })
 * client.on('state', () => {
 *   const me = client.table.entities.get(client.welcome.entityId)
 *   client.sendInput([100, 0]) // full speed to the right (reference game)
 * })
 * ```
 */
import {
  CloseCode,
  MsgType,
  closeCodeName,
  decodeServerMessage,
  encodeAck,
  encodeInput,
  encodePing,
  type Redirect,
  type ServerMessage,
  type StateFrame,
  type Welcome,
} from '../../proto/index.js'
import { EntityTable, type ApplyResult } from './table.js'

export { EntityTable } from './table.js'
export { SnapshotInterpolator, INTERPOLATOR_DEFAULTS } from './interpolation.js'
export type { InterpolatorOptions, SnapshotEntities } from './interpolation.js'
export { InputPredictor, PREDICTOR_DEFAULTS } from './prediction.js'
export type { PredictorOptions, StepFn } from './prediction.js'
export type { ApplyResult, EntityValues } from './table.js'
export { CloseCode, closeCodeName } from '../../proto/index.js'

export interface ConnectOptions {
  /** Room id to join; omit for quick play. */
  readonly room?: string
  /** Display name (at most 32 bytes). */
  readonly name?: string
  /** Send an ACK for every applied tick (default true). Turn off only to test flow control. */
  readonly autoAck?: boolean
  /** Milliseconds to wait for WELCOME, per attempt (default 5000). */
  readonly timeoutMs?: number
  /**
   * After a lost connection, reconnect by itself (default true): resume the
   * same seat with the resume token, or, if the server refuses it, join
   * afresh (the same `room`, or quick play). See the 'reconnecting',
   * 'resumed' and 'rejoined' events.
   */
  readonly reconnect?: boolean
  /** Failed reconnect attempts in a row before giving up with a final 'close' (default 10). */
  readonly maxReconnects?: number
}

/** Redirects followed per connection attempt before giving up (a room being moved around). */
const MAX_REDIRECTS = 3
/** Reconnect backoff: the first attempt is immediate, then this doubled per failure, up to the cap. */
const RECONNECT_BASE_MS = 100
const RECONNECT_CAP_MS = 5000

/** Close codes after which the seat may still be held: try to resume it. */
const RESUMABLE: ReadonlySet<number> = new Set([1005, 1006, CloseCode.TOO_SLOW, CloseCode.DESYNC])
/** Close codes after which the seat is gone but playing on makes sense: join afresh. */
const REJOINABLE: ReadonlySet<number> = new Set([CloseCode.SHUTDOWN, CloseCode.INTERNAL_ERROR])
/** The server refused the resume token: join afresh right away. */
const RESUME_REFUSED: ReadonlySet<number> = new Set([CloseCode.RESUME_INVALID, CloseCode.RESUME_EXPIRED, CloseCode.RESUME_USED])

/**
 * Events. Listeners run after the frame is applied; an exception a listener
 * throws is the application's and propagates like any event-handler error
 * (in Node through `ws`: an uncaught exception), it is not treated as a
 * protocol error.
 */
export interface ClientEvents {
  /** A STATE frame was applied to `table`. */
  state: (frame: StateFrame, result: ApplyResult) => void
  /** PONG: round-trip time in ms, and the players seated in this client's room. */
  pong: (rttMs: number, roomPlayers: number) => void
  /** The connection dropped and the client is reconnecting (`attempt` counts from 1). */
  reconnecting: (code: number, codeName: string | undefined, attempt: number) => void
  /** Reconnected to the same seat (same entity); `table` restarts from a full state. */
  resumed: () => void
  /**
   * The seat was lost (the server refused the resume with `codeName`, or closed
   * the room or shut down): the client joined afresh. `welcome` is new (new
   * entity, perhaps a new room); `table` restarts from a full state.
   */
  rejoined: (welcome: Welcome, code: number, codeName: string | undefined) => void
  /** The connection closed for good (no reconnect, or reconnecting gave up). */
  close: (code: number, reason: string, codeName: string | undefined) => void
  /** A frame from the server broke the protocol; the client closes the connection. */
  error: (err: Error) => void
}

/** The parts of the WebSocket API the SDK uses (browser and `ws` both have them). */
interface SocketLike {
  binaryType: string
  readyState: number
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
}
type SocketCtor = new (url: string) => SocketLike

async function socketCtor(): Promise<SocketCtor> {
  const g = globalThis as { WebSocket?: SocketCtor }
  if (g.WebSocket) return g.WebSocket
  const mod = (await import('ws')) as unknown as { WebSocket: SocketCtor }
  return mod.WebSocket
}

/** Thrown by `connect` when no WELCOME arrives. `code` is the close code, if the server closed. */
export class ConnectError extends Error {
  override name = 'ConnectError'
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message)
  }
}

/**
 * Opens one connection and waits for WELCOME, following REDIRECTs (the room
 * lives on another worker) to at most MAX_REDIRECTS other addresses.
 */
async function open(Ctor: SocketCtor, url: string, timeoutMs: number, cancelled = () => false): Promise<{ socket: SocketLike; welcome: Welcome; redirects: number }> {
  for (let hop = 0; ; hop++) {
    const r = await openOnce(Ctor, url, timeoutMs)
    if ('socket' in r) return { ...r, redirects: hop }
    if (cancelled()) throw new ConnectError('cancelled')
    if (hop >= MAX_REDIRECTS) throw new ConnectError(`more than ${MAX_REDIRECTS} redirects`, CloseCode.REDIRECT)
    const u = new URL(url)
    if (r.redirect.host !== '') u.hostname = r.redirect.host
    u.port = String(r.redirect.port)
    url = u.toString()
  }
}

function openOnce(Ctor: SocketCtor, url: string, timeoutMs: number): Promise<{ socket: SocketLike; welcome: Welcome } | { redirect: Redirect }> {
  const socket = new Ctor(url)
  socket.binaryType = 'arraybuffer'
  return new Promise((resolve, reject) => {
    let redirect: Redirect | null = null
    const timer = setTimeout(() => {
      socket.close()
      reject(new ConnectError(`no WELCOME within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.onerror = () => {}
    socket.onclose = (ev) => {
      clearTimeout(timer)
      if (redirect && ev.code === CloseCode.REDIRECT) return resolve({ redirect })
      const name = closeCodeName(ev.code)
      reject(new ConnectError(`closed before WELCOME: ${ev.code}${name ? ` ${name}` : ''} ${ev.reason}`, ev.code))
    }
    socket.onmessage = (ev) => {
      try {
        const msg = decodeServerMessage(toBytes(ev.data))
        if (msg.type === MsgType.REDIRECT && redirect === null) {
          redirect = { port: msg.port, host: msg.host } // the server closes with REDIRECT next
          return
        }
        if (msg.type !== MsgType.WELCOME) throw new Error(`expected WELCOME, got type ${msg.type}`)
        clearTimeout(timer)
        socket.onclose = null
        socket.onmessage = null
        resolve({ socket, welcome: msg })
      } catch (err) {
        clearTimeout(timer)
        socket.onclose = null
        socket.close()
        reject(new ConnectError((err as Error).message))
      }
    }
  })
}

/**
 * A player session: one connection at a time, re-established by itself after
 * a drop (unless `reconnect: false`). `welcome` and `table` always describe
 * the current connection.
 */
export class TickwireClient {
  readonly table: EntityTable
  /** Last input sequence number sent. */
  inputSeq = 0
  /** Last input sequence number the server reports applied. */
  serverInputSeq = 0
  /** Bytes and frames received so far, over all connections. */
  bytesReceived = 0
  framesReceived = 0
  /** Reconnects that resumed the seat, and that had to join afresh. */
  resumes = 0
  rejoins = 0
  /** REDIRECTs followed (the room lived on another worker), over all connections. */
  redirects = 0
  #welcome: Welcome
  #socket: SocketLike
  readonly #Ctor: SocketCtor
  readonly #url: string
  readonly #opts: ConnectOptions
  #ackPending = false
  #closed = false
  /** Set by close(): the application ended the session. */
  #ended = false
  #reconnecting = false
  #listeners: { [K in keyof ClientEvents]: ClientEvents[K][] } = {
    state: [],
    pong: [],
    reconnecting: [],
    resumed: [],
    rejoined: [],
    close: [],
    error: [],
  }

  private constructor(Ctor: SocketCtor, url: string, opts: ConnectOptions, socket: SocketLike, welcome: Welcome) {
    this.#Ctor = Ctor
    this.#url = url
    this.#opts = opts
    this.#socket = socket
    this.#welcome = welcome
    this.table = new EntityTable(welcome.fields, welcome.historyTicks + 2)
    this.#attach(socket)
  }

  /** Builds the `/play` URL with the room and name query. */
  static url(base: string, opts: ConnectOptions = {}): string {
    const u = new URL(base)
    if (opts.room !== undefined) u.searchParams.set('room', opts.room)
    if (opts.name !== undefined) u.searchParams.set('name', opts.name)
    return u.toString()
  }

  /**
   * Opens a connection and resolves once WELCOME arrives (after following a
   * redirect, if the room lives on another worker). Rejects with ConnectError
   * on close or timeout.
   */
  static async connect(url: string, opts: ConnectOptions = {}): Promise<TickwireClient> {
    const Ctor = await socketCtor()
    const { socket, welcome, redirects } = await open(Ctor, TickwireClient.url(url, opts), opts.timeoutMs ?? 5000)
    const client = new TickwireClient(Ctor, url, opts, socket, welcome)
    client.redirects = redirects
    return client
  }

  /** The current connection's WELCOME (replaced when a reconnect joins afresh). */
  get welcome(): Welcome {
    return this.#welcome
  }

  /** The underlying WebSocket (browser `WebSocket` or `ws`): for diagnostics and tests, not for sending. */
  get socket(): unknown {
    return this.#socket
  }

  /** True once the session has ended for good. */
  get closed(): boolean {
    return this.#closed
  }

  /** True while a lost connection is being re-established. */
  get reconnecting(): boolean {
    return this.#reconnecting
  }

  #attach(s: SocketLike): void {
    s.onerror = () => {}
    s.onmessage = (ev) => {
      if (s === this.#socket) this.#onFrame(toBytes(ev.data))
    }
    s.onclose = (ev) => {
      if (s === this.#socket) this.#onClose(ev.code, ev.reason)
    }
  }

  #onClose(code: number, reason: string): void {
    const retry = !this.#ended && (this.#opts.reconnect ?? true) && (RESUMABLE.has(code) || REJOINABLE.has(code))
    if (retry) void this.#reconnect(code)
    else this.#finish(code, reason)
  }

  #finish(code: number, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.#reconnecting = false
    const name = closeCodeName(code)
    for (const fn of this.#listeners.close) fn(code, reason, name)
  }

  /** Resume if the seat may be held, else (or when refused) join afresh; backoff between failed attempts. */
  async #reconnect(code: number): Promise<void> {
    this.#reconnecting = true
    this.#ackPending = false
    const w = this.#welcome
    let resume = RESUMABLE.has(code) && w.resumeToken !== ''
    let lost = code
    const max = this.#opts.maxReconnects ?? 10
    const timeout = this.#opts.timeoutMs ?? 5000
    for (let attempt = 1; attempt <= max; attempt++) {
      if (this.#ended) return
      for (const fn of this.#listeners.reconnecting) fn(lost, closeCodeName(lost), attempt)
      if (attempt > 1) await sleep(Math.min(RECONNECT_BASE_MS * 2 ** (attempt - 2), RECONNECT_CAP_MS))
      if (this.#ended) return
      const url = resume
        ? resumeUrl(this.#url, w, this.#opts.name)
        : TickwireClient.url(this.#url, { room: this.#opts.room, name: this.#opts.name })
      try {
        const { socket, welcome, redirects } = await open(this.#Ctor, url, timeout, () => this.#ended)
        this.redirects += redirects
        if (this.#ended) {
          socket.close()
          return
        }
        this.#socket = socket
        this.#welcome = welcome
        this.table.reset()
        this.#reconnecting = false
        this.#attach(socket)
        if (resume) {
          this.resumes++
          for (const fn of this.#listeners.resumed) fn()
        } else {
          this.serverInputSeq = 0
          this.rejoins++
          for (const fn of this.#listeners.rejoined) fn(welcome, lost, closeCodeName(lost))
        }
        return
      } catch (err) {
        if (this.#ended) return
        const c = err instanceof ConnectError ? err.code : undefined
        if (c !== undefined) lost = c
        if (c !== undefined && RESUME_REFUSED.has(c) && resume) {
          resume = false // the seat is gone: join afresh at once
          attempt--
          continue
        }
        if (c !== undefined && !RESUMABLE.has(c) && !REJOINABLE.has(c)) return this.#finish(c, (err as Error).message)
      }
    }
    this.#finish(lost, `gave up after ${max} reconnect attempts`)
  }

  #onFrame(bytes: Uint8Array): void {
    this.bytesReceived += bytes.byteLength
    this.framesReceived++
    let msg: ServerMessage
    let result: ApplyResult | null = null
    try {
      msg = decodeServerMessage(bytes)
      if (msg.type === MsgType.STATE) result = this.table.apply(msg)
    } catch (err) {
      // The server broke the protocol (or this SDK is out of date): the table can no longer be trusted.
      for (const fn of this.#listeners.error) fn(err as Error)
      this.close()
      return
    }
    // Listeners run outside the try: an exception in game code is the game's, not a protocol error.
    if (msg.type === MsgType.STATE && result) {
      this.serverInputSeq = msg.inputSeq
      if ((this.#opts.autoAck ?? true) && !this.#ackPending) {
        this.#ackPending = true
        // Deferred so that an input sent from a 'state' handler carries the ack instead.
        queueMicrotask(this.#flushAck)
      }
      for (const fn of this.#listeners.state) fn(msg, result)
    } else if (msg.type === MsgType.PONG) {
      const rtt = now() - msg.clientTime
      for (const fn of this.#listeners.pong) fn(rtt, msg.roomPlayers)
    }
  }

  #flushAck = (): void => {
    if (!this.#ackPending) return
    this.#ackPending = false
    this.#send(encodeAck(this.table.tick))
  }

  on<K extends keyof ClientEvents>(event: K, fn: ClientEvents[K]): this {
    this.#listeners[event].push(fn)
    return this
  }

  off<K extends keyof ClientEvents>(event: K, fn: ClientEvents[K]): this {
    const list = this.#listeners[event] as ClientEvents[K][]
    const i = list.indexOf(fn)
    if (i >= 0) list.splice(i, 1)
    return this
  }

  /**
   * Sends an input (integers, in the order of `welcome.input`); carries the
   * ack of the newest tick. Returns its sequence number. While reconnecting
   * the input is dropped (the server would not have applied it either).
   */
  sendInput(values: ArrayLike<number>): number {
    const seq = ++this.inputSeq
    this.#ackPending = false
    this.#send(encodeInput(seq, this.table.tick, values))
    return seq
  }

  /** Acknowledges the newest applied tick now (automatic unless `autoAck: false`). */
  ack(): void {
    this.#ackPending = false
    this.#send(encodeAck(this.table.tick))
  }

  /** Measures round-trip time; the result arrives as a 'pong' event. */
  ping(): void {
    this.#send(encodePing(now()))
  }

  /** Sends raw bytes (for tests of the server's input validation). */
  sendRaw(bytes: Uint8Array | string): void {
    if (this.#socket.readyState === 1) this.#socket.send(bytes as Uint8Array)
  }

  /** Ends the session: closes the connection (no reconnect) and frees the seat on the server. */
  close(code = 1000, reason = ''): void {
    this.#ended = true
    if (this.#socket.readyState <= 1) this.#socket.close(code, reason)
    else this.#finish(code, reason)
  }

  #send(bytes: Uint8Array): void {
    if (this.#socket.readyState === 1) this.#socket.send(bytes)
  }
}

/** The URL that resumes the seat of `w`: its room, its player id and its token. */
function resumeUrl(base: string, w: Welcome, name: string | undefined): string {
  const u = new URL(base)
  u.searchParams.set('room', w.roomId)
  u.searchParams.set('player', String(w.playerId))
  u.searchParams.set('resume', w.resumeToken)
  if (name !== undefined) u.searchParams.set('name', name)
  return u.toString()
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now()
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (Array.isArray(data)) {
    // ws may deliver fragmented frames as Buffer[] when binaryType is 'nodebuffer'.
    const total = data.reduce((n: number, b: Uint8Array) => n + b.byteLength, 0)
    const out = new Uint8Array(total)
    let o = 0
    for (const b of data as Uint8Array[]) {
      out.set(b, o)
      o += b.byteLength
    }
    return out
  }
  throw new Error('text frame from server: the protocol is binary')
}
