/**
 * A room's game messages and entity props, as the game sees them: it sends by
 * name with data objects, tickwire checks them against the game's
 * declarations (proto/schema.ts), encodes each frame once and hands it to
 * `sink` per seat. What happens to a frame then (the per-seat reliable stream,
 * its bound, resume) is the network layer's; this file knows no sockets.
 *
 * Client messages are queued here and handed to the game's `message` at the
 * start of the next tick, in arrival order, before inputs: the rules see
 * them on the tick thread at a tick boundary, like inputs.
 */
import { encodeMessage, encodeProps, messagesProblem, fieldsProblem, valuesOf, dataOf, type MessageData, type MessageSpec, type Value, type ValueSpec } from '../../proto/index.js'
import type { Game } from './game.js'

/** The part of a seat this file needs (Seat in room.ts). */
export interface MessageSeat {
  readonly entity: number
}

/**
 * Where encoded frames go: one seat's reliable stream (the network layer's
 * outbox). `snapshot`: one of the props frames a newcomer gets on joining.
 */
export type MessageSink<S extends MessageSeat> = (seat: S, frame: Uint8Array, snapshot: boolean) => void

/** A game's declarations, checked and indexed once per process. */
export class MessageSchema {
  readonly messages: readonly MessageSpec[]
  readonly clientMessages: readonly MessageSpec[]
  readonly props: readonly ValueSpec[]
  readonly #kind = new Map<string, number>()

  constructor(game: Pick<Game, 'messages' | 'clientMessages' | 'props'>) {
    this.messages = game.messages ?? []
    this.clientMessages = game.clientMessages ?? []
    this.props = game.props ?? []
    this.messages.forEach((m, i) => this.#kind.set(m.name, i))
  }

  /** Whether the game uses the reliable stream at all (else no outbox is kept). */
  get used(): boolean {
    return this.messages.length > 0 || this.props.length > 0
  }

  /** What is wrong with the declarations, or null (checked once at start-up). */
  static problem(game: Pick<Game, 'messages' | 'clientMessages' | 'props'>): string | null {
    return (
      (game.messages !== undefined ? messagesProblem(game.messages, 'messages') : null) ??
      (game.clientMessages !== undefined ? messagesProblem(game.clientMessages, 'clientMessages') : null) ??
      (game.props !== undefined ? fieldsProblem(game.props, 'props') : null)
    )
  }

  /** Encodes message `name` with `data`; throws TypeError naming the problem (a bug in the game, not a client's fault). */
  encode(name: string, data: MessageData): Uint8Array {
    const kind = this.#kind.get(name)
    if (kind === undefined) throw new TypeError(`send: unknown message ${JSON.stringify(name)} (the game declares ${this.messages.map((m) => m.name).join(', ') || 'none'})`)
    const spec = this.messages[kind] as MessageSpec
    const values: Value[] = new Array<Value>(spec.fields.length)
    const p = valuesOf(spec.fields, data, values, 0, `message ${name}`)
    if (p) throw new TypeError(p)
    return encodeMessage(kind, values)
  }
}

/** Per room: props by entity, the newcomer snapshot, and the inbox of client messages. */
export class RoomMessages<S extends MessageSeat> {
  /** Set by the network layer when the room is created; frames sent before go nowhere. */
  sink: MessageSink<S> = () => {}
  readonly schema: MessageSchema
  readonly #seats: readonly S[]
  /** Each entity's props: its data (for `props()`) and its encoded PROPS frame (for newcomers). */
  readonly #props = new Map<number, { readonly data: MessageData; readonly frame: Uint8Array }>()
  /** Client messages waiting for the next tick: seat, kind, values. */
  #inbox: { seat: S; kind: number; values: readonly Value[] }[] = []
  /** While the game's `join` runs: messages to entities that have no seat yet (the joiner's). */
  #joining: { entity: number; frame: Uint8Array }[] | null = null

  /** 1 where the world holds an entity (World.alive): props go only to live entities. */
  readonly #alive: Uint8Array

