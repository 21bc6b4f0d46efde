/**
 * Rooms and seats. A room is one world, its grid and its game rules; a seat is
 * a player's place in it. This layer knows nothing of sockets: the network
 * layer hangs its connection object on `Seat.link` and `Room.link`.
 */
import { randomBytes } from 'node:crypto'
import type { Value } from '../../proto/index.js'
import type { Game, GameRoom, JoinOptions, JoinRefused, PlayerIdentity } from './game.js'
import { Grid } from './grid.js'
import { MessageSchema, RoomMessages } from './messages.js'
import { mulberry32 } from './random.js'
import { World } from './world.js'

export interface Seat {
  readonly playerId: number
  readonly name: string
  readonly entity: number
  readonly room: Room
  /** Latest input values received; applied at the next tick. */
  readonly input: Int32Array
  /** Sequence number of the latest input received (0: none yet). */
  inputSeq: number
  /** Sequence number of the latest input applied by a tick; -1 makes the next tick apply `input` whatever its sequence. */
  appliedSeq: number
  /** The network layer's object for this seat. */
  link: unknown
}

export class Room {
  readonly id: string
  readonly quickPlay: boolean
  readonly world: World
  readonly grid: Grid
  readonly rules: GameRoom
  readonly maxPlayers: number
  readonly seats: Seat[] = []
  /** Game messages and entity props of this room; the network layer sets its `sink`. */
  readonly messages: RoomMessages<Seat>
  /** The network layer's object for this room. */
  link: unknown = undefined
  /** Set once its rules threw: they are not called again, and the room is being closed. */
  failed = false
  readonly #inputCount: number
  /** Input values of a player who is away: 0, clamped to each input's range. */
  readonly #neutral: Int32Array

  constructor(id: string, quickPlay: boolean, game: Game, maxPlayers: number, cellSize: number, seed: number, schema = new MessageSchema(game)) {
    this.id = id
    this.quickPlay = quickPlay
    this.maxPlayers = maxPlayers
    const layout = game.layout(maxPlayers)
    this.world = new World(layout.capacity, game.fields.map((f) => f.name))
    this.grid = new Grid(this.world, game.position[0], game.position[1], layout.width, layout.height, cellSize)
    const messages = new RoomMessages<Seat>(schema, this.seats, this.world.alive)
    this.messages = messages
    this.world.onDespawn = (e) => messages.clearProps(e)
    this.rules = game.createRoom({
      world: this.world,
      grid: this.grid,
      layout,
      maxPlayers,
      random: mulberry32(seed),
      send: (e, name, data) => messages.send(e, name, data),
      broadcast: (name, data) => messages.broadcast(name, data),
      setProps: (e, data) => messages.setProps(e, data),
      clearProps: (e) => messages.clearProps(e),
      props: (e) => messages.props(e),
    })
    this.grid.rebuild()
    this.#inputCount = game.input.length
    this.#neutral = Int32Array.from(game.input, (i) => Math.min(i.max, Math.max(i.min, 0)))
  }

  get full(): boolean {
    return this.seats.length >= this.maxPlayers
  }

  /** Seats a player; null when the room is full, the game has no entity for them, or refused them. */
  join(playerId: number, name: string, identity?: PlayerIdentity, options: JoinOptions = NO_OPTIONS, link?: unknown): Seat | null {
    const r = this.tryJoin(playerId, name, identity, options, link)
    return r && 'refuse' in r ? null : r
  }

  /**
   * As `join`, with the game's refusal (and its reason) as it gave it.
   * `link` becomes the seat's `link` before the seat gets its first frames
   * (props, and what the game sent it in `join`).
   */
  tryJoin(playerId: number, name: string, identity?: PlayerIdentity, options: JoinOptions = NO_OPTIONS, link?: unknown): Seat | JoinRefused | null {
    if (this.full) return null
    this.messages.beginJoin()
    let seat: Seat | JoinRefused | null = null
    try {
      seat = this.#seat(playerId, name, identity, options, link)
    } finally {
      this.messages.endJoin(seat && 'playerId' in seat ? seat : null)
    }
    return seat
  }

