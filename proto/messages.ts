/**
 * Frame layouts of the tickwire protocol, shared by the server and the client
 * SDK. Every frame is one MessagePack array whose first element is a `MsgType`.
 * See PROTOCOL.md for the byte-level spec.
 */
import { Packr } from 'msgpackr'
import { MAX_REDIRECT_URL_CHARS, MIN_PROTOCOL_VERSION, MsgType, PROTOCOL_VERSION } from './codes.js'
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

// Plain MessagePack only: no records, no extensions on the wire. Decoding is never msgpackr's
// (it honours extension types and structured-clone references: a small frame can expand without
// bound); both sides read with the strict reader in strict.ts.
const packr = new Packr({ useRecords: false, variableMapSize: true })
/** Server frames nest at most three deep (WELCOME's field specs); values are bounded by the frame's bytes anyway. */
const SERVER_LIMITS: StrictLimits = { maxDepth: 3, maxValues: 1 << 20 }

/** Encodes a WELCOME frame. Runs once per connection, so msgpackr's general encoder is fine here. */
export function encodeWelcome(w: Welcome): Uint8Array {
  return packr.pack([
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
  ])
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
      const [, version, playerId, roomId, tickHz, entityId, historyTicks, fields, input, resumeToken] = m
      // Checked first: another version may have another layout. Versions 2 and 3 share WELCOME's.
      if (!isInt(version) || version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
        throw new ProtocolError(`server speaks protocol ${String(version)}, this client ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`)
      }
      if (
        m.length !== 10 ||
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
      return { type: MsgType.WELCOME, version, playerId, roomId, tickHz, entityId, historyTicks, fields: f, input: inp, resumeToken }
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

/** Longest client frame read: the type, seq, ack and up to this many input values (a longer one is refused unread). */
export const MAX_CLIENT_VALUES = 256
const scratch = new Float64Array(3 + MAX_CLIENT_VALUES)

export { PROTOCOL_VERSION }
