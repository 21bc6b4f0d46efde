/**
 * Held seats: a player whose connection dropped (not by choice) keeps their
 * seat for `resumeWindow` seconds, the avatar standing still, so a resume can
 * take it back. Holds count against the dropped connection's address budget
 * (addresses.ts): at most `--max-held-per-address`, and at most
 * `--max-idle-rooms-per-address` holds that alone keep their room alive.
 */
import type { EventLog } from '../log.js'
import { AddressLimit, type Stats } from '../metrics/stats.js'
import type { Room, Rooms, Seat } from '../sim/room.js'
import type { AddressBook, AddressEntry } from './addresses.js'
import type { Outbox } from './outbox.js'

/** A player's hold on a seat, across connections (`Seat.link`). `C` is the network layer's connection. */
export interface Session<C extends object = object> {
  /** The connection playing this seat; null while the seat is held. */
  conn: C | null
  /** Bumped on each resume: the token of generation `gen` is the only valid one. */
  gen: number
  /** While held: when the hold ends (performance.now() ms). */
  heldUntil: number
  /** While held: the budget the hold counts against, and whether it was all that kept the room alive. */
  holder: AddressEntry | null
  idleHold: boolean
  /** The seat's game messages and props not yet acknowledged (protocol 3 and a game that declares some); null: none are sent. */
  readonly outbox: Outbox | null
}

export function newSession<C extends object>(outbox: Outbox | null = null): Session<C> {
  return { conn: null, gen: 0, heldUntil: 0, holder: null, idleHold: false, outbox }
}

const sessionOf = (seat: Seat | undefined): Session | undefined => seat?.link as Session | undefined

export interface HoldOptions {
  readonly resumeWindow: number
  readonly maxIdleRoomsPerAddress: number
}

export class SeatHolds {
  readonly #held = new Set<Seat>()
  readonly #rooms: Rooms
  readonly #book: AddressBook
  readonly #stats: Stats
  readonly #events: EventLog
  readonly #opts: HoldOptions

  constructor(rooms: Rooms, book: AddressBook, stats: Stats, events: EventLog, opts: HoldOptions) {
    this.#rooms = rooms
    this.#book = book
    this.#stats = stats
    this.#events = events
    this.#opts = opts
  }

  /** Seats held right now. */
  get size(): number {
    return this.#held.size
  }

  has(seat: Seat): boolean {
    return this.#held.has(seat)
  }

  /**
   * Holds the seat of a connection from `addr` that just dropped, if its
   * budgets allow (a refusal is counted and logged; the caller then lets the
   * seat leave). A hold is idle when nobody else in the room is connected.
   */
  tryHold(seat: Seat, addr: AddressEntry, now: number): boolean {
    const seats = seat.room.seats
    let idle = true
    for (let i = 0; i < seats.length && idle; i++) if (seats[i] !== seat && sessionOf(seats[i])?.conn) idle = false
    const refused = this.#book.mayHold(addr, idle)
    if (refused !== null) {
      this.#limited(addr, refused === 'held' ? AddressLimit.HELD : AddressLimit.IDLE_ROOMS)
      return false
    }
    const session = seat.link as Session
    session.holder = addr
    session.idleHold = idle
    addr.held++
    if (idle) addr.idleHolds++
    session.heldUntil = now + this.#opts.resumeWindow * 1000
    this.#held.add(seat)
    seat.room.suspend(seat)
    return true
  }

  /** Ends a hold (resumed, or its room went): the seat leaves the held set and its address's budget. */
  end(seat: Seat): void {
    if (!this.#held.delete(seat)) return
    const session = seat.link as Session
    if (session.holder) this.#book.holdEnded(session.holder, session.idleHold, performance.now())
    session.holder = null
    session.idleHold = false
  }

  /** Ends the hold and gives the seat up. */
  release(seat: Seat): void {
    this.end(seat)
    this.#rooms.leave(seat)
  }

  /** Releases holds whose window passed. */
  expire(now: number): void {
    for (const seat of this.#held) {
      if ((seat.link as Session).heldUntil <= now) {
        this.#stats.holdsExpired++
        this.release(seat)
      }
    }
  }

  /** Releases every hold (shutdown: nobody can come back to a stopping process). */
  releaseAll(): void {
    for (const seat of [...this.#held]) this.release(seat)
  }

  /** `room` is being disposed: its holds end. */
  roomDisposed(room: Room): void {
    for (const seat of room.seats) this.end(seat)
  }

  /**
   * A room just lost a connected player: if nobody in it is connected any
   * more, its remaining holds now keep it alive alone. Each becomes idle and is
   * charged to its holder's idle-room budget; one past the budget is released.
   * (Deciding only at the drop could be dodged: drop one connection while a
   * second one of the same address is still in the room, then close that.)
   */
  recheckIdle(room: Room): void {
    if (room.link === undefined || this.#held.size === 0) return
    const seats = room.seats
    for (let i = 0; i < seats.length; i++) if (sessionOf(seats[i])?.conn) return
    const max = this.#opts.maxIdleRoomsPerAddress
    for (const seat of [...seats]) {
      const session = sessionOf(seat)
      const holder = session?.holder
      if (!session || !holder || session.idleHold) continue
      if (max > 0 && holder.idleHolds >= max) {
        this.#limited(holder, AddressLimit.IDLE_ROOMS)
        this.release(seat)
      } else {
        session.idleHold = true
        holder.idleHolds++
      }
    }
  }

  #limited(addr: AddressEntry, why: AddressLimit): void {
    this.#stats.addressLimited[why]++
    this.#events.warn('address limit', { address: addr.key, reason: why })
  }
}
