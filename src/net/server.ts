/**
 * The public uWS app and its lifecycle: listen, pause, drain; open and close
 * of sockets; the per-tick send. One concern per file beside it: the upgrade
 * (upgrade.ts, with the query in query.ts, per-address budgets in
 * addresses.ts, Origin in origin.ts), redirects (routing.ts), seating and
 * resume (seats.ts, holds.ts), client frames (input.ts), flow control and the
 * send of a frame (flow.ts), plain HTTP routes (http-routes.ts).
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
 * REDIRECT (routing.ts; where a room lives is the room directory's answer,
 * src/directory/).
 */
import { CloseCode, PROTOCOL_VERSION, worstFrameBytes } from '../../proto/index.js'
import { AuthMode, type Verifier } from '../auth/auth.js'
import type { RoomDirectory } from '../directory/directory.js'
import { EventLog, type Logger } from '../log.js'
import { DisconnectReason, RejectReason, Stats } from '../metrics/stats.js'
import { RoomReplicator, encodeBufferBytes, maxFrameBytes } from '../replicate/replicator.js'
import type { Room, Rooms, Seat } from '../sim/room.js'
import { AddressBook, parseTrustedProxies, type AddressLimits } from './addresses.js'
import { closeConn, type Conn, type RoomLink, type Session } from './conn.js'
import { FrameSender, SendResult } from './flow.js'
import { SeatHolds } from './holds.js'
import { mountHttpRoutes } from './http-routes.js'
import { InputHandler } from './input.js'
import { parseAllowedOrigins } from './origin.js'
import { ResumeTokens } from './resume.js'
import { RoomList } from './room-list.js'
import { Routing } from './routing.js'
import { Seating } from './seats.js'
import { createApp, type TlsOptions } from './tls.js'
import type { StaticFile } from './static.js'
import { Upgrades } from './upgrade.js'
import uWS, { listenExclusive, type TemplatedApp, type WebSocket, type us_listen_socket } from './uws.js'

export interface ServerOptions extends AddressLimits, TlsOptions {
  readonly port: number
  readonly host: string
  readonly tickHz: number
  /** STATE frames per second per player (a whole fraction of tickHz); 0: every tick. */
  readonly sendHz: number
  readonly maxPlayers: number
  readonly historyTicks: number
  readonly ackWindow: number
  readonly maxVisible: number
  readonly softBackpressure: number
  readonly hardBackpressure: number
  readonly maxStallSeconds: number
  readonly inputRate: number
  readonly inputBurst: number
  /** CLIENT_MESSAGEs per second per socket, and the burst above it. */
  readonly messageRate: number
  readonly messageBurst: number
  /** Bounds of one player's unacknowledged game messages and props (outbox.ts). */
  readonly outboxBytes: number
  readonly outboxFrames: number
  readonly maxMessageBytes: number
  readonly idleTimeout: number
  /** Seconds a dropped player's seat is held for a resume; 0: never held. */
  readonly resumeWindow: number
  /** Comma-separated proxy addresses whose X-Forwarded-For names the client (see addresses.ts). */
  readonly trustedProxies: string
  /** Comma-separated origins allowed to open /play, or `*`; empty: the server's own (see origin.ts). */
  readonly allowedOrigins: string
  /** `--public-url` ('' : none): protocol-3 redirects name it with route=<owner> (routing.ts). */
  readonly publicUrl: string
  /** `--auth`: off | optional | required (src/auth/auth.ts). */
  readonly auth: string
}

export interface ServerDeps {
  /** HMAC key of resume tokens (shared by all workers). */
  readonly secret: Buffer
  /** Where rooms live when other workers exist (src/directory/); absent: all rooms are local. */
  readonly directory?: RoomDirectory
  /** Verifies join tokens (`--auth` optional or required); absent: auth is off. */
  readonly verifier?: Verifier
  /** The browser client's files by path (see static.ts); absent or empty: `/` answers 404. */
  readonly web?: ReadonlyMap<string, StaticFile>
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
  /** A player is sent a STATE on ticks where (tick + playerId) % #sendEvery is 0: spread evenly, one send per period. */
  readonly #sendEvery: number
  readonly #conns = new Set<Conn>()
  readonly #directory: RoomDirectory | undefined
  readonly #events: EventLog
  readonly #book: AddressBook
  readonly #seating: Seating
  readonly #input: InputHandler
  readonly #upgrades: Upgrades
  /** GET /rooms, and this process's rooms published to the directory every second (room-list.ts). */
  readonly #roomList: RoomList
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
  /** Told of every close after it is counted (the monitor's recent disconnects, src/monitor/); null: nobody. */
  onDisconnect: ((reason: DisconnectReason, room: string | null, player: number) => void) | null = null
  #allClosed: () => void = () => {}

