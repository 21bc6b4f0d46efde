/**
 * The room listing (`GET /rooms`) for lobbies: which rooms exist, how full
 * they are, and what the game says of them. Uses the platform's `fetch`.
 */

/** One room as the server lists it. */
export interface ListedRoom {
  readonly id: string
  readonly quickPlay: boolean
  readonly players: number
  /** Seats in the room. */
  readonly capacity: number
  /** What the game says of the room (`GameRoom.meta()`); `{}` when nothing. */
  readonly meta: Readonly<Record<string, string | number | boolean>>
  /** The worker that runs it ('' on a single process). */
  readonly worker: string
}

export interface RoomListing {
  /** Most players first, then by id; at most `limit`. */
  readonly rooms: readonly ListedRoom[]
  /** Rooms that matched, before `limit`. */
  readonly total: number
}

export interface ListRoomsOptions {
  /** At most this many rooms (1..500; the server's default: 100). */
  readonly limit?: number
  /** Only quick-play rooms (true) or only named rooms (false). */
  readonly quickPlay?: boolean
  /** Default: the global `fetch`. */
  readonly fetch?: typeof fetch
  readonly signal?: AbortSignal
}

/** The `/rooms` URL of a server given its `ws(s)://.../play` URL (or any http(s) URL of it). */
export function roomsUrl(url: string): URL {
  const u = new URL(url)
  if (u.protocol === 'ws:') u.protocol = 'http:'
  else if (u.protocol === 'wss:') u.protocol = 'https:'
  else if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`listRooms: expected a ws, wss, http or https URL, got ${u.protocol}`)
  u.pathname = '/rooms'
  u.search = ''
  u.hash = ''
  return u
}

/**
 * Lists the server's rooms. Throws an Error naming the HTTP status (and the
 * server's reason) when the answer is not 200: 400 bad option, 429 too many
 * requests (retry after a second), 503 directory unavailable.
 *
 * @example
 *   const { rooms } = await listRooms('wss://play.example.com/play', { quickPlay: false })
 */
export async function listRooms(url: string, options: ListRoomsOptions = {}): Promise<RoomListing> {
  const u = roomsUrl(url)
  if (options.limit !== undefined) u.searchParams.set('limit', String(options.limit))
  if (options.quickPlay !== undefined) u.searchParams.set('quickplay', options.quickPlay ? '1' : '0')
  const f = options.fetch ?? fetch
  const res = await f(u, options.signal ? { signal: options.signal } : {})
  if (res.status !== 200) {
    const text = (await res.text().catch(() => '')).trim().slice(0, 200)
    throw new Error(`listRooms: HTTP ${res.status}${text ? `: ${text}` : ''}`)
  }
  return (await res.json()) as RoomListing
}
