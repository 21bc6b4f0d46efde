/**
 * The `/play` upgrade query (PROTOCOL.md §1): `v`, `room`, `name`, for a
 * resume `player` with `resume`, `route`, a join `token`, and join options `opts`. Checked before the upgrade; a
 * bad one gets HTTP 400 with the problem as its body.
 */
import type { JoinOptions } from '../sim/game.js'
import { JOIN_OPTION_KEY_PATTERN, MAX_JOIN_OPTIONS, MAX_JOIN_OPTIONS_CHARS, MAX_JOIN_OPTION_BYTES, MAX_NAME_BYTES, MAX_TOKEN_CHARS, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ROOM_ID_PATTERN, ROUTE_PATTERN } from '../../proto/index.js'

/** A valid query. `resume` is set only together with `player` and `room`. */
export interface JoinQuery {
  /** The protocol version the client announced (`v`), MIN_PROTOCOL_VERSION..PROTOCOL_VERSION; 2 when absent (old clients). */
  readonly version: number
  /** Null: quick play. */
  readonly room: string | null
  readonly name: string
  readonly resume: { readonly player: number; readonly token: string } | null
  /**
   * The worker the load balancer was asked to reach (`route`, set in a
   * protocol-3 REDIRECT url); null when absent. Only for noticing a
   * misrouting balancer: the room directory still decides who owns a room.
   */
  readonly route: string | null
  /** A join token (JWT) in the `token` parameter, for clients that cannot set a subprotocol; null when absent. */
  readonly token: string | null
  /** Join options for the game's `join` (`opts`, a JSON object); empty when absent. */
  readonly options: JoinOptions
}


const NO_OPTIONS: JoinOptions = Object.freeze({})
const OPTIONS_PROBLEM = `opts must be a JSON object of at most ${MAX_JOIN_OPTIONS} keys (A-Z a-z 0-9 _, at most 32 characters) with string (at most ${MAX_JOIN_OPTION_BYTES} bytes), finite number or boolean values, at most ${MAX_JOIN_OPTIONS_CHARS} characters`

/** Parses `opts`; the options, or null when they break a rule. */
export function parseJoinOptions(raw: string): JoinOptions | null {
  if (raw.length > MAX_JOIN_OPTIONS_CHARS) return null
  let v: unknown
  try {
    v = JSON.parse(raw)
  } catch {
    return null
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null
  const keys = Object.keys(v)
  if (keys.length > MAX_JOIN_OPTIONS) return null
  // A fresh object without a prototype: a key like __proto__ or constructor is plain data to the game.
  const out = Object.create(null) as Record<string, string | number | boolean>
  for (const k of keys) {
    if (!JOIN_OPTION_KEY_PATTERN.test(k)) return null
    const x = (v as Record<string, unknown>)[k]
    if (typeof x === 'string') {
      if (Buffer.byteLength(x) > MAX_JOIN_OPTION_BYTES) return null
    } else if (!(typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)))) return null
    out[k] = x
  }
  return Object.freeze(out)
}

/** Longest join token accepted (a JWT with a few claims is well under 1 KiB). */
export const MAX_JOIN_TOKEN_CHARS = 4096

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/
const PLAYER = /^[1-9][0-9]{0,9}$/
const VERSION = /^[0-9]{1,3}$/
/** Absent `v`: a client from before protocol 3 announced versions. */
const UNANNOUNCED_VERSION = 2

/** Parses the raw query string; returns the query, or the problem (the 400 body, without its newline). */
export function parseJoinQuery(raw: string): JoinQuery | { readonly problem: string } {
  const query = new URLSearchParams(raw)
  const v = query.get('v')
  const room = query.get('room')
  const name = query.get('name') ?? ''
  const player = query.get('player')
  const token = query.get('resume')
  const route = query.get('route')
  const joinToken = query.get('token')
  const opts = query.get('opts')
  const version = v === null ? UNANNOUNCED_VERSION : VERSION.test(v) ? Number(v) : NaN
  // Checked first: the rest of the query, and every frame, depend on the version.
  if (!(version >= MIN_PROTOCOL_VERSION && version <= PROTOCOL_VERSION)) {
    return { problem: `v must be an integer from ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}` }
  }
  if (room !== null && !ROOM_ID_PATTERN.test(room)) return { problem: 'room must be 1-32 characters of A-Z a-z 0-9 _ -' }
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return { problem: `name must be at most ${MAX_NAME_BYTES} bytes of UTF-8` }
  if (CONTROL.test(name)) return { problem: 'name must not contain control characters' }
  if ((player === null) !== (token === null) || (token !== null && room === null)) return { problem: 'resume needs room, player and resume together' }
  if (player !== null && !PLAYER.test(player)) return { problem: 'player must be a positive integer' }
  if (token !== null && token.length > MAX_TOKEN_CHARS) return { problem: `resume must be at most ${MAX_TOKEN_CHARS} characters` }
  if (route !== null && !ROUTE_PATTERN.test(route)) return { problem: 'route must be 1-64 characters of A-Z a-z 0-9 _ . -' }
  if (joinToken !== null && (joinToken === '' || joinToken.length > MAX_JOIN_TOKEN_CHARS)) return { problem: `token must be 1-${MAX_JOIN_TOKEN_CHARS} characters` }
  const options = opts === null ? NO_OPTIONS : parseJoinOptions(opts)
  if (options === null) return { problem: OPTIONS_PROBLEM }
  return { version, room, name, resume: token !== null ? { player: Number(player), token } : null, route, token: joinToken, options }
}