  constructor(schema: MessageSchema, seats: readonly S[], alive: Uint8Array) {
    this.schema = schema
    this.#seats = seats
    this.#alive = alive
  }

  /** Message `name` to the player of `entity`: false (nothing sent) when no player plays it. */
  send(entity: number, name: string, data: MessageData): boolean {
    const frame = this.schema.encode(name, data)
    const seat = this.#seatOf(entity)
    if (seat) {
      this.sink(seat, frame, false)
      return true
    }
    if (this.#joining) {
      this.#joining.push({ entity, frame })
      return true
    }
    return false
  }

  /** Message `name` to every player of the room (encoded once). */
  broadcast(name: string, data: MessageData): void {
    this.#toAll(this.schema.encode(name, data))
  }

  /**
   * Sets `entity`'s props (all declared values): every player gets them now,
   * and each newcomer on joining, until the entity despawns or they are
   * cleared. Setting the same values again sends nothing.
   */
  setProps(entity: number, data: MessageData): void {
    const spec = this.schema.props
    if (spec.length === 0) throw new TypeError('setProps: the game declares no props')
    // A dead or made-up id (e.g. spawn()'s -1 when the world is full) would reach every client and never be cleared.
    if (this.#alive[entity] !== 1) throw new TypeError(`setProps: entity ${String(entity)} is not alive`)
    const values: Value[] = new Array<Value>(spec.length)
    const p = valuesOf(spec, data, values, 0, `props of entity ${entity}`)
    if (p) throw new TypeError(p)
    const old = this.#props.get(entity)
    if (old && spec.every((s) => old.data[s.name] === data[s.name])) return
    const frame = encodeProps(entity, values)
    this.#props.set(entity, { data: dataOf(spec, values, 0), frame })
    this.#toAll(frame)
  }

  /** The entity's props as last set, or undefined. */
  props(entity: number): MessageData | undefined {
    return this.#props.get(entity)?.data
  }

  /** Clears `entity`'s props (done for every despawned entity): players are told with an empty PROPS. */
  clearProps(entity: number): void {
    if (!this.#props.delete(entity)) return
    this.#toAll(encodeProps(entity, []))
  }

  /** Around the game's `join`: messages it sends to the joiner's entity are kept for the seat made after. */
  beginJoin(): void {
    this.#joining = []
  }

  /**
   * The seat made for a join (or null when there is none): it gets every
   * entity's props, then what the game sent it during `join`.
   */
  endJoin(seat: S | null): void {
    const kept = this.#joining
    this.#joining = null
    if (!seat) return
    for (const p of this.#props.values()) this.sink(seat, p.frame, true)
    if (kept) for (const k of kept) if (k.entity === seat.entity) this.sink(seat, k.frame, false)
  }

  /** A client message, already checked against its declaration: handed to the game at the next tick. */
  receive(seat: S, kind: number, values: readonly Value[]): void {
    this.#inbox.push({ seat, kind, values })
  }

  /** Client messages waiting (bounded by the per-connection message rate). */
  get waiting(): number {
    return this.#inbox.length
  }

  /** Hands the waiting client messages to `deliver`, in arrival order; those of seats that left are dropped. */
  drain(deliver: (entity: number, name: string, data: Record<string, Value>) => void): void {
    if (this.#inbox.length === 0) return
    const inbox = this.#inbox
    this.#inbox = []
    for (const m of inbox) {
      if (!this.#seats.includes(m.seat)) continue
      const spec = this.schema.clientMessages[m.kind] as MessageSpec
      deliver(m.seat.entity, spec.name, dataOf(spec.fields, m.values, 0))
    }
  }

  #toAll(frame: Uint8Array): void {
    const seats = this.#seats
    for (let i = 0; i < seats.length; i++) this.sink(seats[i] as S, frame, false)
  }

  #seatOf(entity: number): S | undefined {
    const seats = this.#seats
    for (let i = 0; i < seats.length; i++) if ((seats[i] as S).entity === entity) return seats[i]
    return undefined
  }
}
