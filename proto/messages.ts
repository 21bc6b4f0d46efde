/**
 * Frame layouts of the tickwire protocol, shared by the server and the client
 * SDK. Every frame is one MessagePack array whose first element is a `MsgType`.
 * See PROTOCOL.md for the byte-level spec.
 */
import { Packr } from 'msgpackr'
import { MAX_REDIRECT_URL_CHARS, MIN_PROTOCOL_VERSION, MsgType, PROTOCOL_VERSION } from './codes.js'
import { MAX_MESSAGE_VALUES, fieldFromWire, fieldToWire, messageFromWire, messageToWire, valueProblem, type MessageSpec, type Value, type ValueSpec } from './schema.js'
import { NumberArrayError, StrictDecodeError, decodeStrict, readNumberArray, type StrictLimits } from './strict.js'

/** A replicated entity field: values travel as `round(value / quantum)`. */
export interface FieldSpec {
  readonly name: string
  /** Smallest step the client can see, in the field's unit (e.g. 0.25 world units). */
  readonly quantum: number
}

/** One value of a client input: an integer in [min, max]. */
export interface InputSpec {
  readonly name: string
  readonly min: number
  readonly max: number
}

/** First frame on every connection. */
export interface Welcome {
  readonly version: number
  readonly playerId: number
  readonly roomId: string
  readonly tickHz: number
  /** The entity this player controls. */
  readonly entityId: number
  /** How many past ticks the server can delta against; clients keep at least this many. */
  readonly historyTicks: number
  readonly fields: readonly FieldSpec[]
  readonly input: readonly InputSpec[]
  /**
   * Opaque token that resumes this seat after a dropped connection (query
   * `room`, `player`, `resume`); single-use: every WELCOME carries a new one.
   * Empty when the server holds no seats (`--resume-window 0`).
   */
  readonly resumeToken: string
  /**
   * Protocol 3: STATE frames the server sends unacknowledged before it
   * pauses (§6). 0 from a protocol 2 server (which does not say).
   */
  readonly ackWindow: number
  /**
   * Protocol 3: the number of the first MESSAGE or PROPS frame after this
   * WELCOME; each such frame is the next number. A resumed seat's frames
   * that may not have arrived are sent again: drop those below the next
   * number you expect. 0 from a protocol 2 server.
   */
  readonly messageSeq: number
  /** Protocol 3: the game's server-to-client message kinds; MESSAGE's `kind` is an index here. Empty from protocol 2. */
  readonly messages: readonly MessageSpec[]
  /** Protocol 3: the kinds a client may send with CLIENT_MESSAGE. Empty from protocol 2. */
  readonly clientMessages: readonly MessageSpec[]
  /** Protocol 3: the values of an entity's props (PROPS). Empty from protocol 2. */
  readonly props: readonly ValueSpec[]
}

/**
 * The room lives on another worker. With a non-empty `url` (protocol 3): open
 * that URL, keeping the client's own query parameters except those the URL
 * carries (`port` is then 0 and `host` ''). With an empty `url` (protocol 2's
 * only form): reconnect to `port` on `host` (empty: the host already used),
 * same path and query.
 */
export interface Redirect {
  readonly port: number
  readonly host: string
  /** '' or an absolute ws:// / wss:// URL on the public endpoint, carrying `route=<worker>` and `room`. */
  readonly url: string
}

/**
 * A state update, as decoded. `baseTick` 0 means a full state: the client
 * clears its table first. Otherwise it applies the frame to its copy of tick
 * `baseTick`. On the wire the third element is `tick - baseTick` (0: full).
 * In all three lists each entity id is written as the difference from the
 * previous id of that list (the first from 0); ids ascend. `removed` is
 * `idGap...`; `changed` is flat: `idGap, mask, zigzag(delta)...` with one
 * delta per set mask bit in field order; `created` is flat: `idGap, value...`
 * with every field.
 */
export interface StateFrame {
  readonly tick: number
  readonly baseTick: number
  /** Sequence number of the last input the server applied for this player (0: none). */
  readonly inputSeq: number
  readonly removed: readonly number[]
  readonly changed: readonly number[]
  readonly created: readonly number[]
}

