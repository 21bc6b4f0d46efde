/**
 * tickwire client SDK: connects to a tickwire server, keeps a local entity
 * table in sync with STATE frames, acknowledges applied ticks (in inputs, and
 * by ACK once every `ackEvery(ackWindow)` frames, PROTOCOL.md §6), and sends
 * inputs. Game-agnostic: field and input names come from the server's WELCOME.
 *
 * Runs in browsers (global `WebSocket`) and in Node 20 (through the `ws`
 * package, loaded only when there is no global WebSocket).
 *
 * Speaks protocol 3 (announced with `v=3` on every connection) and also
 * accepts a protocol-2 server's WELCOME (same layout). Behind a load balancer,
 * give it the public URL: redirects, resumes and rejoins are handled here, and
 * every reconnect starts again from that URL, so a player whose machine died
 * reaches a live one.
 *
 * Join tokens (the server's `--auth`): give `getToken` (called before every
 * connection attempt, so a short-lived token is fresh each time) or `token`.
 * The token travels in `Sec-WebSocket-Protocol` as `tickwire.bearer.<token>`
 * beside `tickwire` (the only header a browser lets a page set), never in the
 * URL, and never appears in an error message.
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
  MAX_NAME_BYTES,
  JOIN_OPTION_KEY_PATTERN,
  MAX_JOIN_OPTIONS,
  MAX_JOIN_OPTIONS_CHARS,
  MAX_JOIN_OPTION_BYTES,
  MsgType,
  PROTOCOL_VERSION,
  ROOM_ID_PATTERN,
  closeCodeName,
  dataOf,
  decodeServerMessage,
  ackEvery,
  encodeAck,
  encodeClientMessage,
  valuesOf,
  wireProblem,
  ProtocolError,
  encodeInput,
  encodePing,
  type FieldSpec,
  type InputSpec,
  type MessageSpec,
  type Redirect,
  type ServerMessage,
  type StateFrame,
  type Value,
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
export type { DataOf, MessageData, MessageSpec, Value, ValueSpec } from '../../proto/index.js'

/**
 * The field names of a game declared with `as const` fields, for
 * `TickwireClient.entity<F>()`: `FieldNames<typeof tag>` is `'x' | 'y' | 'it'`.
 */
export type FieldNames<G extends { readonly fields: readonly { readonly name: string }[] }> = G['fields'][number]['name']

export interface ConnectOptions {
  /** Room id to join; omit for quick play. */
  readonly room?: string
  /** Display name (at most 32 bytes). */
  readonly name?: string
  /**
   * Join options for the game's `join` (query `opts`, PROTOCOL.md §1), e.g.
   * `{ team: 'red' }`: at most 16 keys, strings of at most 128 bytes, finite
   * numbers, booleans, 512 characters as JSON. The game may refuse the join
   * with a reason: `connect` then rejects with a ConnectError of code 4016
   * (JOIN_REFUSED), its message holding the reason; no retry.
   */
  readonly joinOptions?: Readonly<Record<string, string | number | boolean>>
  /**
   * Acknowledge applied ticks by itself (default true): every input carries
   * the newest tick, and an ACK goes once `ackEvery(welcome.ackWindow)`
   * frames (4 with the default window of 12; every frame from a protocol 2
   * server) have been applied since the last ack. Turn off only to test flow
   * control.
   */
  readonly autoAck?: boolean
  /** Milliseconds to wait for WELCOME, per attempt (default 5000). */
  readonly timeoutMs?: number
  /**
   * After a lost connection, reconnect by itself (default true): resume the
   * same seat with the resume token, or, if the server refuses it, join
   * afresh (the same `room`, or quick play; after `ROOM_MOVED` the room of
   * the last WELCOME). Every attempt starts from the URL given to `connect`
   * (never from a redirect target); one that fails without a WELCOME (HTTP
   * 503, connection refused, a timeout, a redirect loop) is retried with
   * backoff. See the 'reconnecting', 'resumed' and 'rejoined' events.
   */
  readonly reconnect?: boolean
  /** Failed reconnect attempts in a row before giving up with a final 'close' (default 10). */
  readonly maxReconnects?: number
  /**
   * The WebSocket class to connect with (default: the global `WebSocket`,
   * else the `ws` package in Node). It is constructed as `new C(url)`, or
   * `new C(url, protocols)` when there is a token: a subclass must pass the
   * second argument on (see WebSocketClass).
   */
  readonly WebSocket?: WebSocketClass
  /**
   * A join token for the server's `--auth` (a JWT), used when `getToken` is
   * absent. Empty or absent: no token.
   */
  readonly token?: string
  /**
   * Gives the join token, called before every connection attempt: the first
   * connect, each reconnect attempt, and each redirect hop (so a short-lived
   * token is fresh each time, and a server that refused one with HTTP 401
   * gets a new one on the next attempt). An empty string means no token.
   * If it throws, rejects or does not answer within `timeoutMs`, the attempt
   * fails: `connect` rejects with a ConnectError, a reconnect attempt is
   * retried with backoff.
   */
  readonly getToken?: () => string | Promise<string>
}

