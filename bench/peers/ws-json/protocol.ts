/**
 * The ws-json peer's wire format: JSON text frames, what a developer writes
 * by hand. Connect to `ws://host:port/<any path>?name=<name>[&room=<id>]`
 * (no room: quick play).
 *
 * Server to client:
 *   {"type":"welcome","player":7,"entity":12,"room":"Ab3x","width":1870,"height":1870,"tickHz":20}
 *   {"type":"state","tick":41,"seqs":{"7":3,"8":0},"entities":[{"id":0,"kind":1,"x":12.25,"y":80,"score":0},...]}
 *     once per tick to every player of the room, the same string to all: the
 *     full room state, and for each player the newest input seq applied.
 *     x and y are rounded to the game's quantum (0.25), as tickwire sends them.
 * Client to server:
 *   {"type":"input","seq":4,"mx":-100,"my":35}   seq increasing from 1; mx, my integers in [-100, 100]
 *
 * A refused join closes with 1013 and the reason (`room_full`, `server_full`,
 * `failed`). Malformed client messages are ignored (and counted).
 */

export interface Welcome {
  readonly type: 'welcome'
  readonly player: number
  readonly entity: number
  readonly room: string
  readonly width: number
  readonly height: number
  readonly tickHz: number
}

export interface EntityState {
  readonly id: number
  readonly kind: number
  readonly x: number
  readonly y: number
  readonly score: number
}

export interface State {
  readonly type: 'state'
  readonly tick: number
  /** Player id -> newest input seq applied. */
  readonly seqs: Record<string, number>
  readonly entities: EntityState[]
}

export interface Input {
  readonly type: 'input'
  readonly seq: number
  readonly mx: number
  readonly my: number
}

/** Close code of a refused join (1013: try again later). */
export const CLOSE_REFUSED = 1013
/** Close code sent to every player on shutdown. */
export const CLOSE_GOING_AWAY = 1001
/** Largest client message, bytes (an input is ~45). */
export const MAX_CLIENT_MESSAGE = 1024
/** Longest room id and player name accepted in the query string. */
export const MAX_ROOM_ID = 64
export const MAX_NAME = 32
/** Every state frame starts with these bytes (the adapter reads the tick right after). */
export const STATE_PREFIX = '{"type":"state","tick":'