export type ServerMessage =
  | ({ readonly type: typeof MsgType.WELCOME } & Welcome)
  | ({ readonly type: typeof MsgType.STATE } & StateFrame)
  | { readonly type: typeof MsgType.PONG; readonly clientTime: number; readonly roomPlayers: number }
  | ({ readonly type: typeof MsgType.REDIRECT } & Redirect)
  /** A game message: `kind` indexes WELCOME's `messages`; values not yet checked against it. */
  | { readonly type: typeof MsgType.MESSAGE; readonly kind: number; readonly values: readonly Value[] }
  /** An entity's props: `values` empty means cleared; not yet checked against WELCOME's `props`. */
  | { readonly type: typeof MsgType.PROPS; readonly entity: number; readonly values: readonly Value[] }

// Plain MessagePack only: no records, no extensions on the wire. Decoding is never msgpackr's
// (it honours extension types and structured-clone references: a small frame can expand without
// bound); both sides read with the strict reader in strict.ts.
const packr = new Packr({ useRecords: false, variableMapSize: true })
/** Server frames nest at most five deep (WELCOME's message declarations); values are bounded by the frame's bytes anyway. */
const SERVER_LIMITS: StrictLimits = { maxDepth: 5, maxValues: 1 << 20 }

/**
 * Encodes a WELCOME frame in the layout of `w.version`: 10 elements for
 * protocol 2, 15 for protocol 3. Runs once per connection, so msgpackr's
 * general encoder is fine here.
 */
export function encodeWelcome(w: Welcome): Uint8Array {
  const v2 = [
    MsgType.WELCOME,
    w.version,
    w.playerId,
    w.roomId,
    w.tickHz,
    w.entityId,
    w.historyTicks,
    w.fields.map((f) => [f.name, f.quantum]),
    w.input.map((i) => [i.name, i.min, i.max]),
    w.resumeToken,
  ]
  if (w.version < 3) return packr.pack(v2)
  return packr.pack([...v2, w.ackWindow, w.messageSeq, w.messages.map(messageToWire), w.clientMessages.map(messageToWire), w.props.map(fieldToWire)])
}

/** Encodes a MESSAGE frame `[5, kind, ...values]`; the values are the game's, already checked. */
export function encodeMessage(kind: number, values: readonly Value[]): Uint8Array {
  return packr.pack([MsgType.MESSAGE, kind, ...values])
}

/** Encodes a PROPS frame `[6, entity, ...values]`; no values: the entity's props are cleared. */
export function encodeProps(entity: number, values: readonly Value[]): Uint8Array {
  return packr.pack([MsgType.PROPS, entity, ...values])
}

/** Encodes a CLIENT_MESSAGE frame `[19, kind, ...values]` (client side). */
export function encodeClientMessage(kind: number, values: readonly Value[]): Uint8Array {
  return packr.pack([MsgType.CLIENT_MESSAGE, kind, ...values])
}

/**
 * Encodes a REDIRECT frame for a client speaking `version`: `[4, port, host]`
 * for protocol 2 (which has no `url`: it must be ''), `[4, port, host, url]`
 * for protocol 3. Throws RangeError otherwise (a server bug, not client input).
 */
export function encodeRedirect(r: Redirect, version: number): Uint8Array {
  if (version === 2) {
    if (r.url !== '') throw new RangeError('a protocol 2 REDIRECT cannot carry a url')
    return packr.pack([MsgType.REDIRECT, r.port, r.host])
  }
  if (version === 3) return packr.pack([MsgType.REDIRECT, r.port, r.host, r.url])
  throw new RangeError(`no REDIRECT layout for protocol ${String(version)}`)
}

/** True for '' or an absolute ws:// or wss:// URL of at most MAX_REDIRECT_URL_CHARS characters. */
function isRedirectUrl(url: string): boolean {
  if (url === '') return true
  if (url.length > MAX_REDIRECT_URL_CHARS) return false
  try {
    const u = new URL(url)
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.hostname !== ''
  } catch {
    return false
  }
}