  #seat(playerId: number, name: string, identity: PlayerIdentity | undefined, options: JoinOptions, link: unknown): Seat | JoinRefused | null {
    const entity = this.rules.join(name, identity, options)
    if (typeof entity === 'object' && entity !== null) {
      if (typeof entity.refuse !== 'string') throw new TypeError(`join returned an object without a refuse string: ${JSON.stringify(entity)}`)
      return { refuse: entity.refuse }
    }
    if (typeof entity !== 'number' || !Number.isInteger(entity)) throw new TypeError(`join must return an entity id, -1 or { refuse }, got ${String(entity)}`)
    if (entity < 0) return null
    const seat: Seat = {
      playerId,
      name,
      entity,
      room: this,
      input: new Int32Array(this.#inputCount),
      inputSeq: 0,
      appliedSeq: 0,
      link,
    }
    this.seats.push(seat)
    return seat
  }

  /**
   * The seat's player is away (its connection dropped; the seat is held for a
   * resume): from the next tick its input is neutral, 0 clamped to each range.
   */
  suspend(seat: Seat): void {
    seat.input.set(this.#neutral)
    seat.appliedSeq = -1
  }

  readonly #deliver = (entity: number, name: string, data: Record<string, Value>): void => {
    this.rules.message?.(entity, name, data)
  }

  leave(seat: Seat): void {
    const i = this.seats.indexOf(seat)
    if (i < 0) return
    this.seats[i] = this.seats[this.seats.length - 1] as Seat
    this.seats.pop()
    if (!this.failed) this.rules.leave(seat.entity)
  }

  /** One simulation step: hand over client messages, apply the newest input of each seat, step the rules, rebuild the grid. */
  step(dt: number, tick: number): void {
    if (this.messages.waiting > 0) this.messages.drain(this.#deliver)
    const seats = this.seats
    for (let i = 0; i < seats.length; i++) {
      const s = seats[i] as Seat
      if (s.inputSeq !== s.appliedSeq) {
        this.rules.input(s.entity, s.input)
        s.appliedSeq = s.inputSeq
      }
    }
    this.rules.step(dt, tick)
    this.grid.rebuild()
  }
}

const NO_OPTIONS: JoinOptions = Object.freeze({})

export interface RoomsOptions {
  readonly maxPlayersPerRoom: number
  readonly maxRooms: number
  /** Grid cell size in world units (the area-of-interest radius). */
  readonly cellSize: number
  /** Base seed; room n uses seed + n. */
  readonly seed: number
}

/**
 * Why a join found no seat. FAILED: the game's code threw; the room was failed
 * (see `Rooms.onError`). MAY_NOT_CREATE: a new room was needed and the caller
 * forbade creating one.
 */
export const JoinRefusal = { ROOM_FULL: 'room_full', SERVER_FULL: 'server_full', FAILED: 'failed', MAY_NOT_CREATE: 'may_not_create' } as const
export type JoinRefusal = (typeof JoinRefusal)[keyof typeof JoinRefusal]

/** All rooms of one process: quick-play placement, named rooms, disposal of empty rooms. */
export class Rooms {
  readonly byId = new Map<string, Room>()
  readonly list: Room[] = []
  /** Called when a room is created or disposed (the network layer attaches per-room state). */
  onCreate: (room: Room) => void = () => {}
  onDispose: (room: Room) => void = () => {}
  /**
   * A room's rules threw (in step, join or leave): close its players here. The
   * room is marked failed before and disposed after, so this runs once per room.
   */
  onError: (room: Room, err: Error) => void = () => {}
  readonly #game: Game
  readonly #opts: RoomsOptions
  /** The game's message and props declarations, indexed once for all rooms. */
  readonly schema: MessageSchema
  #created = 0

  constructor(game: Game, opts: RoomsOptions) {
    this.#game = game
    this.#opts = opts
    this.schema = new MessageSchema(game)
  }

