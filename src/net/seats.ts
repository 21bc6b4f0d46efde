/**
 * Seating a connection once its socket is open: a join (quick play or a
 * named room, within the address's room budget), a resume (a token with a
 * valid MAC takes a held seat back at its generation), and the WELCOME that
 * binds a connection to its seat. The next tick sends it a full state, with
 * the seat's queued game messages and props before it (outbox.ts).
 */
import { PROTOCOL_VERSION, encodeWelcome } from '../../proto/index.js'
import type { EventLog, Logger } from '../log.js'
import { AddressLimit, DisconnectReason, ResumeOutcome, type Stats } from '../metrics/stats.js'
import type { JoinRefused } from '../sim/game.js'
import { JoinRefusal, type Rooms, type Seat } from '../sim/room.js'
import type { AddressBook, AddressEntry } from './addresses.js'
import { closeConn, type Conn, type RoomLink, type Session } from './conn.js'
import { newSession, type SeatHolds } from './holds.js'
import { Outbox, type OutboxLimits } from './outbox.js'
import type { ResumeTokens, TokenClaims } from './resume.js'
import type { WebSocket } from './uws.js'

export interface SeatOptions extends OutboxLimits {
  readonly tickHz: number
  readonly historyTicks: number
  readonly ackWindow: number
  readonly resumeWindow: number
}

export class Seating {
  readonly #rooms: Rooms
  readonly #book: AddressBook
  readonly #holds: SeatHolds
  readonly #tokens: ResumeTokens
  readonly #stats: Stats
  readonly #events: EventLog
  readonly #log: Logger
  readonly #opts: SeatOptions
  #creating: AddressEntry | null = null

  constructor(rooms: Rooms, book: AddressBook, holds: SeatHolds, tokens: ResumeTokens, stats: Stats, events: EventLog, log: Logger, opts: SeatOptions) {
    this.#rooms = rooms
    this.#book = book
    this.#holds = holds
    this.#tokens = tokens
    this.#stats = stats
    this.#events = events
    this.#log = log
    this.#opts = opts
  }

  /** The address whose join is creating a room right now (read by `rooms.onCreate`, which runs inside `join`). */
  get creating(): AddressEntry | null {
    return this.#creating
  }