/**
 * The subprotocol entries a token travels in. They must match
 * BEARER_PROTOCOL and TICKWIRE_PROTOCOL in src/auth/auth.ts (the SDK imports
 * only proto/).
 */
const BEARER_PROTOCOL = 'tickwire.bearer.'
const TICKWIRE_PROTOCOL = 'tickwire'
/** What a subprotocol may hold (an HTTP token, RFC 7230 tchar): a JWT (base64url and dots) does. */
const PROTOCOL_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Redirects followed per connection attempt before giving up (a room being moved around). */
const MAX_REDIRECTS = 3
/** Reconnect backoff: the first attempt is immediate, then this doubled per failure, up to the cap. */
const RECONNECT_BASE_MS = 100
const RECONNECT_CAP_MS = 5000

/** Close codes after which the seat may still be held: try to resume it. */
const RESUMABLE: ReadonlySet<number> = new Set([1005, 1006, CloseCode.TOO_SLOW, CloseCode.DESYNC])
/** Close codes after which the seat is gone but playing on makes sense: join afresh. */
const REJOINABLE: ReadonlySet<number> = new Set([CloseCode.SHUTDOWN, CloseCode.INTERNAL_ERROR, CloseCode.ROOM_MOVED])
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
  /**
   * A game message (protocol 3): its declared name and values by name
   * (checked against WELCOME's `messages`; no prototype). Each arrives once
   * and in order, also across a resume.
   */
  message: (name: string, data: Readonly<Record<string, Value>>) => void
  /** An entity's props were set or changed (`props` its values by name), or cleared (undefined). `client.props` holds them all. */
  props: (entity: number, props: Readonly<Record<string, Value>> | undefined) => void
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
type SocketCtor = new (url: string, protocols?: string[]) => SocketLike

/**
 * A WebSocket class the SDK can use instead of the platform's: anything
 * constructed from a URL and, when there is a token, the subprotocols
 * (`tickwire`, `tickwire.bearer.<token>`), with the browser WebSocket's
 * members (`ws` in Node is one). In Node, pass a subclass of `ws`'s
 * WebSocket to set TLS options; it must pass the protocols on, or the token
 * is lost:
 * `class extends WebSocket { constructor(u: string, p?: string[]) { super(u, p, { ca }) } }`.
 */
export type WebSocketClass = abstract new (url: string, protocols?: string[]) => unknown

async function socketCtor(): Promise<SocketCtor> {
  const g = globalThis as { WebSocket?: SocketCtor }
  if (g.WebSocket) return g.WebSocket
  const mod = (await import('ws')) as unknown as { WebSocket: SocketCtor }
  return mod.WebSocket
}

/**
 * Thrown by `connect` when no WELCOME arrives. `code` is the close code, if
 * the connection closed (1006 when it never opened). `status` is the HTTP
 * status that refused the upgrade (401: no or a bad token, 403: the token
 * does not allow this room, 503: try later), where the platform tells it:
 * `ws` in Node does, a browser does not (it sees only 1006).
 */
