/**
 * The public uWS app: `/play` WebSocket upgrades (plain HTTP routes are in
 * http-routes.ts, the query in query.ts, per-address budgets in addresses.ts,
 * flow control and the send of a frame in flow.ts).
 * Knows sockets, flow control and the wire format; knows no game rules (those
 * stay behind `Rooms` and the `Game` interface).
 *
 * Per-socket backpressure (flow.ts) is checked before every frame. uWS's own
 * maxBackpressure is set above the hard cap, so uWS never drops a frame; if
 * it ever reports a drop anyway, the player is closed with DESYNC rather than
 * left desynced.
 *
 * Sessions: a player whose connection drops (1006, idle timeout, TOO_SLOW,
 * DESYNC) keeps their seat for `resumeWindow` seconds within its address's
 * budgets (holds.ts); the avatar stands still (neutral input). A new connection with the seat's resume token takes
 * it back with a full state. Rooms owned by another worker are answered with
 * REDIRECT (see router.ts).
 */
import {
  CloseCode,
  CloseReason,
  ClientError,
  MsgType,
  PROTOCOL_VERSION,
  encodePong,
  encodeRedirect,
  encodeWelcome,
  newClientMessage,
  parseClientMessage,
  type ClientMessage,
} from '../../proto/index.js'
import { EventLog, type Logger } from '../log.js'
import { AddressLimit, DisconnectReason, RejectReason, ResumeOutcome, Stats, UpgradeRejectReason } from '../metrics/stats.js'
import { AckResult, RoomReplicator, encodeBufferBytes, maxFrameBytes, type Viewer } from '../replicate/replicator.js'
import { JoinRefusal, type Room, type Rooms, type Seat } from '../sim/room.js'
import { AddressBook, budgetKey, clientAddress, parseTrustedProxies, type AddressEntry, type AddressLimits } from './addresses.js'
import { handshakeRefusal, writeRefusal } from './handshake.js'
import { FrameSender, SendResult } from './flow.js'
import { SeatHolds, newSession, type Session as HoldSession } from './holds.js'
import { mountHttpRoutes } from './http-routes.js'
import { parseJoinQuery } from './query.js'
import { originAllowed, parseAllowedOrigins, type OriginPolicy } from './origin.js'
import { ResumeTokens, type TokenClaims } from './resume.js'
import type { StaticFile } from './static.js'
import type { Placement, Router } from './router.js'
import uWS, { listenExclusive, type TemplatedApp, type WebSocket, type us_listen_socket } from './uws.js'

export interface ServerOptions extends AddressLimits {
  readonly port: number
  readonly host: string
  readonly tickHz: number
  readonly maxPlayers: number
  readonly historyTicks: number
  readonly ackWindow: number
  readonly maxVisible: number
  readonly softBackpressure: number
  readonly hardBackpressure: number
  readonly maxStallSeconds: number
  readonly inputRate: number
  readonly inputBurst: number
  readonly maxMessageBytes: number
  readonly idleTimeout: number
  /** Seconds a dropped player's seat is held for a resume; 0: never held. */
  readonly resumeWindow: number
  /** Comma-separated proxy addresses whose X-Forwarded-For names the client (see addresses.ts). */
  readonly trustedProxies: string
  /** Comma-separated origins allowed to open /play, or `*`; empty: the server's own (see origin.ts). */
  readonly allowedOrigins: string
}

export interface ServerDeps {
  /** HMAC key of resume tokens (shared by all workers). */
  readonly secret: Buffer
  /** Where rooms live when other workers exist; absent: all rooms are local. */
  readonly router?: Router
  /** The browser client's files by path (see static.ts); absent or empty: `/` answers 404. */
  readonly web?: ReadonlyMap<string, StaticFile>
}


/** Per-room state of the network layer (`Room.link`). */
interface RoomLink {
  readonly rep: RoomReplicator
  /** Random id of this incarnation of the room, covered by resume tokens. */
  readonly instance: string
  /** The address that created the room (its budget counts the room until disposal). */
  readonly creator: AddressEntry | null
}

/** A player's hold on a seat, across connections (`Seat.link`). */
type Session = HoldSession<Conn>

