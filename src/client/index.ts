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
  MsgType,
  PROTOCOL_VERSION,
  closeCodeName,
  decodeServerMessage,
  encodeAck,
  encodeInput,
  encodePing,
  type ServerMessage,
  type StateFrame,
  type Welcome,
} from '../../proto/index.js'
import { EntityTable, type ApplyResult } from './table.js'

export { EntityTable } from './table.js'
export type { ApplyResult, EntityValues } from './table.js'
export { CloseCode, closeCodeName } from '../../proto/index.js'

export interface ConnectOptions {
  /** Room id to join; omit for quick play. */
  readonly room?: string
  /** Display name (at most 32 bytes). */
  readonly name?: string
  /** Send an ACK for every applied tick (default true). Turn off only to test flow control. */
  readonly autoAck?: boolean
  /** Milliseconds to wait for WELCOME (default 5000). */
  readonly timeoutMs?: number
}

/**
 * Events. Listeners run after the frame is applied; an exception a listener
 * throws is the application's and propagates like any event-handler error
 * (in Node through `ws`: an uncaught exception), it is not treated as a
 * protocol error.
 */
export interface ClientEvents {
  /** A STATE frame was applied to `table`. */
  state: (frame: StateFrame, result: ApplyResult) => void
  /** PONG: round-trip time in ms. */
  pong: (rttMs: number) => void
  /** The connection closed. `codeName` is the tickwire name of the code, if it is one. */
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

/** Thrown by `connect` when no WELCOME arrives. */
export class ConnectError extends Error {
  override name = 'ConnectError'
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message)
  }
}

export class TickwireClient {
  readonly welcome: Welcome
  readonly table: EntityTable
  /** Last input sequence number sent. */
  inputSeq = 0
  /** Last input sequence number the server reports applied. */
  serverInputSeq = 0
  /** Bytes and frames received so far. */
  bytesReceived = 0
  framesReceived = 0
  #socket: SocketLike
  #autoAck: boolean
  #ackPending = false
  #closed = false
  #listeners: { [K in keyof ClientEvents]: ClientEvents[K][] } = { state: [], pong: [], close: [], error: [] }

  private constructor(socket: SocketLike, welcome: Welcome, autoAck: boolean) {
    this.#socket = socket
    this.welcome = welcome
    this.#autoAck = autoAck
    this.table = new EntityTable(welcome.fields, welcome.historyTicks + 2)
  }

  /** Builds the `/play` URL with the room and name query. */
  static url(base: string, opts: ConnectOptions = {}): string {
    const u = new URL(base)
    if (opts.room !== undefined) u.searchParams.set('room', opts.room)
    if (opts.name !== undefined) u.searchParams.set('name', opts.name)
    return u.toString()
  }

  /** Opens a connection and resolves once WELCOME arrives. Rejects with ConnectError on close or timeout. */
  static async connect(url: string, opts: ConnectOptions = {}): Promise<TickwireClient> {
    const Ctor = await socketCtor()
    const socket = new Ctor(TickwireClient.url(url, opts))
    socket.binaryType = 'arraybuffer'
    return new Promise<TickwireClient>((resolve, reject) => {
      // Frames that arrive before the client object exists are impossible: WELCOME is first.
      const timer = setTimeout(() => {
        socket.close()
        reject(new ConnectError(`no WELCOME within ${opts.timeoutMs ?? 5000} ms`))
      }, opts.timeoutMs ?? 5000)
      socket.onerror = () => {}
      socket.onclose = (ev) => {
        clearTimeout(timer)
        const name = closeCodeName(ev.code)
        reject(new ConnectError(`closed before WELCOME: ${ev.code}${name ? ` ${name}` : ''} ${ev.reason}`, ev.code))
      }
      socket.onmessage = (ev) => {
        clearTimeout(timer)
        try {
          const msg = decodeServerMessage(toBytes(ev.data))
          if (msg.type !== MsgType.WELCOME) throw new Error(`expected WELCOME, got type ${msg.type}`)
          if (msg.version !== PROTOCOL_VERSION) throw new Error(`server speaks protocol ${msg.version}, this SDK ${PROTOCOL_VERSION}`)
          const client = new TickwireClient(socket, msg, opts.autoAck ?? true)
          client.#attach()
          resolve(client)
        } catch (err) {
          socket.close()
          reject(new ConnectError((err as Error).message))
        }
      }
    })
  }

  #attach(): void {
    const s = this.#socket
    s.onmessage = (ev) => this.#onFrame(toBytes(ev.data))
    s.onclose = (ev) => {
      this.#closed = true
      const name = closeCodeName(ev.code)
      for (const fn of this.#listeners.close) fn(ev.code, ev.reason, name)
    }
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
      if (this.#autoAck && !this.#ackPending) {
        this.#ackPending = true
        // Deferred so that an input sent from a 'state' handler carries the ack instead.
        queueMicrotask(this.#flushAck)
      }
      for (const fn of this.#listeners.state) fn(msg, result)
    } else if (msg.type === MsgType.PONG) {
      const rtt = now() - msg.clientTime
      for (const fn of this.#listeners.pong) fn(rtt)
    }
  }

  #flushAck = (): void => {
    if (!this.#ackPending) return
    this.#ackPending = false
    this.#send(encodeAck(this.table.tick))
  }

  /** True once the connection has closed. */
  get closed(): boolean {
    return this.#closed
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

  /** Sends an input (integers, in the order of `welcome.input`); carries the ack of the newest tick. Returns its sequence number. */
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

  close(code = 1000, reason = ''): void {
    if (this.#socket.readyState <= 1) this.#socket.close(code, reason)
  }

  #send(bytes: Uint8Array): void {
    if (this.#socket.readyState === 1) this.#socket.send(bytes)
  }
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
