/**
 * The interface a game implements. tickwire owns sockets, ticks, replication
 * and metrics; a game owns its rules. The reference game is src/games/arena.ts.
 *
 * @example
 * ```ts
 * const myGame: Game = {
 *   name: 'tag',
 *   fields: [{ name: 'x', quantum: 0.25 }, { name: 'y', quantum: 0.25 }],
 *   input: [{ name: 'dx', min: -1, max: 1 }, { name: 'dy', min: -1, max: 1 }],
 *   position: ['x', 'y'],
 *   layout: (maxPlayers) => ({ capacity: maxPlayers, width: 1000, height: 1000 }),
 *   createRoom: (ctx) => new TagRoom(ctx),
 * }
 * ```
 */
import { MAX_CLIENT_VALUES, type FieldSpec, type InputSpec, type MessageData, type MessageSpec, type Value, type ValueSpec } from '../../proto/index.js'
import type { Grid } from './grid.js'
import { MessageSchema } from './messages.js'
import type { World } from './world.js'

export interface RoomLayout {
  /** Most entities (players included) the room can hold at once. */
  readonly capacity: number
  /** World size in world units; positions are in [0, width) x [0, height). */
  readonly width: number
  readonly height: number
}

export interface Game {
  readonly name: string
  /**
   * Replicated fields, in wire order (at most 7, so a change mask is one byte).
   * The world stores each as a float; clients receive `round(value / quantum)`.
   * round(value / quantum) must fit in 32 bits (int32); larger values wrap.
   */
  readonly fields: readonly FieldSpec[]
  /** Input values a client sends each input, all integers; tickwire rejects out-of-range ones. */
  readonly input: readonly InputSpec[]
  /** The two fields that hold an entity's position, for areas of interest. */
  readonly position: readonly [x: string, y: string]
  layout(maxPlayers: number): RoomLayout
  /**
   * Message kinds the server sends (`ctx.send`, `ctx.broadcast`): reliable,
   * ordered, beside the state stream (protocol 3; PROTOCOL.md §3 MESSAGE).
   * Each is a name and typed values: `int` (min, max), `number`, `string`
   * (maxBytes), `bool`.
   */
  readonly messages?: readonly MessageSpec[]
  /** Message kinds a client may send (`client.send` in the SDK), handed to `GameRoom.message`; checked like inputs and rate-limited. */
  readonly clientMessages?: readonly MessageSpec[]
  /**
   * Per-entity data that changes rarely (a name, a colour, a team), set with
   * `ctx.setProps`: sent to every player of the room when set or changed and
   * to each newcomer once, not per tick; cleared when the entity despawns.
   */
  readonly props?: readonly ValueSpec[]
  /** Creates the rules of one room. */
  createRoom(ctx: RoomContext): GameRoom
}

/**
 * What a game's room gets from tickwire. `F`: the game's field names
 * (`RoomContext<'x' | 'y'>` in `createRoom`'s parameter), so `world.get(e, 'z')` does not compile.
 */
export interface RoomContext<F extends string = string> {
  readonly world: World<F>
  /** Rebuilt after every step: positions as of the end of the previous tick. */
  readonly grid: Grid
  readonly layout: RoomLayout
  readonly maxPlayers: number
  /** Uniform numbers in [0, 1), seeded per room: rooms are reproducible. */
  readonly random: () => number
  /**
   * Sends message `name` (declared in `Game.messages`) to the player whose
   * entity is `entity`; false when no player has that entity (nothing is
   * sent). Reliable and in order with the room's other messages and props;
   * it leaves with the player's next STATE. In `join`, messages to the
   * joiner's entity reach them after their WELCOME (there `send` returns
   * true for any entity without a seat yet; only the joiner's is delivered). Throws TypeError for an
   * undeclared name or data that does not fit its declaration.
   */
  send(entity: number, name: string, data: MessageData): boolean
  /**
   * Sends message `name` to every player seated in the room (encoded once);
   * in `join`, the joiner is not seated yet (`send` to its entity reaches
   * it). Players whose seat is held get it on their resume. Throws as `send`.
   */
  broadcast(name: string, data: MessageData): void
  /**
   * Sets `entity`'s props (every value of `Game.props`): all players get
   * them, newcomers too, until `clearProps` or the entity despawns. The same
   * values again send nothing. Throws TypeError for data that does not fit,
   * or an entity that is not alive (e.g. `spawn()`'s -1 of a full world).
   * A newcomer's snapshot of every entity's props is not counted against
   * `--outbox-frames`/`--outbox-bytes` (props of players, not of thousands of NPCs).
   */
  setProps(entity: number, data: MessageData): void
  /** Clears `entity`'s props (done by itself when the entity despawns). */
  clearProps(entity: number): void
  /** `entity`'s props as last set, or undefined. */
  props(entity: number): MessageData | undefined
}

/**
 * Who an authenticated player is (`--auth`): from their verified join token.
 * Absent when auth is off, or optional and no token was given.
 */
export interface PlayerIdentity {
  /** The player's stable id in the game's backend (the token's `sub`). */
  readonly sub: string
  /** The token's `roles` (e.g. `admin`, `spectator`): the game decides what they mean. */
  readonly roles: readonly string[]
  /** The token's `room`: the room id or `*` pattern it allows; null: any. */
  readonly room: string | null
}