  /** Seats a plain join, or closes it with why it could not be seated. */
  join(conn: Conn): void {
    let seat: Seat | JoinRefusal | JoinRefused
    this.#creating = conn.addr
    // Made first: the game's join may already send the player messages, and the seat gets the room's props.
    const messages = conn.version >= 3 && this.#rooms.schema.used
    const session: Session = newSession<Conn>(messages ? new Outbox(this.#opts) : null)
    try {
      seat = this.#rooms.join(conn.roomId, conn.playerId, conn.name, this.#book.mayCreateRoom(conn.addr), conn.identity ?? undefined, conn.options, session)
    } catch (err) {
      // The game could not even build the room: nothing was registered.
      this.#stats.roomErrors++
      this.#log.error('room creation failed', { room: conn.roomId ?? '(quick play)', error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
      closeConn(conn, 'INTERNAL_ERROR', DisconnectReason.INTERNAL_ERROR)
      return
    } finally {
      this.#creating = null
    }
    switch (seat) {
      case JoinRefusal.MAY_NOT_CREATE:
        this.addressLimited(conn, AddressLimit.ROOMS)
        return closeConn(conn, 'ADDRESS_LIMIT', DisconnectReason.ADDRESS_LIMIT)
      case JoinRefusal.FAILED:
        return closeConn(conn, 'INTERNAL_ERROR', DisconnectReason.INTERNAL_ERROR)
      case JoinRefusal.ROOM_FULL:
        return closeConn(conn, 'ROOM_FULL', DisconnectReason.ROOM_FULL)
      case JoinRefusal.SERVER_FULL:
        return closeConn(conn, 'SERVER_FULL', DisconnectReason.SERVER_FULL)
    }
    if ('refuse' in seat) {
      this.#log.debug('join refused by the game', { player: conn.playerId, room: conn.roomId ?? '(quick play)', reason: seat.refuse })
      return closeConn(conn, 'JOIN_REFUSED', DisconnectReason.JOIN_REFUSED, seat.refuse)
    }
    this.#attach(conn, seat, session)
    this.#log.debug('join', { player: conn.playerId, room: seat.room.id, entity: seat.entity })
  }

  /** A token with a valid MAC: take the seat back if it is still held at the token's generation. */
  resume(conn: Conn, claims: TokenClaims): void {
    const room = conn.roomId === null ? undefined : this.#rooms.byId.get(conn.roomId)
    const link = room?.link as RoomLink | undefined
    const seat = room && link?.instance === claims.instance ? room.seats.find((s) => s.playerId === conn.playerId) : undefined
    const session = seat?.link as Session | undefined
    if (!seat || !session) {
      this.#stats.resumes[ResumeOutcome.EXPIRED]++
      return closeConn(conn, 'RESUME_EXPIRED', DisconnectReason.RESUME_REFUSED)
    }
    if (claims.gen !== session.gen) {
      this.#stats.resumes[ResumeOutcome.USED]++
      return closeConn(conn, 'RESUME_USED', DisconnectReason.RESUME_REFUSED)
    }
    // The seat's stream and the new connection must agree: a protocol 2 connection cannot take a seat that has
    // messages (they would pile up unread), nor a protocol 3 one a seat joined without them (it would miss them).
    const wantsStream = conn.version >= 3 && this.#rooms.schema.used
    if (wantsStream !== (session.outbox !== null) || session.outbox?.overflowed) {
      this.#stats.resumes[ResumeOutcome.EXPIRED]++
      return closeConn(conn, 'RESUME_EXPIRED', DisconnectReason.RESUME_REFUSED)
    }
    session.gen++
    const old = session.conn
    if (old) {
      // The old connection may still look open (a half-open TCP link): it loses the seat, not the new one.
      old.seat = null
      old.session = null
      old.viewer = null
      closeConn(old, 'REPLACED', DisconnectReason.REPLACED)
    }
    this.#holds.end(seat)
    conn.lastSeq = seat.inputSeq // input sequence numbers continue across connections
    // What the old connection may not have delivered goes again; WELCOME's messageSeq lets the client skip what it has.
    session.outbox?.resend()
    this.#stats.resumes[ResumeOutcome.RESUMED]++
    this.#attach(conn, seat, session)
    this.#log.debug('resume', { player: conn.playerId, room: seat.room.id, entity: seat.entity })
  }

  /** A per-address budget refused something: counted and logged (rate-limited) with the address. */
  addressLimited(conn: Conn, why: AddressLimit): void {
    this.#stats.addressLimited[why]++
    this.#events.warn('address limit', { address: conn.address, reason: why })
  }

  /** Binds a connection to its seat and sends WELCOME (in the client's protocol version). */
  #attach(conn: Conn, seat: Seat, session: Session): void {
    const ws = conn.ws as WebSocket<Conn>
    session.conn = conn
    conn.seat = seat
    conn.session = session
    const link = seat.room.link as RoomLink
    conn.viewer = link.rep.newViewer(seat.entity)
    const game = this.#rooms.game
    const v3 = conn.version >= 3
    const schema = this.#rooms.schema
    const welcome = encodeWelcome({
      version: Math.min(conn.version, PROTOCOL_VERSION),
      playerId: conn.playerId,
      roomId: seat.room.id,
      tickHz: this.#opts.tickHz,
      entityId: seat.entity,
      historyTicks: this.#opts.historyTicks,
      fields: game.fields,
      input: game.input,
      // Bound to the player's `sub` when authenticated: only the same player can resume the seat.
      resumeToken: this.#opts.resumeWindow > 0 ? this.#tokens.issue(seat.room.id, link.instance, conn.playerId, session.gen, conn.identity?.sub ?? '') : '',
      ackWindow: this.#opts.ackWindow,
      messageSeq: v3 ? (session.outbox?.firstSeq ?? 0) : 0,
      messages: v3 ? schema.messages : [],
      clientMessages: v3 ? schema.clientMessages : [],
      props: v3 ? schema.props : [],
    })
    ws.cork(() => ws.send(welcome, true))
    this.#stats.messagesSent++
    this.#stats.bytesSent += welcome.byteLength
  }
}