  constructor(rooms: Rooms, opts: ServerOptions, log: Logger, deps: ServerDeps) {
    this.#rooms = rooms
    this.#opts = opts
    this.#log = log
    const tokens = new ResumeTokens(deps.secret)
    this.#directory = deps.directory
    this.#events = new EventLog(log)
    this.#book = new AddressBook(opts)
    this.#holds = new SeatHolds(rooms, this.#book, this.stats, this.#events, opts)
    this.#seating = new Seating(rooms, this.#book, this.#holds, tokens, this.stats, this.#events, log, opts)
    const game = rooms.game
    for (const m of rooms.schema.clientMessages) {
      const worst = worstFrameBytes(m.fields)
      if (worst > opts.maxMessageBytes) throw new Error(`client message ${m.name} may take ${worst} bytes, more than --max-message-bytes (${opts.maxMessageBytes}): raise it or shorten the message's strings`)
    }
    this.#input = new InputHandler(opts, game.input, rooms.schema.clientMessages, this.stats, this.#events)
    // Fail closed: a server told to check tokens never runs without its verifier.
    if (opts.auth !== AuthMode.OFF && !deps.verifier) throw new Error(`--auth ${opts.auth} needs a verifier of join tokens`)
    this.#upgrades = new Upgrades({
      rooms,
      book: this.#book,
      tokens,
      stats: this.stats,
      events: this.#events,
      log,
      trusted: parseTrustedProxies(opts.trustedProxies),
      origins: parseAllowedOrigins(opts.allowedOrigins),
      routing: new Routing(opts.publicUrl, deps.directory?.self.name ?? '', this.stats),
      directory: deps.directory,
      authMode: opts.auth as AuthMode,
      verifier: opts.auth === AuthMode.OFF ? null : (deps.verifier ?? null),
      inputBurst: opts.inputBurst,
      messageBurst: opts.messageBurst,
      maxPlayers: opts.maxPlayers,
      connections: () => this.#conns.size,
      ready: () => this.#ready,
      publicPort: () => this.#publicPort,
      addressLimited: (conn, why) => this.#seating.addressLimited(conn, why),
    })
    const frameMax = maxFrameBytes(opts.maxVisible, game.fields.length)
    this.#sender = new FrameSender(opts, this.stats, encodeBufferBytes(opts.maxVisible, game.fields.length))
    this.#sendEvery = opts.sendHz > 0 ? Math.round(opts.tickHz / opts.sendHz) : 1
    rooms.onCreate = (room) => {
      const creator = this.#seating.creating
      const link: RoomLink = { rep: new RoomReplicator(room.world, room.grid, game.fields, opts), instance: ResumeTokens.newInstance(), creator }
      if (creator) creator.rooms++ // after anything that can throw: a room that was never built is never disposed
      room.link = link
      room.messages.sink = this.#queueMessage
      this.#directory?.opened(room.id)
    }
    rooms.onDispose = (room) => {
      const creator = (room.link as RoomLink | undefined)?.creator
      room.link = undefined
      if (creator) this.#book.roomClosed(creator, performance.now())
      this.#holds.roomDisposed(room)
      this.#directory?.closed(room.id)
    }
    rooms.onError = (room, err) => this.#closeFailedRoom(room, err)
    if (deps.directory) deps.directory.onLost = (id) => this.#roomMoved(id)
    this.#app = createApp(opts, log)
    this.#app.ws<Conn>('/play', {
      compression: uWS.DISABLED,
      maxPayloadLength: opts.maxMessageBytes,
      idleTimeout: opts.idleTimeout,
      sendPingsAutomatically: true,
      // Above our own hard cap, so uWS never drops a frame we chose to send (we close first).
      maxBackpressure: opts.hardBackpressure + 2 * frameMax,
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => this.#upgrades.handle(res, req, context),
      open: (ws) => this.#open(ws),
      message: (ws, message, isBinary) => this.#input.message(ws, message, isBinary),
      drain: (ws) => {
        // During shutdown a socket is closed as soon as its queued bytes are out.
        if (this.#drained && ws.getBufferedAmount() === 0) closeConn(ws.getUserData(), 'SHUTDOWN', DisconnectReason.SHUTDOWN)
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
    this.#roomList = new RoomList(this.#app, rooms, { stats: this.stats, log, directory: deps.directory, trustedProxies: opts.trustedProxies })
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
  /** Whether the seat's player is connected now (false: its seat is held for a resume). */
  connected(seat: Seat): boolean {
    return (seat.link as Session | undefined)?.conn != null
  }

  /**
   * An operator's close (the monitor, src/monitor/): room `id`'s connected
   * players closed CLOSED_BY_OPERATOR, its held seats released; the room goes
   * with its last seat. Returns the players closed, or -1 if there is no such room here.
   */
  closeRoom(id: string): number {
    const room = this.#rooms.byId.get(id)
    if (!room) return -1
    let n = 0
    for (let j = room.seats.length - 1; j >= 0; j--) {
      const seat = room.seats[j]
      if (seat && this.#closeSeat(seat)) n++
    }
    return n
  }

  /** An operator's close of player `playerId` (as closeRoom): its room's id, or null if no such player is here. */
  closePlayer(playerId: number): string | null {
    for (const room of this.#rooms.list) {
      const seat = room.seats.find((s) => s.playerId === playerId)
      if (seat && this.#closeSeat(seat)) return room.id
    }
    return null
  }

  #closeSeat(seat: Seat): boolean {
    const session = seat.link as Session | undefined
    if (session?.conn) {
      closeConn(session.conn, 'CLOSED_BY_OPERATOR', DisconnectReason.CLOSED_BY_OPERATOR)
      return true
    }
    if (session && this.#holds.has(seat)) {
      this.#holds.end(seat)
      this.#rooms.leave(seat)
      return true
    }
    return false
  }

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

  /** First step of a stop: readiness goes false and the listen sockets close; players play on until `shutdown`. */
  stopAccepting(): void {
    this.#ready = false
    this.#closeListens()
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
    this.#roomList.stop()
    this.#drained = new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        for (const conn of [...this.#conns]) closeConn(conn, 'SHUTDOWN', DisconnectReason.SHUTDOWN)
      }, drainMs)
      this.#allClosed = () => {
        clearTimeout(deadline)
        resolve()
      }
      for (const conn of [...this.#conns]) {
        if (conn.ws && conn.ws.getBufferedAmount() === 0) closeConn(conn, 'SHUTDOWN', DisconnectReason.SHUTDOWN)
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
        // Every tick is kept (players are staggered over the ticks between their sends): acks may name any.
        rep.snapshot(tick)
        const seats = room.seats
        const every = this.#sendEvery
        for (let j = seats.length - 1; j >= 0; j--) {
          const seat = seats[j] as Seat
          const session = seat.link as Session | undefined
          if (session?.outbox?.overflowed) this.#outboxFull(seat, session)
          else if (session?.conn && (every === 1 || (tick + seat.playerId) % every === 0)) this.#sendFrame(session.conn, rep, now)
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
    const outbox = conn.version >= 3 ? (conn.session?.outbox ?? null) : null
    const r = this.#sender.send(ws as WebSocket<unknown>, conn, viewer, rep, seat.appliedSeq, now, outbox)
    if (r === SendResult.TOO_SLOW) closeConn(conn, 'TOO_SLOW', DisconnectReason.TOO_SLOW)
    else if (r === SendResult.DESYNC) closeConn(conn, 'DESYNC', DisconnectReason.DESYNC)
  }

  /**
   * The room's sink of game messages and props (RoomMessages.sink): queued in
   * the seat's outbox, after dropping what the client has acked. Called from
   * game code (step, join): it never closes anything itself; an overflow is
   * acted on in the next sendTick (#outboxFull), outside the game's call.
   */
  readonly #queueMessage = (seat: Seat, frame: Uint8Array, snapshot: boolean): void => {
    const session = seat.link as Session | undefined
    const outbox = session?.outbox
    if (!outbox || outbox.overflowed) return
    const viewer = session.conn?.viewer
    if (viewer) outbox.ack(viewer.ackTick)
    if (outbox.push(frame, snapshot)) this.stats.gameMessagesQueued++
    else {
      this.stats.outboxOverflows++
      this.#events.warn('outbox full: player closed TOO_SLOW, seat released', { player: seat.playerId, room: seat.room.id, frames: outbox.size, bytes: outbox.bytes })
    }
  }

  /**
   * A seat's outbox passed its bound: a message would be lost, so the seat
   * cannot go on (a resume would be silently desynced). A connected player
   * is closed TOO_SLOW and not held; a held seat is released.
   */
  #outboxFull(seat: Seat, session: Session): void {
    if (session.conn) closeConn(session.conn, 'TOO_SLOW', DisconnectReason.OUTBOX_FULL)
    else if (this.#holds.has(seat)) {
      this.#holds.end(seat)
      this.#rooms.leave(seat)
    }
  }

  #open(ws: WebSocket<Conn>): void {
    const conn = ws.getUserData()
    conn.ws = ws
    this.#conns.add(conn)
    this.stats.connections++
    if (this.#drained) {
      closeConn(conn, 'SHUTDOWN', DisconnectReason.SHUTDOWN) // upgraded after an async lookup that outlived readiness
      if (conn.intent.kind === 'join') this.#releaseUnopened(conn)
      return
    }
    const intent = conn.intent
    if (intent.kind === 'refuse') {
      closeConn(conn, intent.code, intent.reason)
      return
    }
    if (intent.kind === 'redirect') {
      const ws = conn.ws as WebSocket<Conn>
      const frame = intent.frame
      ws.cork(() => ws.send(frame, true))
      this.stats.redirects[intent.route ? 'route' : 'direct']++
      this.stats.messagesSent++
      this.stats.bytesSent += frame.byteLength
      closeConn(conn, 'REDIRECT', DisconnectReason.REDIRECT)
      return
    }
    if (intent.kind === 'resume') {
      if (this.#conns.size > this.#opts.maxPlayers) return closeConn(conn, 'SERVER_FULL', DisconnectReason.SERVER_FULL)
      return this.#seating.resume(conn, intent.claims)
    }
    if (this.#conns.size <= this.#opts.maxPlayers) this.#seating.join(conn)
    else closeConn(conn, 'SERVER_FULL', DisconnectReason.SERVER_FULL)
    this.#releaseUnopened(conn)
  }

  /** A join the directory placed here that did not create its room (full, refused, the game failed): its claim goes back. */
  #releaseUnopened(conn: Conn): void {
    const id = conn.roomId
    if (id !== null && this.#directory && !this.#rooms.byId.has(id)) this.#directory.closed(id)
  }

  /**
   * Another worker holds room `id`'s directory registration now (this worker
   * was cut off from the directory long enough to lose it): close its players
   * with ROOM_MOVED, so they rejoin the owner; the room goes with its last player.
   */
  #roomMoved(id: string): void {
    const room = this.#rooms.byId.get(id)
    if (!room) return
    this.#log.warn('room taken over by another worker; closing its players so they rejoin there', { room: id, players: room.seats.length })
    for (let j = room.seats.length - 1; j >= 0; j--) {
      const seat = room.seats[j]
      const session = seat?.link as Session | undefined
      // Protocol-2 clients do not know ROOM_MOVED; SHUTDOWN makes them rejoin too.
      if (session?.conn) closeConn(session.conn, session.conn.version >= 3 ? 'ROOM_MOVED' : 'SHUTDOWN', DisconnectReason.ROOM_MOVED)
      else if (seat && session && this.#holds.has(seat)) {
        this.#holds.end(seat)
        this.#rooms.leave(seat)
      }
    }
  }

  /** A room's code threw (Rooms.fail, once per room): log it, count it, close its players with INTERNAL_ERROR. */
  #closeFailedRoom(room: Room, err: Error): void {
    this.stats.roomErrors++
    this.#log.error('room failed; closing it', { room: room.id, players: room.seats.length, error: err.stack ?? err.message })
    for (let j = room.seats.length - 1; j >= 0; j--) {
      const conn = (room.seats[j]?.link as Session | undefined)?.conn
      if (conn) closeConn(conn, 'INTERNAL_ERROR', DisconnectReason.INTERNAL_ERROR)
    }
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
    this.onDisconnect?.(reason, conn.seat?.room.id ?? conn.roomId, conn.playerId)
    const seat = conn.seat
    const session = conn.session
    if (seat && session) {
      // What the client acked is delivered: a resume resends only the rest.
      if (conn.viewer) session.outbox?.ack(conn.viewer.ackTick)
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
