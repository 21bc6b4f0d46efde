/**
 * `GET /rooms` on the public port: the named and quick-play rooms of every
 * worker (of every machine, with the Redis directory), with their players,
 * capacity and the game's `GameRoom.meta()`.
 *
 * Each worker publishes its own rooms to the directory every
 * PUBLISH_EVERY_MS; the worker that gets the request reads every worker's
 * from it (cached for CACHE_MS, so a burst costs one directory read). Without
 * a directory (one process) the listing is this process's rooms.
 *
 * Answers: 200 JSON `{"rooms":[...],"total":N}` (sorted by players, most
 * first, then id; `total` counts the matches before `limit`); 400 plain text
 * for an unknown parameter or a bad value; 405 for another method; 429 with
 * Retry-After over the per-address rate; 503 when the directory does not
 * answer. Each counted in `tickwire_room_list_requests_total{outcome}`.
 */
import { PUBLISH_EVERY_MS, type ListedRoom, type RoomDirectory, type RoomSummary } from '../directory/directory.js'
import type { Logger } from '../log.js'
import { RoomListOutcome, type Stats } from '../metrics/stats.js'
import type { RoomMeta } from '../sim/game.js'
import type { Room, Rooms } from '../sim/room.js'
import { budgetKey, clientAddress, parseTrustedProxies } from './addresses.js'
import { endBody } from './handshake.js'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js'

/** What a game's meta() may return (see GameRoom.meta). */
export const META_LIMITS = { keys: 16, bytes: 512 } as const
/** `?limit=`: 1..MAX, default DEFAULT. */
export const LIST_LIMIT = { default: 100, max: 500 } as const
/** Per-address token bucket of GET /rooms: sustained requests per second, and the burst above it. */
export const LIST_RATE = { perSecond: 5, burst: 10 } as const
/** A listing read from the directory is reused this long (ms). */
const CACHE_MS = 1000
/** Addresses tracked by the rate limiter at most (a flood of addresses cannot grow it without bound). */
const MAX_BUCKETS = 10_000

/** `v` as room metadata, or a reason it is not one. */
export function checkMeta(v: unknown): RoomMeta | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a plain object'
  const keys = Object.keys(v)
  if (keys.length > META_LIMITS.keys) return `${keys.length} keys (at most ${META_LIMITS.keys})`
  // No prototype: a game's `__proto__` key stays a key (a plain object would take it as its prototype and list {}).
  const out = Object.create(null) as Record<string, string | number | boolean>
  for (const k of keys) {
    const x = (v as Record<string, unknown>)[k]
    if (typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x))) out[k] = x
    else return `key ${JSON.stringify(k)}: ${typeof x === 'number' ? String(x) : typeof x} (expected a string, a finite number or a boolean)`
  }
  const bytes = Buffer.byteLength(JSON.stringify(out))
  if (bytes > META_LIMITS.bytes) return `${bytes} bytes as JSON (at most ${META_LIMITS.bytes})`
  return out
}

/** The parsed query of GET /rooms, or a 400 reason. */
export function parseListQuery(query: string): { limit: number; quickPlay: boolean | null } | string {
  let limit: number = LIST_LIMIT.default
  let quickPlay: boolean | null = null
  for (const [k, v] of new URLSearchParams(query)) {
    if (k === 'limit') {
      if (!/^\d{1,4}$/.test(v) || Number(v) < 1 || Number(v) > LIST_LIMIT.max) return `limit must be an integer in 1..${LIST_LIMIT.max}, got ${JSON.stringify(v.slice(0, 20))}`
      limit = Number(v)
    } else if (k === 'quickplay') {
      if (v !== '0' && v !== '1') return `quickplay must be 0 or 1, got ${JSON.stringify(v.slice(0, 20))}`
      quickPlay = v === '1'
    } else return `unknown parameter ${JSON.stringify(k.slice(0, 40))} (expected limit, quickplay)`
  }
  return { limit, quickPlay }
}