/** What a connection asked for beyond a plain join, decided at the upgrade. */
type Intent =
  | { readonly kind: 'join' }
  | { readonly kind: 'resume'; readonly claims: TokenClaims }
  | { readonly kind: 'redirect'; readonly port: number; readonly host: string }
  | { readonly kind: 'refuse'; readonly code: keyof typeof CloseCode; readonly reason: DisconnectReason }

/** One connection; uWS's per-socket user data. */
interface Conn {
  ws: WebSocket<Conn> | null
  /** The client's address (for logs) and the budget it counts against. */
  readonly address: string
  readonly addr: AddressEntry
  readonly playerId: number
  intent: Intent
  readonly name: string
  readonly roomId: string | null
  seat: Seat | null
  session: Session | null
  viewer: Viewer | null
  /** Token bucket for the input rate limit. */
  tokens: number
  lastRefill: number
  /** Highest input sequence number received. */
  lastSeq: number
  /** When the current run of skipped frames began (0: not skipping). */
  stallSince: number
  /** Set before the server closes the socket, so the close handler counts the right reason. */
  closing: DisconnectReason | null
  readonly msg: ClientMessage
}

/** What uWS passes to the close handler (code 1006) when it cut a connection itself. */
const UWS_TOO_BIG = 'Received too big message'
const UWS_IDLE = 'WebSocket timed out from inactivity'

/** Connection losses after which the seat is held for a resume (the client did not choose to leave). */
const HOLD_ON: ReadonlySet<DisconnectReason> = new Set([
  DisconnectReason.ABNORMAL,
  DisconnectReason.IDLE_TIMEOUT,
  DisconnectReason.TOO_SLOW,
  DisconnectReason.DESYNC,
])

const JOIN: Intent = { kind: 'join' }

/** Every `X-Forwarded-For` line, joined in order (a proxy may add its own line instead of appending to the client's). */
function forwardedFor(req: uWS.HttpRequest): string {
  let all = ''
  req.forEach((k, v) => {
    if (k === 'x-forwarded-for') all = all === '' ? v : `${all},${v}`
  })
  return all
}

const CLOSE_REASON_OF: Record<number, DisconnectReason> = {
  [CloseCode.SHUTDOWN]: DisconnectReason.CLIENT_CLOSED, // a client may also send 1001 ("going away")
  1000: DisconnectReason.CLIENT_CLOSED,
  1005: DisconnectReason.CLIENT_CLOSED,
  [CloseCode.TOO_BIG]: DisconnectReason.TOO_BIG,
}

export class GameServer {
  readonly stats = new Stats()
  readonly #rooms: Rooms
  readonly #opts: ServerOptions
  readonly #log: Logger
  readonly #app: TemplatedApp
  readonly #sender: FrameSender
  readonly #conns = new Set<Conn>()
  readonly #tokens: ResumeTokens
  readonly #router: Router | undefined
  readonly #events: EventLog
  readonly #book: AddressBook
  readonly #trusted: ReadonlySet<string>
  readonly #origins: OriginPolicy
  /** The address whose join is creating a room right now (read by rooms.onCreate). */
  #creator: AddressEntry | null = null
  /** The public port as bound (the server's own origin has it; see origin.ts). */
  #publicPort = 0
  #nextSweep = 0
  /** Seats whose player is away, until resumed or expired. */
  readonly #holds: SeatHolds
  /** Ports bound by listen/listenDirect, with their listen socket (null while paused or after shutdown). */
  readonly #bound: { readonly port: number; readonly exclusive: boolean; sock: us_listen_socket | null }[] = []
  #ready = false
  /** Set by shutdown(): resolves once every socket has closed. */
  #drained: Promise<void> | null = null
  #allClosed: () => void = () => {}
  #nextPlayerId = 1