/** Encodes a PONG frame: the PING's time, and the players seated in the client's room. */
export function encodePong(clientTime: number, roomPlayers: number): Uint8Array {
  return packr.pack([MsgType.PONG, clientTime, roomPlayers])
}

/** Encodes an INPUT frame (client side). */
export function encodeInput(seq: number, ackTick: number, values: ArrayLike<number>): Uint8Array {
  const arr: number[] = [MsgType.INPUT, seq, ackTick]
  for (let i = 0; i < values.length; i++) arr.push(values[i] as number)
  return packr.pack(arr)
}

/** Encodes an ACK frame (client side). */
export function encodeAck(ackTick: number): Uint8Array {
  return packr.pack([MsgType.ACK, ackTick])
}

/** Encodes a PING frame (client side). */
export function encodePing(clientTime: number): Uint8Array {
  return packr.pack([MsgType.PING, clientTime])
}

/** Thrown by `decodeServerMessage` for a frame that does not follow the spec. */
export class ProtocolError extends Error {
  override name = 'ProtocolError'
}

const isInt = Number.isSafeInteger
function isIntArray(a: unknown): a is number[] {
  if (!Array.isArray(a)) return false
  for (let i = 0; i < a.length; i++) if (!isInt(a[i])) return false
  return true
}

/** Decodes and checks a server frame (client side). Throws `ProtocolError` on anything off-spec. */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  let m: unknown
  try {
    m = decodeStrict(bytes, SERVER_LIMITS)
  } catch (err) {
    if (err instanceof StrictDecodeError) throw new ProtocolError(`not a tickwire frame: ${err.message}`)
    throw err
  }
  if (!Array.isArray(m)) throw new ProtocolError('frame is not an array')
  switch (m[0]) {
    case MsgType.STATE: {
      const [, tick, baseAge, inputSeq, removed, changed, created] = m
      if (m.length !== 7 || !isInt(tick) || !isInt(baseAge) || !isInt(inputSeq) || baseAge < 0 || baseAge >= tick) {
        throw new ProtocolError('bad STATE header')
      }
      if (!isIntArray(removed) || !isIntArray(changed) || !isIntArray(created)) {
        throw new ProtocolError('bad STATE body')
      }
      const baseTick = baseAge === 0 ? 0 : tick - baseAge
      return { type: MsgType.STATE, tick, baseTick, inputSeq, removed, changed, created }
    }
    case MsgType.WELCOME: {
      const [, version, playerId, roomId, tickHz, entityId, historyTicks, fields, input, resumeToken, ackWindow, messageSeq, messages, clientMessages, props] = m
      // Checked first: another version may have another layout. Version 3 appends five elements to version 2's ten.
      if (!isInt(version) || version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
        throw new ProtocolError(`server speaks protocol ${String(version)}, this client ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`)
      }
      if (
        m.length !== (version >= 3 ? 15 : 10) ||
        typeof resumeToken !== 'string' ||
        !isInt(version) ||
        !isInt(playerId) ||
        typeof roomId !== 'string' ||
        typeof tickHz !== 'number' ||
        !isInt(entityId) ||
        !isInt(historyTicks) ||
        !Array.isArray(fields) ||
        !Array.isArray(input)
      ) {
        throw new ProtocolError('bad WELCOME')
      }
      const f: FieldSpec[] = fields.map((x: unknown) => {
        if (!Array.isArray(x) || typeof x[0] !== 'string' || typeof x[1] !== 'number') {
          throw new ProtocolError('bad WELCOME field spec')
        }
        return { name: x[0], quantum: x[1] }
      })
      const inp: InputSpec[] = input.map((x: unknown) => {
        if (!Array.isArray(x) || typeof x[0] !== 'string' || !isInt(x[1]) || !isInt(x[2])) {
          throw new ProtocolError('bad WELCOME input spec')
        }
        return { name: x[0], min: x[1], max: x[2] }
      })
      const base = { type: MsgType.WELCOME, version, playerId, roomId, tickHz, entityId, historyTicks, fields: f, input: inp, resumeToken } as const
      if (version < 3) return { ...base, ackWindow: 0, messageSeq: 0, messages: [], clientMessages: [], props: [] }
      if (!isInt(ackWindow) || ackWindow < 1 || !isInt(messageSeq) || messageSeq < 0 || !Array.isArray(messages) || !Array.isArray(clientMessages) || !Array.isArray(props)) {
        throw new ProtocolError('bad WELCOME (protocol 3 elements)')
      }
      const kinds = (list: unknown[]): MessageSpec[] =>
        list.map((x) => {
          const spec = messageFromWire(x)
          if (!spec) throw new ProtocolError('bad WELCOME message declaration')
          return spec
        })
      const p = props.map((x: unknown) => {
        const spec = fieldFromWire(x)
        if (!spec) throw new ProtocolError('bad WELCOME props declaration')
        return spec
      })
      return { ...base, ackWindow, messageSeq, messages: kinds(messages), clientMessages: kinds(clientMessages), props: p }
    }
    case MsgType.REDIRECT: {
      // Protocol 2: 3 elements; protocol 3: a 4th, the url ('' means what protocol 2 means).
      const [, port, host, url = ''] = m
      if ((m.length !== 3 && m.length !== 4) || typeof host !== 'string' || typeof url !== 'string' || !isRedirectUrl(url)) {
        throw new ProtocolError('bad REDIRECT')
      }
      if (!isInt(port) || port < (url === '' ? 1 : 0) || port > 65535) throw new ProtocolError('bad REDIRECT')
      return { type: MsgType.REDIRECT, port, host, url }
    }
    case MsgType.MESSAGE:
    case MsgType.PROPS: {
      const id = m[1]
      if (m.length < 2 || !isInt(id) || id < 0 || (m[0] === MsgType.PROPS && id >= 65536)) throw new ProtocolError(m[0] === MsgType.PROPS ? 'bad PROPS' : 'bad MESSAGE')
      const values = m.slice(2)
      for (const v of values) {
        if (typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'boolean') throw new ProtocolError(`bad ${m[0] === MsgType.PROPS ? 'PROPS' : 'MESSAGE'} value: ${v === null ? 'nil' : 'an array'}`)
      }
      return m[0] === MsgType.PROPS ? { type: MsgType.PROPS, entity: id, values } : { type: MsgType.MESSAGE, kind: id, values }
    }
    case MsgType.PONG:
      if (m.length !== 3 || typeof m[1] !== 'number' || !isInt(m[2]) || m[2] < 0) throw new ProtocolError('bad PONG')
      return { type: MsgType.PONG, clientTime: m[1], roomPlayers: m[2] }
    default:
      throw new ProtocolError(`unknown message type ${String(m[0])}`)
  }
}