/**
 * What a client asked for when joining (upgrade query `opts`, PROTOCOL.md §1):
 * at most 16 keys, strings of at most 128 bytes, finite numbers, booleans;
 * already checked for shape, not for meaning: the game checks what it uses.
 * Empty when the client sent none.
 */
export type JoinOptions = Readonly<Record<string, string | number | boolean>>

/** `join`'s refusal: the client is closed with JOIN_REFUSED (4016) and `refuse` as the close reason (cut to 123 bytes). */
export interface JoinRefused {
  readonly refuse: string
}

/** One room's rules. All calls happen on the tick thread, never concurrently. */
export interface GameRoom {
  /**
   * A player joins: spawn their entity and return its id; -1 when there is no
   * room for them (the client gets ROOM_FULL); `{ refuse: 'why' }` to turn
   * them away with a reason they see (JOIN_REFUSED, e.g. `team red is full`).
   * `name` is the token's name when auth is on (else the query's);
   * `identity` is set for an authenticated player; `options` are the
   * client's join options (`connect({ joinOptions })` in the SDK; tickwire
   * always passes them, `{}` when none were sent).
   */
  join(name: string, identity?: PlayerIdentity, options?: JoinOptions): number | JoinRefused
  /** A player leaves: usually despawn their entity. */
  leave(entity: number): void
  /**
   * The player's latest input, applied at the start of a tick. Values are
   * integers already checked against `Game.input` ranges; enforce any rule
   * across values here (e.g. clamp a vector's length: no speed hacks).
   */
  input(entity: number, values: Int32Array): void
  /** Advances the room by `dt` seconds. The grid holds positions as of the previous tick. */
  step(dt: number, tick: number): void
  /**
   * A client message (a kind of `Game.clientMessages`, its values already
   * checked against the declaration), from the player of `entity`. Called at
   * the start of the tick after it arrived, in arrival order, before inputs.
   * `data` has no prototype. Without this method client messages are
   * accepted and dropped.
   */
  message?(entity: number, name: string, data: Readonly<Record<string, Value>>): void
  /**
   * What `GET /rooms` shows of this room beside its players and capacity
   * (e.g. `{ map: 'dust', round: 3 }`): at most 16 keys, string, finite number
   * or boolean values, 512 bytes as JSON. Read about once a second.
   */
  meta?(): RoomMeta
}

/** Game-defined room metadata listed by `GET /rooms` (see `GameRoom.meta`). */
export type RoomMeta = Readonly<Record<string, string | number | boolean>>

/** Most entities a room may hold (replication keeps entity ids in 16 bits). */
export const MAX_ROOM_ENTITIES = 65536

/**
 * Checks a game definition once at start-up, so a mistake fails the start with
 * a clear message instead of failing every room later. Throws Error naming
 * the game and the problem.
 */
export function validateGame(game: Game, maxPlayers: number): void {
  const fail = (msg: string): never => {
    throw new Error(`game ${JSON.stringify(game.name)}: ${msg}`)
  }
  const names = game.fields.map((f) => f.name)
  if (game.fields.length < 1 || game.fields.length > 7) fail(`needs 1 to 7 replicated fields, has ${game.fields.length}`)
  if (new Set(names).size !== names.length) fail(`field names must be unique: ${names.join(', ')}`)
  for (const f of game.fields) {
    if (!f.name) fail('a field has an empty name')
    if (!(Number.isFinite(f.quantum) && f.quantum > 0)) fail(`field ${f.name}: quantum must be a finite number > 0, got ${f.quantum}`)
  }
  if (game.position.length !== 2) fail(`position must name exactly two fields (x, y), got ${game.position.length}`)
  for (const p of game.position) if (!names.includes(p)) fail(`position field ${JSON.stringify(p)} is not a replicated field`)
  if (game.input.length > MAX_CLIENT_VALUES) fail(`at most ${MAX_CLIENT_VALUES} input values (the server reads no longer INPUT frame), has ${game.input.length}`)
  for (const i of game.input) {
    const ok = Number.isInteger(i.min) && Number.isInteger(i.max) && i.min <= i.max && i.min >= -(2 ** 31) && i.max < 2 ** 31
    if (!ok) fail(`input ${i.name}: min and max must be 32-bit integers with min <= max, got [${i.min}, ${i.max}]`)
  }
  const messages = MessageSchema.problem(game)
  if (messages) fail(messages)
  const layout = game.layout(maxPlayers)
  if (!Number.isInteger(layout.capacity) || layout.capacity < 1 || layout.capacity > MAX_ROOM_ENTITIES) {
    fail(`layout(${maxPlayers}).capacity must be an integer in 1..${MAX_ROOM_ENTITIES}, got ${layout.capacity}`)
  }
  if (!(layout.width > 0 && layout.height > 0 && Number.isFinite(layout.width) && Number.isFinite(layout.height))) {
    fail(`layout(${maxPlayers}) width and height must be finite and > 0, got ${layout.width} x ${layout.height}`)
  }
}