/** Most players first, then id: a stable order for pages and tests. */
function byPlayers(a: ListedRoom, b: ListedRoom): number {
  return b.players - a.players || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

export interface RoomListDeps {
  readonly stats: Stats
  readonly log: Logger
  /** Absent: one process, the listing is its own rooms. */
  readonly directory?: RoomDirectory | undefined
  /** `--trusted-proxies`: behind a balancer the rate limit is per client (X-Forwarded-For), not per balancer. */
  readonly trustedProxies?: string
}

/** Publishes this process's rooms and serves GET /rooms. */
export class RoomList {
  readonly #rooms: Rooms
  readonly #deps: RoomListDeps
  readonly #timer: NodeJS.Timeout
  /** Rooms whose bad meta was logged (once each). */
  readonly #badMeta = new WeakSet<Room>()
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  #cache: { at: number; rooms: Promise<readonly ListedRoom[]> } | null = null
  readonly #trusted: ReadonlySet<string>

  constructor(app: TemplatedApp, rooms: Rooms, deps: RoomListDeps) {
    this.#rooms = rooms
    this.#deps = deps
    this.#trusted = parseTrustedProxies(deps.trustedProxies ?? '')
    this.#timer = setInterval(() => this.#publish(), PUBLISH_EVERY_MS)
    this.#timer.unref()
    app.get('/rooms', (res, req) => this.#handle(res, req, false))
    app.head('/rooms', (res, req) => this.#handle(res, req, true))
    app.any('/rooms', (res) => {
      this.#deps.stats.roomList[RoomListOutcome.METHOD]++
      res.writeStatus('405 Method Not Allowed').writeHeader('allow', 'GET, HEAD').writeHeader('content-type', 'text/plain').end('use GET\n')
    })
  }

  /** Stops publishing (shutdown). */
  stop(): void {
    clearInterval(this.#timer)
  }

  /** This process's rooms now, with validated meta. */
  summaries(): RoomSummary[] {
    const out: RoomSummary[] = []
    for (const room of this.#rooms.list) {
      if (room.failed) continue
      out.push({ id: room.id, quickPlay: room.quickPlay, players: room.seats.length, capacity: room.maxPlayers, meta: this.#meta(room) })
    }
    return out
  }

  #meta(room: Room): RoomMeta {
    if (!room.rules.meta || this.#badMeta.has(room)) return {}
    let why: string
    try {
      const m = checkMeta(room.rules.meta())
      if (typeof m !== 'string') return m
      why = m
    } catch (err) {
      why = `threw ${err instanceof Error ? err.message : String(err)}`
    }
    this.#badMeta.add(room)
    this.#deps.stats.badRoomMeta++
    this.#deps.log.warn('room meta() is not valid room metadata; listed as {}', { room: room.id, why })
    return {}
  }

  #publish(): void {
    try {
      this.#deps.directory?.publish(this.summaries())
    } catch (err) {
      this.#deps.log.error('publishing the room list failed', { error: (err as Error).message })
    }
  }

  #listing(): Promise<readonly ListedRoom[]> {
    const dir = this.#deps.directory
    if (!dir) {
      const rooms = this.summaries().map((r) => ({ ...r, worker: '' }))
      return Promise.resolve(rooms)
    }
    const now = performance.now()
    if (!this.#cache || now - this.#cache.at > CACHE_MS) {
      const rooms = dir.listRooms()
      this.#cache = { at: now, rooms }
      rooms.catch(() => {
        if (this.#cache?.rooms === rooms) this.#cache = null // a failure is not cached
      })
    }
    return this.#cache.rooms
  }

  /** Takes a token of `address`'s bucket; false when it is empty. */
  #allow(address: string, now: number): boolean {
    let b = this.#buckets.get(address)
    if (!b) {
      if (this.#buckets.size >= MAX_BUCKETS) {
        for (const [k, x] of this.#buckets) if (now - x.at > (LIST_RATE.burst / LIST_RATE.perSecond) * 1000) this.#buckets.delete(k)
        if (this.#buckets.size >= MAX_BUCKETS) return false
      }
      b = { tokens: LIST_RATE.burst, at: now }
      this.#buckets.set(address, b)
    }
    b.tokens = Math.min(LIST_RATE.burst, b.tokens + ((now - b.at) / 1000) * LIST_RATE.perSecond)
    b.at = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  #handle(res: HttpResponse, req: HttpRequest, head: boolean): void {
    const { stats } = this.#deps
    const query = req.getQuery() ?? ''
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString()
    let forwarded = ''
    if (this.#trusted.size > 0) {
      req.forEach((k, v) => {
        if (k === 'x-forwarded-for') forwarded = forwarded === '' ? v : `${forwarded},${v}`
      })
    }
    if (!this.#allow(budgetKey(clientAddress(peer, forwarded, this.#trusted)), performance.now())) {
      stats.roomList[RoomListOutcome.RATE_LIMITED]++
      endBody(res.writeStatus('429 Too Many Requests').writeHeader('retry-after', '1').writeHeader('content-type', 'text/plain'), 'too many room list requests from this address\n', head)
      return
    }
    const q = parseListQuery(query)
    if (typeof q === 'string') {
      stats.roomList[RoomListOutcome.BAD_QUERY]++
      endBody(res.writeStatus('400 Bad Request').writeHeader('content-type', 'text/plain'), `${q}\n`, head)
      return
    }
    let aborted = false
    res.onAborted(() => (aborted = true))
    this.#listing().then(
      (all) => {
        if (aborted) return
        const rooms = (q.quickPlay === null ? [...all] : all.filter((r) => r.quickPlay === q.quickPlay)).sort(byPlayers)
        const body = JSON.stringify({ rooms: rooms.slice(0, q.limit), total: rooms.length })
        stats.roomList[RoomListOutcome.OK]++
        res.cork(() => {
          endBody(res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-cache'), body, head)
        })
      },
      (err: Error) => {
        if (aborted) return
        stats.roomList[RoomListOutcome.UNAVAILABLE]++
        this.#deps.log.debug('room list: directory unavailable', { error: err.message })
        res.cork(() => endBody(res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain'), 'room directory unavailable\n', head))
      },
    )
  }
}