/** Why a client frame was refused; each maps to a close code (see `ClientError` below). */
export const ClientError = {
  /** Not MessagePack, not an array, or an unknown type: close BAD_MESSAGE. */
  MALFORMED: 'malformed',
  /** Wrong element count or element types, NaN/Infinity, non-integers: close BAD_INPUT. */
  TYPE: 'type',
  /** An input value outside its [min, max]: close BAD_INPUT. */
  RANGE: 'range',
} as const
export type ClientError = (typeof ClientError)[keyof typeof ClientError]

/** A decoded client frame; one instance is reused per connection so parsing allocates little. */
export interface ClientMessage {
  type: number
  seq: number
  ackTick: number
  clientTime: number
  /** Input values, length = the game's input spec length. */
  readonly values: Int32Array
}

export function newClientMessage(inputCount: number): ClientMessage {
  return { type: 0, seq: 0, ackTick: 0, clientTime: 0, values: new Int32Array(inputCount) }
}

const U32_MAX = 0xffffffff
function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= U32_MAX
}

/**
 * Decodes and strictly validates one client frame (server side) into `out`.
 * Must run synchronously inside the socket's message callback: uWS frees the
 * buffer afterwards. Never throws; returns null when valid, else the reason.
 * Sequence and ack checks that need connection state are the caller's.
 */
