/**
 * The `/play` upgrade query (PROTOCOL.md §1): `v`, `room`, `name`, for a
 * resume `player` with `resume`, `route`, and a join `token`. Checked before the upgrade; a
 * bad one gets HTTP 400 with the problem as its body.
 */
import { MAX_NAME_BYTES, MAX_TOKEN_CHARS, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ROOM_ID_PATTERN, ROUTE_PATTERN } from '../../proto/index.js'

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
  return { version, room, name, resume: token !== null ? { player: Number(player), token } : null, route, token: joinToken }
}