  constructor(rooms: Rooms, opts: ServerOptions, log: Logger, deps: ServerDeps) {
    this.#rooms = rooms
    this.#opts = opts
    this.#log = log
    this.#tokens = new ResumeTokens(deps.secret)
    this.#router = deps.router
    this.#events = new EventLog(log)
    this.#book = new AddressBook(opts)
    this.#trusted = parseTrustedProxies(opts.trustedProxies)
    this.#origins = parseAllowedOrigins(opts.allowedOrigins)
    this.#holds = new SeatHolds(rooms, this.#book, this.stats, this.#events, opts)
    const game = rooms.game
    const frameMax = maxFrameBytes(opts.maxVisible, game.fields.length)
    this.#sender = new FrameSender(opts, this.stats, encodeBufferBytes(opts.maxVisible, game.fields.length))
    rooms.onCreate = (room) => {
      const creator = this.#creator
      const link: RoomLink = { rep: new RoomReplicator(room.world, room.grid, game.fields, opts), instance: ResumeTokens.newInstance(), creator }
      if (creator) creator.rooms++ // after anything that can throw: a room that was never built is never disposed
      room.link = link
      this.#router?.opened(room.id)
    }
    rooms.onDispose = (room) => {
      const creator = (room.link as RoomLink | undefined)?.creator
      room.link = undefined
      if (creator) this.#book.roomClosed(creator, performance.now())
      this.#holds.roomDisposed(room)
      this.#router?.closed(room.id)
    }
    rooms.onError = (room, err) => this.#closeFailedRoom(room, err)
    this.#app = uWS.App()
    this.#app.ws<Conn>('/play', {
      compression: uWS.DISABLED,
      maxPayloadLength: opts.maxMessageBytes,
      idleTimeout: opts.idleTimeout,
      sendPingsAutomatically: true,
      // Above our own hard cap, so uWS never drops a frame we chose to send (we close first).
      maxBackpressure: opts.hardBackpressure + 2 * frameMax,
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => this.#upgrade(res, req, context),
      open: (ws) => this.#open(ws),
      message: (ws, message, isBinary) => this.#message(ws, message, isBinary),
      drain: (ws) => {
        // During shutdown a socket is closed as soon as its queued bytes are out.
        if (this.#drained && ws.getBufferedAmount() === 0) this.#closeWith(ws.getUserData(), 'SHUTDOWN', DisconnectReason.SHUTDOWN)
      },
      close: (ws, code, message) => this.#close(ws, code, message),
    })
    // What a browser client needs to know beyond WELCOME: the world's size (the game's layout for a full room).
    const layout = game.layout(rooms.maxPlayersPerRoom)
    mountHttpRoutes(this.#app, {
      stats: this.stats,
      ready: () => this.#ready,
      info: { game: game.name, protocol: PROTOCOL_VERSION, tickHz: opts.tickHz, maxPlayersPerRoom: rooms.maxPlayersPerRoom, world: { width: layout.width, height: layout.height } },
      web: deps.web ?? new Map<string, StaticFile>(),
    })
  }

  /**
   * Binds the public port with SO_REUSEPORT (uWS's default), so every worker
   * of a deployment can bind it and the kernel spreads connections. Resolves
   * with the port actually bound (useful with port 0) and marks the server ready.
   */
  listen(port = this.#opts.port): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#app.listen(this.#opts.host, port, (sock) => {
        if (!sock) {
          reject(new Error(`cannot listen on ${this.#opts.host}:${port} (in use, or not permitted)`))
          return
        }
        const bound = uWS.us_socket_local_port(sock as never)
        this.#bound.push({ port: bound, exclusive: false, sock })
        this.#publicPort = bound
        this.#ready = true
        resolve(bound)
      })
    })
  }

  /** Binds this worker's own direct port (redirect target), without SO_REUSEPORT: it must be this process's alone. */
  listenDirect(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      listenExclusive(this.#app, this.#opts.host, port, (sock) => {
        if (!sock) {
          reject(new Error(`cannot listen on direct port ${this.#opts.host}:${port} (in use, or not permitted)`))
          return
        }
        const bound = uWS.us_socket_local_port(sock as never)
        this.#bound.push({ port: bound, exclusive: true, sock })
        resolve(bound)
      })
    })
  }

  /** Whether the listen sockets are open (false while paused by `pauseAccepting`, or after shutdown). */
  get accepting(): boolean {
    return this.#bound.length > 0 && this.#bound.every((b) => b.sock !== null)
  }

  /**
   * Stops accepting connections: closes the listen sockets, so the kernel
   * sends new connections to the other workers on the shared port (with one
   * worker, they are refused) and an EMFILE accept loop cannot spin. Open
   * connections play on. Undone by `resumeAccepting`.
   */
  pauseAccepting(): void {
    if (this.#drained) return
    this.#closeListens()
  }

  /** Closes every open listen socket once (closing one twice is a use-after-free in uWS). */
  #closeListens(): void {
    for (const b of this.#bound) {
      if (b.sock) uWS.us_listen_socket_close(b.sock)
      b.sock = null
    }
  }

  /** Reopens the ports closed by `pauseAccepting` (the same port numbers). Resolves false if one could not be bound again. */
  async resumeAccepting(): Promise<boolean> {
    // Only the ports still closed: one that failed to bind last time is tried again.
    for (const b of this.#bound) {
      if (this.#drained) break
      if (b.sock) continue
      const sock = await new Promise<us_listen_socket | false>((resolve) => {
        if (b.exclusive) listenExclusive(this.#app, this.#opts.host, b.port, resolve)
        else this.#app.listen(this.#opts.host, b.port, resolve)
      })
      if (!sock) continue
      if (this.#drained) uWS.us_listen_socket_close(sock) // a shutdown came while we reopened
      else b.sock = sock
    }
    return this.accepting
  }

  /** Seats held for a resume right now. */
  get held(): number {
    return this.#holds.size
  }

  get ready(): boolean {
    return this.#ready
  }

  get connections(): number {
    return this.#conns.size
  }

  /** Bytes uWS holds in user space toward all sockets, and the most toward one socket. */
  bufferedBytes(): { total: number; max: number } {
    let total = 0
    let max = 0
    for (const c of this.#conns) {
      const n = c.ws ? c.ws.getBufferedAmount() : 0
      total += n
      if (n > max) max = n
    }
    return { total, max }
  }

  /**
   * Graceful stop: readiness goes false, the listen socket closes (no new
   * connections), and every player is closed with SHUTDOWN (1001). A socket
   * with bytes still queued in uWS is closed once they drain, or after
   * `drainMs`, so its close frame is not stuck behind data that the process
   * exit would drop. Resolves when every socket is closed.
   */
  shutdown(drainMs = 1000): Promise<void> {
    this.#ready = false
    this.#closeListens()
    if (this.#drained) return this.#drained
    // Nobody can come back to a stopping process: held seats go now.
    this.#holds.releaseAll()
    this.#drained = new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        for (const conn of [...this.#conns]) this.#closeWith(conn, 'SHUTDOWN', DisconnectReason.SHUTDOWN)
      }, drainMs)
      this.#allClosed = () => {
        clearTimeout(deadline)
        resolve()
      }
      for (const conn of [...this.#conns]) {
        if (conn.ws && conn.ws.getBufferedAmount() === 0) this.#closeWith(conn, 'SHUTDOWN', DisconnectReason.SHUTDOWN)
      }
      if (this.#conns.size === 0) this.#allClosed()
    })
    return this.#drained
  }

  /** Sends the current tick to every player of every room. Called once per tick after the rooms stepped. */
  sendTick(tick: number): void {
    if (this.#drained) return // shutting down: no more frames
    const now = performance.now()
    if (this.#holds.size > 0) this.#holds.expire(now)
    if (now >= this.#nextSweep) {
      this.#nextSweep = now + 10_000
      this.#book.sweep(now)
    }
    const rooms = this.#rooms.list
    // Backwards throughout: a close below may remove a seat (swapping in the
    // last one) or dispose an emptied room (splicing it out of the list).
    for (let i = rooms.length - 1; i >= 0; i--) {
      const room = rooms[i]
      if (!room) continue
      const rep = (room.link as RoomLink).rep
      try {
        rep.snapshot(tick)
        const seats = room.seats
        for (let j = seats.length - 1; j >= 0; j--) {
          const conn = (seats[j]?.link as Session | undefined)?.conn
          if (conn) this.#sendFrame(conn, rep, now)
        }
      } catch (err) {
        this.#rooms.fail(room, err)
      }
    }
  }

  #sendFrame(conn: Conn, rep: RoomReplicator, now: number): void {
    const ws = conn.ws
    const viewer = conn.viewer
    const seat = conn.seat
    if (!ws || !viewer || !seat) return
    const r = this.#sender.send(ws as WebSocket<unknown>, conn, viewer, rep, seat.appliedSeq, now)
    if (r === SendResult.TOO_SLOW) this.#closeWith(conn, 'TOO_SLOW', DisconnectReason.TOO_SLOW)
    else if (r === SendResult.DESYNC) this.#closeWith(conn, 'DESYNC', DisconnectReason.DESYNC)
  }

  /** Answers an upgrade with an HTTP error instead; counted by `why`, logged (rate-limited) with the address. */
  #refuse(res: uWS.HttpResponse, status: string, body: string, why: UpgradeRejectReason, address: string, headers: readonly (readonly [string, string])[] = []): void {
    this.stats.upgradesRejected[why]++
    if (why !== UpgradeRejectReason.NOT_READY) this.#events.warn('upgrade refused', { address, reason: why, status: status.slice(0, 3), detail: body })
    res.writeStatus(status).writeHeader('content-type', 'text/plain')
    for (const [k, v] of headers) res.writeHeader(k, v)
    res.end(body + '\n')
  }

  #upgrade(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    const key = req.getHeader('sec-websocket-key')
    const protocol = req.getHeader('sec-websocket-protocol')
    const extensions = req.getHeader('sec-websocket-extensions')
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString()
    const address = clientAddress(peer, this.#trusted.size > 0 ? forwardedFor(req) : '', this.#trusted)
    if (!this.#ready) return this.#refuse(res, '503 Service Unavailable', 'server shutting down', UpgradeRejectReason.NOT_READY, address)
    const bad = handshakeRefusal(req)
    if (bad) {
      this.stats.upgradesRejected[UpgradeRejectReason.HANDSHAKE]++
      this.#events.warn('upgrade refused', { address, reason: UpgradeRejectReason.HANDSHAKE, status: bad.status.slice(0, 3), detail: bad.body.trimEnd() })
      return writeRefusal(res, bad)
    }
    const origin = req.getHeader('origin')
    if (!originAllowed(this.#origins, origin, req.getHeader('host'), this.#publicPort)) {
      return this.#refuse(res, '403 Forbidden', 'origin not allowed', UpgradeRejectReason.ORIGIN, address)
    }
    const now = performance.now()
    const addr = this.#book.entry(budgetKey(address), now)
    const limited = this.#book.admit(addr, now)
    if (limited !== null) {
      this.stats.addressLimited[limited === 'connections' ? AddressLimit.CONNECTIONS : AddressLimit.UPGRADE_RATE]++
      const body = limited === 'connections' ? 'too many connections from your address' : 'too many connection attempts from your address'
      return this.#refuse(res, '429 Too Many Requests', body, UpgradeRejectReason.ADDRESS_LIMIT, address, [['retry-after', '1']])
    }
    // From here the connection counts against `addr` until it closes (or its upgrade is abandoned).
    const q = parseJoinQuery(req.getQuery() ?? '')
    if ('problem' in q) {
      this.#book.disconnected(addr, now)
      return this.#refuse(res, '400 Bad Request', q.problem, UpgradeRejectReason.BAD_QUERY, address)
    }
    const { room, name, resume } = q
    let intent: Intent = JOIN
    let playerId: number
    if (resume !== null) {
      playerId = resume.player
      // Checked here, by any worker: a forged token is refused without a trip to the room's owner.
      const claims = this.#tokens.verify(resume.token, room as string, playerId)
      if (claims) intent = { kind: 'resume', claims }
      else {
        this.stats.resumes[ResumeOutcome.INVALID]++
        this.#events.warn('resume refused', { address, reason: 'invalid token', room, player: playerId })
        intent = { kind: 'refuse', code: 'RESUME_INVALID', reason: DisconnectReason.RESUME_REFUSED }
      }
    } else playerId = this.#nextPlayerId++
    const conn: Conn = {
      ws: null,
      address,
      addr,
      playerId,
      intent,
      name,
      roomId: room,
      seat: null,
      session: null,
      viewer: null,
      tokens: this.#opts.inputBurst,
      lastRefill: performance.now(),
      lastSeq: 0,
      stallSince: 0,
      closing: null,
      msg: newClientMessage(this.#rooms.game.input.length),
    }
    const router = this.#router
    if (room === null || !router || intent.kind === 'refuse' || this.#rooms.byId.has(room)) {
      res.upgrade(conn, key, protocol, extensions, context)
      return
    }
    // A named room this worker does not have: ask the directory where it lives (or where to create it).
    let aborted = false
    res.onAborted(() => {
      aborted = true
    })
    router.locate(room, intent.kind === 'join', budgetKey(address)).then(
      (where: Placement | null | 'address_limit') => {
        if (aborted) return this.#book.disconnected(addr, performance.now())
        if (where === null) {
          this.stats.resumes[ResumeOutcome.EXPIRED]++
          conn.intent = { kind: 'refuse', code: 'RESUME_EXPIRED', reason: DisconnectReason.RESUME_REFUSED }
        } else if (where === 'address_limit') {
          this.#addressLimited(conn, AddressLimit.CLAIMS)
          conn.intent = { kind: 'refuse', code: 'ADDRESS_LIMIT', reason: DisconnectReason.ADDRESS_LIMIT }
        } else if (!where.local) conn.intent = { kind: 'redirect', port: where.port, host: where.host }
        res.cork(() => res.upgrade(conn, key, protocol, extensions, context))
      },
      (err: Error) => {
        this.#book.disconnected(addr, performance.now())
        if (aborted) return
        this.stats.upgradesRejected[UpgradeRejectReason.DIRECTORY]++
        this.#log.warn('room directory did not answer', { room, error: err.message })
        res.cork(() => res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').end('room directory unavailable\n'))
      },
    )
  }

  #open(ws: WebSocket<Conn>): void {
    const conn = ws.getUserData()
    conn.ws = ws
    this.#conns.add(conn)
    this.stats.connections++
    if (this.#drained) {
      this.#closeWith(conn, 'SHUTDOWN', DisconnectReason.SHUTDOWN) // upgraded after an async lookup that outlived readiness
      return
    }
    const intent = conn.intent
    if (intent.kind === 'refuse') {
      this.#closeWith(conn, intent.code, intent.reason)
      return
    }
    if (intent.kind === 'redirect') {
      const frame = encodeRedirect({ port: intent.port, host: intent.host })
      ws.cork(() => ws.send(frame, true))
      this.stats.redirects++
      this.stats.messagesSent++
      this.stats.bytesSent += frame.byteLength
      this.#closeWith(conn, 'REDIRECT', DisconnectReason.REDIRECT)
      return
    }
    if (this.#conns.size > this.#opts.maxPlayers) {
      this.#closeWith(conn, 'SERVER_FULL', DisconnectReason.SERVER_FULL)
      return
    }
    if (intent.kind === 'resume') {
      this.#resume(conn, intent.claims)
      return
    }
    let seat: Seat | JoinRefusal
    this.#creator = conn.addr
    try {
      seat = this.#rooms.join(conn.roomId, conn.playerId, conn.name, this.#book.mayCreateRoom(conn.addr))
    } catch (err) {
      this.#creator = null
      // The game could not even build the room: nothing was registered.
      this.stats.roomErrors++
      this.#log.error('room creation failed', { room: conn.roomId ?? '(quick play)', error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
      this.#closeWith(conn, 'INTERNAL_ERROR', DisconnectReason.INTERNAL_ERROR)
      return
    }
    this.#creator = null
    if (seat === JoinRefusal.MAY_NOT_CREATE) {
      this.#addressLimited(conn, AddressLimit.ROOMS)
      this.#closeWith(conn, 'ADDRESS_LIMIT', DisconnectReason.ADDRESS_LIMIT)
      return
    }
    if (seat === JoinRefusal.FAILED) {
      this.#closeWith(conn, 'INTERNAL_ERROR', DisconnectReason.INTERNAL_ERROR)
      return
    }
    if (seat === JoinRefusal.ROOM_FULL) {
      this.#closeWith(conn, 'ROOM_FULL', DisconnectReason.ROOM_FULL)
      return
    }
    if (seat === JoinRefusal.SERVER_FULL) {
      this.#closeWith(conn, 'SERVER_FULL', DisconnectReason.SERVER_FULL)
      return
    }
    const session: Session = newSession<Conn>()
    seat.link = session
    this.#attach(conn, seat, session)
    this.#log.debug('join', { player: conn.playerId, room: seat.room.id, entity: seat.entity })
  }

  /** A token with a valid MAC: take the seat back if it is still held at the token's generation. */
  #resume(conn: Conn, claims: TokenClaims): void {
    const room = conn.roomId === null ? undefined : this.#rooms.byId.get(conn.roomId)
    const link = room?.link as RoomLink | undefined
    const seat = room && link?.instance === claims.instance ? room.seats.find((s) => s.playerId === conn.playerId) : undefined
    const session = seat?.link as Session | undefined
    if (!seat || !session) {
      this.stats.resumes[ResumeOutcome.EXPIRED]++
      this.#closeWith(conn, 'RESUME_EXPIRED', DisconnectReason.RESUME_REFUSED)
      return
    }
    if (claims.gen !== session.gen) {
      this.stats.resumes[ResumeOutcome.USED]++
      this.#closeWith(conn, 'RESUME_USED', DisconnectReason.RESUME_REFUSED)
      return
    }
    session.gen++
    const old = session.conn
    if (old) {
      // The old connection may still look open (a half-open TCP link): it loses the seat, not the new one.
      old.seat = null
      old.session = null
      old.viewer = null
      this.#closeWith(old, 'REPLACED', DisconnectReason.REPLACED)
    }
    this.#holds.end(seat)
    conn.lastSeq = seat.inputSeq // input sequence numbers continue across connections
    this.stats.resumes[ResumeOutcome.RESUMED]++
    this.#attach(conn, seat, session)
    this.#log.debug('resume', { player: conn.playerId, room: seat.room.id, entity: seat.entity })
  }

  /** Binds a connection to its seat and sends WELCOME; the next tick sends it a full state. */
  #attach(conn: Conn, seat: Seat, session: Session): void {
    const ws = conn.ws as WebSocket<Conn>
    session.conn = conn
    conn.seat = seat
    conn.session = session
    const link = seat.room.link as RoomLink
    conn.viewer = link.rep.newViewer(seat.entity)
    const welcome = encodeWelcome({
      version: PROTOCOL_VERSION,
      playerId: conn.playerId,
      roomId: seat.room.id,
      tickHz: this.#opts.tickHz,
      entityId: seat.entity,
      historyTicks: this.#opts.historyTicks,
      fields: this.#rooms.game.fields,
      input: this.#rooms.game.input,
      resumeToken: this.#opts.resumeWindow > 0 ? this.#tokens.issue(seat.room.id, link.instance, conn.playerId, session.gen) : '',
    })
    ws.cork(() => ws.send(welcome, true))
    this.stats.messagesSent++
    this.stats.bytesSent += welcome.byteLength
  }

  /** A per-address budget refused something: counted and logged (rate-limited) with the address. */
  #addressLimited(conn: Conn, why: AddressLimit): void {
    this.stats.addressLimited[why]++
    this.#events.warn('address limit', { address: conn.address, reason: why })
  }

  #message(ws: WebSocket<Conn>, message: ArrayBuffer, isBinary: boolean): void {
    const conn = ws.getUserData()
    if (conn.closing) return
    this.stats.messagesReceived++
    this.stats.bytesReceived += message.byteLength
    if (!isBinary) return this.#reject(conn, RejectReason.TEXT_FRAME, 'TEXT_FRAME', DisconnectReason.TEXT_FRAME)
    // Token bucket: refill by elapsed time, one token per message.
    const now = performance.now()
    conn.tokens = Math.min(this.#opts.inputBurst, conn.tokens + ((now - conn.lastRefill) / 1000) * this.#opts.inputRate)
    conn.lastRefill = now
    if (conn.tokens < 1) return this.#reject(conn, RejectReason.RATE_LIMITED, 'RATE_LIMITED', DisconnectReason.RATE_LIMITED)
    conn.tokens -= 1
    // Decoded synchronously: uWS frees `message` when this callback returns.
    const msg = conn.msg
    const err = parseClientMessage(new Uint8Array(message), this.#rooms.game.input, msg)
    if (err !== null) {
      if (err === ClientError.MALFORMED) return this.#reject(conn, RejectReason.MALFORMED, 'BAD_MESSAGE', DisconnectReason.BAD_MESSAGE)
      return this.#reject(conn, err === ClientError.RANGE ? RejectReason.RANGE : RejectReason.TYPE, 'BAD_INPUT', DisconnectReason.BAD_INPUT)
    }
    const seat = conn.seat
    const viewer = conn.viewer
    if (!seat || !viewer) return
    switch (msg.type) {
      case MsgType.INPUT:
        if (msg.seq <= conn.lastSeq) return this.#reject(conn, RejectReason.SEQUENCE, 'BAD_INPUT', DisconnectReason.BAD_INPUT)
        if (viewer.ack(msg.ackTick) !== AckResult.OK) return this.#reject(conn, RejectReason.BAD_ACK, 'BAD_ACK', DisconnectReason.BAD_ACK)
        conn.lastSeq = msg.seq
        seat.input.set(msg.values)
        seat.inputSeq = msg.seq
        this.stats.inputsApplied++
        return
      case MsgType.ACK:
        if (viewer.ack(msg.ackTick) !== AckResult.OK) return this.#reject(conn, RejectReason.BAD_ACK, 'BAD_ACK', DisconnectReason.BAD_ACK)
        return
      case MsgType.PING: {
        // A client that does not read gets no pongs either: nothing grows without bound.
        if (ws.getBufferedAmount() > this.#opts.softBackpressure) return
        const pong = encodePong(msg.clientTime, seat.room.seats.length)
        ws.send(pong, true)
        this.stats.messagesSent++
        this.stats.bytesSent += pong.byteLength
        return
      }
    }
  }

  /** A room's code threw (Rooms.fail, once per room): log it, count it, close its players with INTERNAL_ERROR. */
  #closeFailedRoom(room: Room, err: Error): void {
    this.stats.roomErrors++
    this.#log.error('room failed; closing it', { room: room.id, players: room.seats.length, error: err.stack ?? err.message })
    for (let j = room.seats.length - 1; j >= 0; j--) {
      const conn = (room.seats[j]?.link as Session | undefined)?.conn
      if (conn) this.#closeWith(conn, 'INTERNAL_ERROR', DisconnectReason.INTERNAL_ERROR)
    }
  }

  #reject(conn: Conn, why: RejectReason, code: keyof typeof CloseCode, reason: DisconnectReason): void {
    this.stats.rejected[why]++
    this.#events.warn('bad client frame', { address: conn.address, reason: why, player: conn.playerId })
    this.#closeWith(conn, code, reason)
  }

  /** Closes a socket with one of our close codes; the close handler counts `reason`. */
  #closeWith(conn: Conn, code: keyof typeof CloseCode, reason: DisconnectReason): void {
    const ws = conn.ws
    if (!ws || conn.closing) return
    conn.closing = reason
    ws.end(CloseCode[code], CloseReason[code])
  }

  #close(ws: WebSocket<Conn>, code: number, message: ArrayBuffer): void {
    const conn = ws.getUserData()
    conn.ws = null
    this.#conns.delete(conn)
    let reason = conn.closing
    if (!reason) {
      const text = code === 1006 ? Buffer.from(message).toString() : ''
      if (text === UWS_TOO_BIG) {
        reason = DisconnectReason.TOO_BIG
        this.stats.rejected[RejectReason.TOO_BIG]++
        this.#events.warn('bad client frame', { address: conn.address, reason: RejectReason.TOO_BIG, player: conn.playerId })
      } else if (text === UWS_IDLE) reason = DisconnectReason.IDLE_TIMEOUT
      else reason = CLOSE_REASON_OF[code] ?? DisconnectReason.ABNORMAL
    }
    this.stats.disconnects[reason]++
    const seat = conn.seat
    const session = conn.session
    if (seat && session) {
      conn.seat = null
      conn.session = null
      session.conn = null
      // The player did not choose to leave: hold the seat for a resume, within the address's budgets.
      const held = this.#opts.resumeWindow > 0 && HOLD_ON.has(reason) && !this.#drained && !seat.room.failed && this.#holds.tryHold(seat, conn.addr, performance.now())
      if (!held) this.#rooms.leave(seat) // a throw from the game's leave fails that room, not this handler
    }
    this.#book.disconnected(conn.addr, performance.now())
    if (seat) this.#holds.recheckIdle(seat.room)
    conn.viewer = null
    this.#log.debug('leave', { player: conn.playerId, code, reason })
    if (this.#drained && this.#conns.size === 0) this.#allClosed()
  }
}