export function parseClientMessage(bytes: Uint8Array, spec: readonly InputSpec[], out: ClientMessage): ClientError | null {
  // One flat array of numbers, read without allocating; nothing nested is ever decoded.
  const n = readNumberArray(bytes, scratch)
  if (n === NumberArrayError.MALFORMED || n === 0) return ClientError.MALFORMED
  const type = scratch[0] as number // NaN when the type itself was not a number
  out.type = Number.isInteger(type) ? type : 0
  if (out.type === MsgType.CLIENT_MESSAGE) return null // strings and booleans too: the caller reads it with parseGameMessage
  if (out.type !== MsgType.INPUT && out.type !== MsgType.ACK && out.type !== MsgType.PING) return ClientError.MALFORMED
  if (n < 0) return ClientError.TYPE // too long, or an element that is not a number
  switch (out.type) {
    case MsgType.INPUT: {
      if (n !== 3 + spec.length) return ClientError.TYPE
      const seq = scratch[1]
      const ack = scratch[2]
      if (!isU32(seq) || seq === 0 || !isU32(ack)) return ClientError.TYPE
      for (let i = 0; i < spec.length; i++) {
        const v = scratch[3 + i] as number
        if (!Number.isInteger(v)) return ClientError.TYPE
        const s = spec[i] as InputSpec
        if (v < s.min || v > s.max) return ClientError.RANGE
        out.values[i] = v
      }
      out.seq = seq
      out.ackTick = ack
      return null
    }
    case MsgType.ACK: {
      const ack = scratch[1]
      if (n !== 2 || !isU32(ack)) return ClientError.TYPE
      out.ackTick = ack
      return null
    }
    default: {
      const t = scratch[1] as number
      if (n !== 2 || !Number.isFinite(t)) return ClientError.TYPE
      out.clientTime = t
      return null
    }
  }
}

/** A CLIENT_MESSAGE as read by `parseGameMessage`: its kind and values, checked against that kind's declaration. */
export interface GameMessage {
  readonly kind: number
  readonly values: readonly Value[]
}

const GAME_MESSAGE_LIMITS: StrictLimits = { maxDepth: 1, maxValues: 3 + MAX_MESSAGE_VALUES }

/**
 * Reads a CLIENT_MESSAGE (`[19, kind, ...values]`, server side) strictly and
 * checks it against `kinds` (the game's client message declarations).
 * Returns the message, or why it is refused: MALFORMED for bytes outside the
 * subset, or a nested array; TYPE for a kind that is not an integer, a
 * wrong count, or a value of the wrong type (a non-integer int, a
 * non-finite number, nil); RANGE for an unknown kind, an int out of its
 * range, or a string longer than declared. Never throws.
 */
export function parseGameMessage(bytes: Uint8Array, kinds: readonly MessageSpec[]): GameMessage | ClientError {
  let m: unknown
  try {
    m = decodeStrict(bytes, GAME_MESSAGE_LIMITS)
  } catch {
    return ClientError.MALFORMED
  }
  if (!Array.isArray(m) || m[0] !== MsgType.CLIENT_MESSAGE) return ClientError.MALFORMED
  const kind = m[1]
  if (!Number.isInteger(kind)) return ClientError.TYPE
  const spec = kinds[kind as number]
  if (!spec) return ClientError.RANGE
  if (m.length !== 2 + spec.fields.length) return ClientError.TYPE
  for (let i = 0; i < spec.fields.length; i++) {
    const f = spec.fields[i] as ValueSpec
    const v = m[2 + i] as unknown
    const wrongType =
      f.type === 'string' ? typeof v !== 'string' : f.type === 'bool' ? typeof v !== 'boolean' : typeof v !== 'number' || !Number.isFinite(v) || (f.type === 'int' && !Number.isInteger(v))
    if (wrongType) return ClientError.TYPE
    if (valueProblem(f, v) !== null) return ClientError.RANGE
  }
  return { kind: kind as number, values: m.slice(2) as Value[] }
}

/** Longest client frame read: the type, seq, ack and up to this many input values (a longer one is refused unread). */
export const MAX_CLIENT_VALUES = 256
const scratch = new Float64Array(3 + MAX_CLIENT_VALUES)

export { PROTOCOL_VERSION }

