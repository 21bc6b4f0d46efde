/**
 * The `/play` upgrade query (PROTOCOL.md §1): `room`, `name`, and for a resume
 * `player` with `resume`. Checked before the upgrade; a bad one gets HTTP 400
 * with the problem as its body.
 */
import { MAX_NAME_BYTES, MAX_TOKEN_CHARS, ROOM_ID_PATTERN } from '../../proto/index.js'

/** A valid query. `resume` is set only together with `player` and `room`. */
export interface JoinQuery {
  /** Null: quick play. */
  readonly room: string | null
  readonly name: string
  readonly resume: { readonly player: number; readonly token: string } | null
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/
const PLAYER = /^[1-9][0-9]{0,9}$/

/** Parses the raw query string; returns the query, or the problem (the 400 body, without its newline). */
export function parseJoinQuery(raw: string): JoinQuery | { readonly problem: string } {
  const query = new URLSearchParams(raw)
  const room = query.get('room')
  const name = query.get('name') ?? ''
  const player = query.get('player')
  const token = query.get('resume')
  if (room !== null && !ROOM_ID_PATTERN.test(room)) return { problem: 'room must be 1-32 characters of A-Z a-z 0-9 _ -' }
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return { problem: `name must be at most ${MAX_NAME_BYTES} bytes of UTF-8` }
  if (CONTROL.test(name)) return { problem: 'name must not contain control characters' }
  if ((player === null) !== (token === null) || (token !== null && room === null)) return { problem: 'resume needs room, player and resume together' }
  if (player !== null && !PLAYER.test(player)) return { problem: 'player must be a positive integer' }
  if (token !== null && token.length > MAX_TOKEN_CHARS) return { problem: `resume must be at most ${MAX_TOKEN_CHARS} characters` }
  return { room, name, resume: token !== null ? { player: Number(player), token } : null }
}