  get game(): Game {
    return this.#game
  }

  /** Seats per room. */
  get maxPlayersPerRoom(): number {
    return this.#opts.maxPlayersPerRoom
  }

  /** Rooms this process may run at once (`--max-rooms`). */
  get maxRooms(): number {
    return this.#opts.maxRooms
  }

  /** Players seated in all rooms. */
  get players(): number {
    let n = 0
    for (const r of this.list) n += r.seats.length
    return n
  }

  /**
   * Seats a player: in room `roomId` (created on first use), or with no id by
   * quick play, in the fullest quick-play room that has a free seat. With
   * `mayCreate` false, a join that needs a new room is refused instead.
   */
  join(roomId: string | null, playerId: number, name: string, mayCreate = true, identity?: PlayerIdentity, options: JoinOptions = NO_OPTIONS, link?: unknown): Seat | JoinRefusal | JoinRefused {
    let room: Room | undefined
    if (roomId !== null) {
      room = this.byId.get(roomId)
      if (room && room.full) return JoinRefusal.ROOM_FULL
    } else {
      let best = -1
      for (const r of this.list) {
        if (r.quickPlay && !r.full && r.seats.length > best) {
          best = r.seats.length
          room = r
        }
      }
    }
    if (!room) {
      if (this.list.length >= this.#opts.maxRooms) return JoinRefusal.SERVER_FULL
      if (!mayCreate) return JoinRefusal.MAY_NOT_CREATE
      // Throws if the game cannot build the room; nothing is registered then.
      room = this.#create(roomId ?? this.#newId(), roomId === null)
    }
    let seat: Seat | JoinRefused | null
    try {
      seat = room.tryJoin(playerId, name, identity, options, link)
    } catch (err) {
      this.fail(room, err)
      return JoinRefusal.FAILED
    }
    if (seat && 'playerId' in seat) return seat
    if (room.seats.length === 0) this.#dispose(room)
    return seat ?? JoinRefusal.ROOM_FULL
  }

  leave(seat: Seat): void {
    const room = seat.room
    try {
      room.leave(seat)
    } catch (err) {
      this.fail(room, err)
    }
    if (room.seats.length === 0) this.#dispose(room)
  }

  /**
   * Marks `room` failed, lets `onError` close its players, and disposes it.
   * Once per room. `err` is whatever the game threw (games may throw anything).
   */
  fail(room: Room, err: unknown): void {
    if (room.failed) return
    room.failed = true
    const error = err instanceof Error ? err : new Error(`game code threw a non-Error: ${String(err)}`)
    try {
      this.onError(room, error)
    } catch {
      // onError must not take the process down either; the room is disposed below all the same.
    }
    this.#dispose(room)
  }

  /**
   * Steps every room. A room whose rules throw is failed (its players closed,
   * the room disposed) and the other rooms step on: one game bug costs one
   * room, not the process. Backwards, since failing a room removes it.
   */
  step(dt: number, tick: number): void {
    for (let i = this.list.length - 1; i >= 0; i--) {
      const room = this.list[i] as Room
      try {
        room.step(dt, tick)
      } catch (err) {
        this.fail(room, err)
      }
    }
  }

  #newId(): string {
    for (;;) {
      const id = randomBytes(6).toString('base64url')
      if (!this.byId.has(id)) return id
    }
  }

  #create(id: string, quickPlay: boolean): Room {
    const seed = (this.#opts.seed + this.#created++) >>> 0
    const room = new Room(id, quickPlay, this.#game, this.#opts.maxPlayersPerRoom, this.#opts.cellSize, seed, this.schema)
    this.onCreate(room)
    this.byId.set(id, room)
    this.list.push(room)
    return room
  }

  #dispose(room: Room): void {
    if (this.byId.get(room.id) !== room) return
    this.byId.delete(room.id)
    const i = this.list.indexOf(room)
    if (i >= 0) this.list.splice(i, 1)
    this.onDispose(room)
  }
}