export class ConnectError extends Error {
  override name = 'ConnectError'
  constructor(
    message: string,
    readonly code?: number,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** How each connection attempt is made: the socket class, the WELCOME timeout, where the token comes from. */
interface Dialer {
  readonly Ctor: SocketCtor
  readonly timeoutMs: number
  readonly token?: string
  readonly getToken?: () => string | Promise<string>
}

/**
 * The subprotocols for one attempt: none without a token (a server without
 * `--auth` need not answer any), else `tickwire` and the bearer entry.
 * Errors never include the token.
 */
async function protocolsFor(d: Dialer): Promise<string[] | undefined> {
  let token = d.token ?? ''
  if (d.getToken) {
    const get = d.getToken
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      token = await Promise.race([
        Promise.resolve().then(get),
        new Promise<never>((_r, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${d.timeoutMs} ms`)), d.timeoutMs)
        }),
      ])
    } catch (err) {
      throw new ConnectError(`getToken failed: ${err instanceof Error ? err.message : String(err)}`, undefined, undefined, { cause: err })
    } finally {
      clearTimeout(timer)
    }
    if (typeof token !== 'string') throw new ConnectError(`getToken returned a ${typeof token}, not a string`)
  }
  if (token === '') return undefined
  if (!PROTOCOL_CHARS.test(token)) throw new ConnectError('the token has characters a WebSocket subprotocol cannot carry (a JWT is base64url and dots)')
  return [TICKWIRE_PROTOCOL, BEARER_PROTOCOL + token]
}

/** The HTTP status `ws` reports when a server refuses the upgrade ("Unexpected server response: 401"); browsers tell none. */
function refusedStatus(ev: unknown): number | undefined {
  const message = (ev as { message?: unknown } | null)?.message
  const m = typeof message === 'string' ? /^Unexpected server response: (\d{3})$/.exec(message) : null
  return m ? Number(m[1]) : undefined
}

/** What a refusal at the upgrade says (401 and 403 have their own words: the reconnect logic and the app read them). */
function refusedMessage(status: number): string {
  if (status === 401) return 'unauthorized (401): no token, or the server refused it'
  if (status === 403) return 'forbidden (403)'
  return `refused with HTTP ${status}`
}

/**
 * Opens one connection and waits for WELCOME, following REDIRECTs (the room
 * lives on another worker) to at most MAX_REDIRECTS other addresses.
 */
async function open(d: Dialer, url: string, cancelled = () => false): Promise<Opened & { redirects: number }> {
  for (let hop = 0; ; hop++) {
    const protocols = await protocolsFor(d) // every hop: a fresh token
    if (cancelled()) throw new ConnectError('cancelled')
    const r = await openOnce(d.Ctor, url, protocols, d.timeoutMs)
    if ('socket' in r) return { ...r, redirects: hop }
    if (cancelled()) throw new ConnectError('cancelled')
    if (hop >= MAX_REDIRECTS) throw new ConnectError(`more than ${MAX_REDIRECTS} redirects`, CloseCode.REDIRECT)
    url = redirectTarget(url, r.redirect)
  }
}

/**
 * Where a REDIRECT received on `url` leads. A `url` in the REDIRECT
 * (protocol 3: the public endpoint with `route` and `room`) is opened with
 * this connection's query parameters added (`name`, `player`, `resume`, `v`,
 * ...), except those it carries, which win. Without one (protocol 2's form):
 * the same URL on the REDIRECT's port and host. A wss:// connection is never
 * redirected to ws:// (the query carries the resume token).
 */
export function redirectTarget(url: string, r: Redirect): string {
  const from = new URL(url)
  if (r.url === '') {
    if (r.host !== '') from.hostname = r.host
    from.port = String(r.port)
    return from.toString()
  }
  const to = new URL(r.url)
  if (from.protocol === 'wss:' && to.protocol !== 'wss:') throw new ConnectError(`refused a REDIRECT from wss: to ${to.protocol}`)
  const carried = new Set(to.searchParams.keys())
  for (const [k, v] of from.searchParams) if (!carried.has(k)) to.searchParams.append(k, v)
  return to.toString()
}

/**
 * An open connection past its WELCOME. `early` holds the frames that arrived
 * before the session took the socket over (`ws` in Node emits every frame of
 * a TCP read at once, so the first STATE can come with the WELCOME).
 */
interface Opened {
  readonly socket: SocketLike
  readonly welcome: Welcome
  readonly early: Uint8Array[]
}

function openOnce(Ctor: SocketCtor, url: string, protocols: string[] | undefined, timeoutMs: number): Promise<Opened | { redirect: Redirect }> {
  const socket = protocols ? new Ctor(url, protocols) : new Ctor(url)
  socket.binaryType = 'arraybuffer'
  return new Promise((resolve, reject) => {
    let redirect: Redirect | null = null
    let status: number | undefined
    let failure = '' // what the platform said went wrong (ws tells, e.g. "Server sent no subprotocol"; browsers do not)
    const timer = setTimeout(() => {
      socket.close()
      reject(new ConnectError(`no WELCOME within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.onerror = (ev) => {
      status ??= refusedStatus(ev)
      const m = (ev as { message?: unknown } | null)?.message
      if (typeof m === 'string' && failure === '') failure = m
    }
    socket.onclose = (ev) => {
      clearTimeout(timer)
      if (redirect && ev.code === CloseCode.REDIRECT) return resolve({ redirect })
      if (status !== undefined) return reject(new ConnectError(refusedMessage(status), ev.code, status))
      const name = closeCodeName(ev.code)
      reject(new ConnectError(`closed before WELCOME: ${ev.code}${name ? ` ${name}` : ''} ${ev.reason}${failure ? ` (${failure})` : ''}`, ev.code))
    }
    socket.onmessage = (ev) => {
      try {
        const msg = decodeServerMessage(toBytes(ev.data))
        if (msg.type === MsgType.REDIRECT && redirect === null) {
          redirect = { port: msg.port, host: msg.host, url: msg.url } // the server closes with REDIRECT next
          return
        }
        if (msg.type !== MsgType.WELCOME) throw new Error(`expected WELCOME, got type ${msg.type}`)
        clearTimeout(timer)
        socket.onclose = null
        const early: Uint8Array[] = []
        socket.onmessage = (e) => early.push(toBytes(e.data))
        resolve({ socket, welcome: msg, early })
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
  /**
   * Every entity's props by id (protocol 3, a game that declares `props`):
   * kept across a resume, emptied when the client joins afresh.
   */
  readonly props = new Map<number, Readonly<Record<string, Value>>>()
  /** MESSAGE and PROPS frames dropped as repeats: a resumed connection resends what the server could not know arrived. */
  repeatsDropped = 0
  /** Stream number of the next MESSAGE or PROPS frame on this connection (from WELCOME's `messageSeq`). */
  #streamSeq = 0
  /** Stream number of the next frame not applied yet: a resumed connection's repeats below it are dropped. */
  #streamNext = 0
  #welcome: Welcome
  #socket: SocketLike
  readonly #dialer: Dialer
  readonly #url: string
  readonly #opts: ConnectOptions
  #ackPending = false
  /** STATE frames applied since the last ack (in an INPUT or an ACK) left. */
  #sinceAck = 0
  /** ackEvery(welcome.ackWindow): an ACK goes when #sinceAck reaches it. */
  #ackEvery = 1
  /** Frames held until the session is ready for them (see #attach); null once applied. */
  #early: Uint8Array[] | null = null
  #closed = false
  /** Set by close(): the application ended the session. */
  #ended = false
  #reconnecting = false
  #listeners: { [K in keyof ClientEvents]: ClientEvents[K][] } = {
    state: [],
    message: [],
    props: [],
    pong: [],
    reconnecting: [],
    resumed: [],
    rejoined: [],
    close: [],
    error: [],
  }

  private constructor(dialer: Dialer, url: string, opts: ConnectOptions, opened: Opened) {
    this.#dialer = dialer
    this.#url = url
    this.#opts = opts
    this.#socket = opened.socket
    this.#welcome = opened.welcome
    this.#ackEvery = ackEvery(opened.welcome.ackWindow)
    this.table = new EntityTable(opened.welcome.fields, opened.welcome.historyTicks + 2)
    this.#streamNext = opened.welcome.messageSeq
    this.#attach(opened)
  }

  /** Builds the `/play` URL with the room and name query, and `v` (the protocol version this SDK speaks). */
  static url(base: string, opts: ConnectOptions = {}): string {
    const u = new URL(base)
    if (opts.room !== undefined) u.searchParams.set('room', opts.room)
    if (opts.name !== undefined) u.searchParams.set('name', opts.name)
    if (opts.joinOptions !== undefined && Object.keys(opts.joinOptions).length > 0) u.searchParams.set('opts', JSON.stringify(opts.joinOptions))
    u.searchParams.set('v', String(PROTOCOL_VERSION))
    return u.toString()
  }

  /**
   * Opens a connection and resolves once WELCOME arrives (after following
   * REDIRECTs, at most 3, if the room lives on another worker: to the `url`
   * they carry, or to a worker's port). Rejects with ConnectError on close or
   * timeout. `url` is the public endpoint (e.g. `wss://play.example.com/play`):
   * every later reconnect starts from it again.
   *
   * A server refusing the upgrade rejects it with `status` set where the
   * platform tells it (Node): 401 (no token, or a bad or expired one), 403
   * (the token does not allow this room). A failing `getToken` rejects it
   * with a message that says so.
   */
  static async connect(url: string, opts: ConnectOptions = {}): Promise<TickwireClient> {
    const Ctor = opts.WebSocket ? (opts.WebSocket as unknown as SocketCtor) : await socketCtor()
    const dialer: Dialer = { Ctor, timeoutMs: opts.timeoutMs ?? 5000, token: opts.token, getToken: opts.getToken }
    const opened = await open(dialer, TickwireClient.url(url, opts), () => false)
    const client = new TickwireClient(dialer, url, opts, opened)
    client.redirects = opened.redirects
    return client
  }

  /** The current connection's WELCOME (replaced when a reconnect joins afresh). */
  get welcome(): Welcome {
    return this.#welcome
  }

  /**
   * One entity's fields by name, in world units (each quantized value times
   * its field's quantum), as of the newest applied STATE; undefined when the
   * entity is not in view. `F` names the fields: `FieldNames<typeof myGame>`
   * for a game declared with `as const` fields, so `client.entity<F>(id)?.z`
   * does not compile when the game has no `z`. Allocates one object: for game
   * logic and UI, not for a per-frame loop over thousands of entities (read
   * `table.entities` there).
   */
  entity<F extends string = string>(id: number): Readonly<Record<F, number>> | undefined {
    const values = this.table.entities.get(id)
    if (!values) return undefined
    const fields = this.#welcome.fields
    const out: Record<string, number> = {}
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i] as FieldSpec
      out[f.name] = (values[i] as number) * f.quantum
    }
    return out as Record<F, number>
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

  /**
   * Makes `s` the session's socket. Frames that came with the WELCOME, and
   * any until the next macrotask, are held and then applied in order: so
   * the application has attached its listeners (after `connect` resolves)
   * and seen 'resumed'/'rejoined' before their 'state' events.
   */
  #attach({ socket: s, early, welcome }: Opened): void {
    this.#early = early
    this.#streamSeq = welcome.messageSeq
    s.onerror = () => {}
    s.onmessage = (ev) => {
      if (s !== this.#socket) return
      const bytes = toBytes(ev.data)
      if (this.#early) this.#early.push(bytes)
      else this.#onFrame(bytes)
    }
    s.onclose = (ev) => {
      if (s !== this.#socket) return
      this.#flushEarly()
      this.#onClose(ev.code, ev.reason)
    }
    setTimeout(() => {
      if (s === this.#socket) this.#flushEarly()
    }, 0)
  }

  #flushEarly(): void {
    const frames = this.#early
    if (!frames) return
    this.#early = null
    for (const bytes of frames) {
      if (this.#ended) return // a protocol error in one of them closed the session
      this.#onFrame(bytes)
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

  /**
   * Resume if the seat may be held, else (or when refused) join afresh;
   * backoff between failed attempts. Every attempt starts from the
   * application's URL: a redirect target may be the machine that just died.
   * Each attempt asks `getToken` again. An upgrade refused with HTTP 401
   * (the token expired meanwhile) is a failed attempt, retried with a fresh
   * token; one refused with 403 (where the platform tells it) ends the
   * session: 'close' with 1006 and the reason "forbidden (403)".
   */
  async #reconnect(code: number): Promise<void> {
    this.#reconnecting = true
    this.#ackPending = false
    this.#sinceAck = 0
    const w = this.#welcome
    let resume = RESUMABLE.has(code) && w.resumeToken !== ''
    // The room lives on elsewhere: follow it by id (quick play would land in another room).
    let room = code === CloseCode.ROOM_MOVED ? w.roomId : this.#opts.room
    let lost = code
    const max = this.#opts.maxReconnects ?? 10
    for (let attempt = 1; attempt <= max; attempt++) {
      if (this.#ended) return
      for (const fn of this.#listeners.reconnecting) fn(lost, closeCodeName(lost), attempt)
      if (attempt > 1) await sleep(Math.min(RECONNECT_BASE_MS * 2 ** (attempt - 2), RECONNECT_CAP_MS))
      if (this.#ended) return
      const url = resume
        ? resumeUrl(this.#url, w, this.#opts.name)
        : TickwireClient.url(this.#url, { room, name: this.#opts.name })
      try {
        const opened = await open(this.#dialer, url, () => this.#ended)
        const { socket, welcome } = opened
        this.redirects += opened.redirects
        if (this.#ended) {
          socket.close()
          return
        }
        this.#socket = socket
        this.#welcome = welcome
        this.#ackEvery = ackEvery(welcome.ackWindow)
        this.table.reset()
        this.#reconnecting = false
        this.#attach(opened)
        if (resume) {
          this.resumes++
          for (const fn of this.#listeners.resumed) fn()
        } else {
          this.serverInputSeq = 0
          this.#streamNext = welcome.messageSeq // a new seat: a new stream
          this.props.clear()
          this.rejoins++
          for (const fn of this.#listeners.rejoined) fn(welcome, lost, closeCodeName(lost))
        }
        return
      } catch (err) {
        if (this.#ended) return
        const c = err instanceof ConnectError ? err.code : undefined
        if (c !== undefined) lost = c
        // The token does not allow this room: asking again will not change that.
        if (err instanceof ConnectError && err.status === 403) return this.#finish(c ?? 1006, err.message)
        if (c !== undefined && (RESUME_REFUSED.has(c) || c === CloseCode.ROOM_MOVED) && resume) {
          resume = false // the seat is gone: join afresh at once
          if (c === CloseCode.ROOM_MOVED) room = w.roomId
          attempt--
          continue
        }
        // No close code (timeout, getToken failed), 1006 (HTTP 401 or 503, a refused connection), a redirect loop while rooms
        // move, or a full server: retried with backoff. Any other code ends the session.
        // SERVER_FULL too: the public URL may lead to another, emptier worker next time.
        if (c !== undefined && !RESUMABLE.has(c) && !REJOINABLE.has(c) && c !== CloseCode.REDIRECT && c !== CloseCode.SERVER_FULL) return this.#finish(c, (err as Error).message)
      }
    }
    this.#finish(lost, `gave up after ${max} reconnect attempts`)
  }

  #onFrame(bytes: Uint8Array): void {
    this.bytesReceived += bytes.byteLength
    this.framesReceived++
    let msg: ServerMessage
    let result: ApplyResult | null = null
    let data: Readonly<Record<string, Value>> | undefined
    let fresh = false
    try {
      msg = decodeServerMessage(bytes)
      if (msg.type === MsgType.STATE) result = this.table.apply(msg)
      else if (msg.type === MsgType.MESSAGE || msg.type === MsgType.PROPS) {
        // One reliable stream, numbered from WELCOME's messageSeq; a resume repeats what may not have arrived.
        const seq = this.#streamSeq++
        fresh = seq >= this.#streamNext
        if (!fresh) this.repeatsDropped++
        else {
          this.#streamNext = seq + 1
          data = this.#streamData(msg)
          if (msg.type === MsgType.PROPS) {
            if (data) this.props.set(msg.entity, data)
            else this.props.delete(msg.entity)
          }
        }
      }
    } catch (err) {
      // The server broke the protocol (or this SDK is out of date): the table can no longer be trusted.
      for (const fn of this.#listeners.error) fn(err as Error)
      this.close()
      return
    }
    // Listeners run outside the try: an exception in game code is the game's, not a protocol error.
    if (msg.type === MsgType.STATE && result) {
      this.serverInputSeq = msg.inputSeq
      if ((this.#opts.autoAck ?? true) && ++this.#sinceAck >= this.#ackEvery && !this.#ackPending) {
        this.#ackPending = true
        // Deferred so that an input sent from a 'state' handler carries the ack instead.
        queueMicrotask(this.#flushAck)
      }
      for (const fn of this.#listeners.state) fn(msg, result)
    } else if (msg.type === MsgType.MESSAGE && fresh) {
      const name = (this.#welcome.messages[msg.kind] as MessageSpec).name
      for (const fn of this.#listeners.message) fn(name, data as Readonly<Record<string, Value>>)
    } else if (msg.type === MsgType.PROPS && fresh) {
      for (const fn of this.#listeners.props) fn(msg.entity, data)
    } else if (msg.type === MsgType.PONG) {
      const rtt = now() - msg.clientTime
      for (const fn of this.#listeners.pong) fn(rtt, msg.roomPlayers)
    }
  }

  /** A MESSAGE's or PROPS's values by name, checked against WELCOME (undefined: props cleared); throws ProtocolError. */
  #streamData(msg: ServerMessage & { type: typeof MsgType.MESSAGE | typeof MsgType.PROPS }): Readonly<Record<string, Value>> | undefined {
    const w = this.#welcome
    if (msg.type === MsgType.PROPS) {
      if (msg.values.length === 0) return undefined
      const p = wireProblem(w.props, msg.values, 0, `PROPS of entity ${msg.entity}`)
      if (p) throw new ProtocolError(p)
      return dataOf(w.props, msg.values, 0)
    }
    const spec = w.messages[msg.kind]
    if (!spec) throw new ProtocolError(`MESSAGE of kind ${msg.kind}: WELCOME declares ${w.messages.length}`)
    const p = wireProblem(spec.fields, msg.values, 0, `MESSAGE ${spec.name}`)
    if (p) throw new ProtocolError(p)
    return dataOf(spec.fields, msg.values, 0)
  }

  /**
   * Sends game message `name` (one of `welcome.clientMessages`) with its
   * values by name. Checked first: an undeclared name, a missing or extra
   * value, or a bad one throws a RangeError naming it, and nothing is sent.
   * Returns false when it was not sent because the connection is down
   * (reconnecting, or closed): resend what matters after 'resumed'. The
   * server rate-limits messages (`--message-rate`, default 20/s, burst 40):
   * past it, it closes RATE_LIMITED.
   */
  send(name: string, data: Readonly<Record<string, Value>>): boolean {
    const kinds = this.#welcome.clientMessages
    const kind = kinds.findIndex((k) => k.name === name)
    if (kind < 0) throw new RangeError(`unknown message ${JSON.stringify(name)}: the server declares ${kinds.map((k) => JSON.stringify(k.name)).join(', ') || 'none'}`)
    const spec = kinds[kind] as MessageSpec
    const values: Value[] = new Array<Value>(spec.fields.length)
    const p = valuesOf(spec.fields, data, values, 0, `message ${name}`)
    if (p) throw new RangeError(p)
    if (this.#socket.readyState !== 1 || this.#reconnecting) return false
    this.#socket.send(encodeClientMessage(kind, values))
    return true
  }

  #flushAck = (): void => {
    if (!this.#ackPending) return
    this.#ackPending = false
    this.#sinceAck = 0
    this.#send(encodeAck(this.table.tick))
  }

  on<K extends keyof ClientEvents>(event: K, fn: ClientEvents[K]): this {
    // Copy-on-write, as in `off`: a listener added during an emit runs from the next event on.
    const list = this.#listeners[event] as ClientEvents[K][]
    ;(this.#listeners as Record<K, ClientEvents[K][]>)[event] = [...list, fn]
    return this
  }

  off<K extends keyof ClientEvents>(event: K, fn: ClientEvents[K]): this {
    const list = this.#listeners[event] as ClientEvents[K][]
    const i = list.indexOf(fn)
    // A new array, not a splice: a listener that removes itself while an event is being emitted must not
    // make the loop skip the listener after it (the emit goes on over the array it started with).
    if (i >= 0) (this.#listeners as Record<K, ClientEvents[K][]>)[event] = [...list.slice(0, i), ...list.slice(i + 1)]
    return this
  }

  /**
   * Sends an input (integers, in the order of `welcome.input`); carries the
   * ack of the newest tick. Returns its sequence number. While reconnecting
   * the input is dropped (the server would not have applied it either).
   *
   * The values are checked against `welcome.input` first: one per input, each
   * a finite integer within that input's [min, max]. A bad one throws a
   * RangeError naming it (`input "mx" (index 0) must be an integer from -100
   * to 100, got NaN`); nothing is sent, `inputSeq` is unchanged and the
   * session stays open (the server would have closed it with BAD_INPUT).
   */
  sendInput(values: ArrayLike<number>): number {
    const spec = this.#welcome.input
    if (values.length !== spec.length) throw inputCountError(spec, values.length)
    for (let i = 0; i < spec.length; i++) {
      const v = values[i] as number
      const s = spec[i] as InputSpec
      // Number.isInteger is false for NaN, Infinity and non-numbers.
      if (!(Number.isInteger(v) && v >= s.min && v <= s.max)) throw inputValueError(s, i, v)
    }
    const seq = ++this.inputSeq
    this.#ackPending = false
    this.#sinceAck = 0
    this.#send(encodeInput(seq, this.table.tick, values))
    return seq
  }

  /** Acknowledges the newest applied tick now (automatic unless `autoAck: false`). */
  ack(): void {
    this.#ackPending = false
    this.#sinceAck = 0
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

function inputCountError(spec: readonly InputSpec[], got: number): RangeError {
  const names = spec.map((s) => `"${s.name}"`).join(', ')
  return new RangeError(`sendInput takes ${spec.length} values (${names}), got ${got}`)
}

function inputValueError(s: InputSpec, i: number, v: unknown): RangeError {
  const got = typeof v === 'number' ? String(v) : `${typeof v} ${JSON.stringify(v) ?? String(v)}`
  return new RangeError(`input "${s.name}" (index ${i}) must be an integer from ${s.min} to ${s.max}, got ${got}`)
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/

/**
 * What the server would refuse with HTTP 400 in a join's `room` and `name`
 * (PROTOCOL.md §1), as a sentence, or null when both are fine. For a page:
 * a browser cannot read the status of a refused upgrade (it sees 1006), so
 * check an invite link's room code before connecting, and do not retry one
 * that cannot succeed.
 *
 * @example
 * ```ts
 * const problem = joinProblem({ room: 'bad room!' }) // 'invalid room code "bad room!": ...'
 * ```
 */
export function joinProblem(opts: Pick<ConnectOptions, 'room' | 'name' | 'joinOptions'>): string | null {
  const { room, name, joinOptions } = opts
  if (room !== undefined && !ROOM_ID_PATTERN.test(room)) {
    return `invalid room code ${JSON.stringify(room)}: it must be 1-32 characters of A-Z a-z 0-9 _ -`
  }
  if (name !== undefined) {
    if (new TextEncoder().encode(name).byteLength > MAX_NAME_BYTES) return `invalid name: at most ${MAX_NAME_BYTES} bytes of UTF-8`
    if (CONTROL_CHARS.test(name)) return 'invalid name: it must not contain control characters'
  }
  if (joinOptions !== undefined) {
    const keys = Object.keys(joinOptions)
    if (keys.length > MAX_JOIN_OPTIONS) return `invalid join options: at most ${MAX_JOIN_OPTIONS} keys`
    for (const k of keys) {
      const v = joinOptions[k]
      if (!JOIN_OPTION_KEY_PATTERN.test(k)) return `invalid join option name ${JSON.stringify(k)}: A-Z a-z 0-9 _, at most 32 characters, not starting with a digit`
      if (typeof v === 'string' ? new TextEncoder().encode(v).byteLength > MAX_JOIN_OPTION_BYTES : !(typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)))) {
        return `invalid join option ${k}: a string of at most ${MAX_JOIN_OPTION_BYTES} bytes, a finite number or a boolean`
      }
    }
    if (JSON.stringify(joinOptions).length > MAX_JOIN_OPTIONS_CHARS) return `invalid join options: at most ${MAX_JOIN_OPTIONS_CHARS} characters as JSON`
  }
  return null
}

/** The URL that resumes the seat of `w`: its room, its player id and its token (and `v`). */
function resumeUrl(base: string, w: Welcome, name: string | undefined): string {
  const u = new URL(TickwireClient.url(base, { room: w.roomId, name }))
  u.searchParams.set('player', String(w.playerId))
  u.searchParams.set('resume', w.resumeToken)
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

export { listRooms, roomsUrl, type ListedRoom, type ListRoomsOptions, type RoomListing } from './rooms.js'
