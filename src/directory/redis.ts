/**
 * The room directory on Redis (see directory.ts), shared by every worker of
 * every machine (`--redis-url`). One `RedisDirectory` per worker process.
 *
 * Keys (`P` = `keyPrefix`, default `tickwire:`):
 * - `P node:<name>`: the worker's node record, JSON `{incarnation, host, port}`,
 *   `PX nodeTtlMs`, rewritten every nodeTtlMs/3. `incarnation` is random per
 *   process start: a restarted worker with the same name is a new owner.
 * - `P room:<id>`: the room's lease, `<name>|<incarnation>|<epoch>`. A claim
 *   (a `locate` with `create`) lives `claimTtlMs` unless opened; an opened
 *   room's lease lives `leaseTtlMs` and is renewed with the node record.
 * - `P rooms:<name>`: the worker's rooms for `GET /rooms`, JSON
 *   `[RoomSummary...]`, `PX LISTING_STALE_MS`, rewritten on every publish
 *   (about once a second): a dead worker's list expires on its own.
 * - `P epoch`: the fencing counter (`INCR`); every new lease, a takeover
 *   included, carries a higher epoch than any before it. A Redis that
 *   restarted empty restarts it at 0: every heartbeat and registration
 *   raises it back above the highest epoch its worker has seen (which
 *   follows the counter within one heartbeat).
 *
 * An owner is alive while its node record exists with the lease's
 * incarnation; a lease of a dead owner is taken over by the next `locate`
 * with `create` (or a registration) of another worker. So a room whose
 * worker stopped is taken over at most `nodeTtlMs` after the worker's last
 * heartbeat, and a live worker is declared dead only if its heartbeats fail
 * for two thirds of `nodeTtlMs` (two periods in a row).
 *
 * Every change is one Lua script (atomic, one round trip); the scripts read
 * keys they compute from values (the owner's node record), so **Redis
 * Cluster is not supported**: one primary, Redis 6.2 or later (`SET ... GET`).
 * With Sentinel, point `url` at an address that follows the primary (a proxy
 * or a VIP): this client connects to one URL and reconnects on its own; a
 * failover that loses keys is repaired as a restart is (below).
 *
 * Redis down or slow never blocks the caller: commands fail at once while
 * disconnected (`disableOfflineQueue`), `locate` rejects
 * `DirectoryUnavailable` after `timeoutMs`, `opened`/`closed` never throw.
 * When the connection is back the worker re-registers its node record and
 * every room it owns (a Redis that restarted empty gets them all back); the
 * renewal does the same for a lease that vanished, so it heals without a
 * reconnect too. A heartbeat unanswered for max(nodeTtlMs, timeoutMs) (a
 * hung Redis, a half-open connection) replaces the connection. A room found
 * held by another live worker is reported through `onLost`.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { redactUrl } from '../config.js'
import type { Logger } from '../log.js'
import { DirectoryOp, DirectoryStats, DirectoryUnavailable, LISTING_STALE_MS, MAX_PUBLISHED_ROOMS, type ListedRoom, type LocateResult, type RoomDirectory, type RoomSummary, type WorkerAddress } from './directory.js'

export interface RedisDirectoryOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS). */
  readonly url: string
  /** This worker: `name` unique cluster-wide (`<node-id>-<slot>`), its direct host and port. */
  readonly self: WorkerAddress
  readonly log: Logger
  /** A worker whose node record is not renewed for this long is dead, ms (renewed every third). Default 3000. */
  readonly nodeTtlMs?: number
  /** How long `locate` (and `connect`) wait for Redis, ms. Default 1000. */
  readonly timeoutMs?: number
  /** Prefix of every key. Default `tickwire:`. */
  readonly keyPrefix?: string
  /** Pending claims made through this worker per client address; 0: no cap. Default 0. */
  readonly maxClaimsPerAddress?: number
  /** Pending claims made through this worker in all; 0: no cap. Default 0. */
  readonly maxPendingClaims?: number
  /** Lifetime of an opened room's lease, renewed every nodeTtlMs/3, ms. Default max(3 x nodeTtlMs, 10 s). */
  readonly leaseTtlMs?: number
  /** Lifetime of a claim that is not opened, ms. Default 10 s. */
  readonly claimTtlMs?: number
  /** Counters to fill (the metrics layer reads them); default: a new DirectoryStats. */
  readonly stats?: DirectoryStats
}

/** The default of each option, in ms where it is a time. */
export const REDIS_DIRECTORY_DEFAULTS = {
  nodeTtlMs: 3000,
  timeoutMs: 1000,
  keyPrefix: 'tickwire:',
  maxClaimsPerAddress: 0,
  maxPendingClaims: 0,
  /** Floor of the default lease lifetime (10 s); the default is max(3 x nodeTtlMs, this). */
  leaseTtlFloorMs: 10_000,
  claimTtlMs: 10_000,
} as const

/** Reconnect after 50 ms, doubling up to 1 s. */
const RECONNECT_FIRST_MS = 50
const RECONNECT_MAX_MS = 1000

/**
 * `alive(name, inc)`: whether the node record of `name` names incarnation
 * `inc`. `parse(v)`: a lease's name and incarnation (nil for a malformed one).
 * Shared by the scripts below; `ARGV[1]` is always the key prefix.
 */
const LUA_COMMON = `
local function parse(v)
  return string.match(v, '^([^|]+)|([^|]+)|%d+$')
end
local function alive(name, inc)
  local node = redis.call('GET', ARGV[1] .. 'node:' .. name)
  if not node then return false end
  local ok, rec = pcall(cjson.decode, node)
  return ok and type(rec) == 'table' and rec.incarnation == inc
end
local function mint(epochKey, floor)
  if tonumber(floor) > (tonumber(redis.call('GET', epochKey)) or 0) then redis.call('SET', epochKey, floor) end
  return redis.call('INCR', epochKey)
end
`

/**
 * LOCATE. KEYS: room, epoch. ARGV: prefix, self name, self incarnation,
 * create ('1'/'0'), may claim ('1'/'0': the caller's budget allows a new
 * claim), claim PX, epoch floor.
 * Returns {'local'} (the lease is ours), {'remote', name, nodeJson} (a live
 * owner), {'none'} (no live owner, no create), {'limit'} (no live owner,
 * create, no budget), {'claimed', epoch} or {'takeover', epoch} (claimed for
 * us, replacing nothing or a dead owner's lease).
 */
const LOCATE = `${LUA_COMMON}
local v = redis.call('GET', KEYS[1])
local dead = false
if v then
  local name, inc = parse(v)
  if name == ARGV[2] and inc == ARGV[3] then return {'local'} end
  if name and alive(name, inc) then return {'remote', name, redis.call('GET', ARGV[1] .. 'node:' .. name)} end
  dead = true
end
if ARGV[4] ~= '1' then return {'none'} end
if ARGV[5] ~= '1' then return {'limit'} end
local epoch = mint(KEYS[2], ARGV[7])
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. epoch, 'PX', ARGV[6])
if dead then return {'takeover', epoch} end
return {'claimed', epoch}
`

/**
 * SYNC: register, renew or re-register rooms this worker runs (and, with a
 * node record, write it first). KEYS: epoch, own node record, room...
 * ARGV: prefix, self name, self incarnation, lease PX, epoch floor, node
 * JSON ('' = leave the node record alone), node PX.
 * Per room, a pair {status, epoch}: 'kept' (ours: PEXPIRE), 'taken' (no
 * lease: a new one, a new epoch), 'takeover' (a dead owner's lease: replaced,
 * a new epoch), 'lost' (a live other owner holds it: untouched, epoch 0).
 */
const SYNC = `${LUA_COMMON}
if ARGV[6] ~= '' then redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7]) end
local mine = ARGV[2] .. '|' .. ARGV[3] .. '|'
local out = {}
for i = 3, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v and string.sub(v, 1, #mine) == mine then
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
    out[#out + 1] = 'kept'
    out[#out + 1] = tonumber(string.sub(v, #mine + 1)) or 0
  else
    local name, inc
    if v then name, inc = parse(v) end
    if name and alive(name, inc) then
      out[#out + 1] = 'lost'
      out[#out + 1] = 0
    else
      local epoch = mint(KEYS[1], ARGV[5])
      redis.call('SET', KEYS[i], mine .. epoch, 'PX', ARGV[4])
      out[#out + 1] = v and 'takeover' or 'taken'
      out[#out + 1] = epoch
    end
  end
end
return out
`

/**
 * HEARTBEAT. KEYS: own node record, epoch. ARGV: prefix, node JSON, node PX,
 * epoch floor. Writes the node record and raises the epoch counter to the
 * floor (an empty Redis restarts it at 0). Returns {previous node JSON or '',
 * the counter}: every worker's floor follows the counter within one beat.
 */
const HEARTBEAT = `
local old = redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'GET')
local e = tonumber(redis.call('GET', KEYS[2])) or 0
local floor = tonumber(ARGV[4])
if floor > e then
  redis.call('SET', KEYS[2], floor)
  e = floor
end
return {old or '', e}
`

/**
 * RELEASE: compare-and-delete. KEYS: own node record, room... ARGV: prefix,
 * self name, self incarnation, '1' to delete the node record too (if it is
 * this incarnation's). Deletes each room whose lease is ours; returns how many.
 */
const RELEASE = `${LUA_COMMON}
local mine = ARGV[2] .. '|' .. ARGV[3] .. '|'
local n = 0
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v and string.sub(v, 1, #mine) == mine then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
if ARGV[4] == '1' and alive(ARGV[2], ARGV[3]) then redis.call('DEL', KEYS[1]) end
return n
`

/** A Lua script with its SHA1: sent as EVALSHA, as EVAL when Redis does not know it (a restart forgets scripts). */
interface Script {
  readonly lua: string
  readonly sha: string
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

const SCRIPTS = { locate: script(LOCATE), sync: script(SYNC), heartbeat: script(HEARTBEAT), release: script(RELEASE) } as const
type ScriptName = keyof typeof SCRIPTS

/** A node-redis client as the directory configures it. */
function newClient(url: string, connectTimeoutMs: number, commandTimeoutMs: number) {
  return createClient({
    url,
    // Fail at once while disconnected, instead of queueing behind a reconnect.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: connectTimeoutMs,
      reconnectStrategy: (retries: number) => Math.min(RECONNECT_FIRST_MS * 2 ** retries, RECONNECT_MAX_MS),
    },
    // node-redis times out only commands not yet written; a written one waits for its reply (the directory's own timers bound that).
    commandOptions: { timeout: commandTimeoutMs },
  })
}
type Client = ReturnType<typeof newClient>

/** Who holds a pending claim made through this worker, until when (ms, Date.now). */
interface Claim {
  readonly address: string
  readonly until: number
}

/** `url` as a Redis URL, or an Error that says what is wrong with it (without its password). */
function checkUrl(url: string): Error | null {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return new Error(`room directory: ${JSON.stringify(redactUrl(url))} is not a URL; expected redis://host:port or rediss://host:port`)
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return new Error(`room directory: ${JSON.stringify(redactUrl(url))}: expected redis:// or rediss://, got ${u.protocol}//`)
  if (u.hostname === '') return new Error(`room directory: ${JSON.stringify(redactUrl(url))} names no host`)
  if (u.pathname.length > 1 && !/^\/\d+$/.test(u.pathname)) return new Error(`room directory: ${JSON.stringify(redactUrl(url))}: the path must be a database number`)
  return null
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`room directory: ${name} must be a positive number of ms, got ${v}`)
  return v
}

function count(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) throw new Error(`room directory: ${name} must be an integer >= 0, got ${v}`)
  return v
}

/**
 * A worker's handle on the Redis room directory.
 *
 * @example
 *   const dir = await RedisDirectory.connect({ url: 'redis://10.0.0.9:6379', self: { name: 'm1-0', host: '10.0.0.1', port: 9101 }, log })
 *   dir.onLost = (id) => closeRoomPlayers(id)
 *   const where = await dir.locate('friends', true, clientAddress) // {local: true}: create it, then dir.opened('friends')
 *   await dir.close(1000) // drain: releases every lease and the node record
 */
export class RedisDirectory implements RoomDirectory {
  readonly self: WorkerAddress
  readonly stats: DirectoryStats
  onLost: (id: string) => void = () => {}
  /** Random per process start: leases of an earlier process with our name are not ours. */
  readonly incarnation = randomBytes(8).toString('hex')

  /** Replaced when the connection hangs (see #beat); replies of the old one are lost, counted as errors. */
  #client: Client
  readonly #url: string
  readonly #log: Logger
  readonly #prefix: string
  readonly #nodeTtlMs: number
  readonly #timeoutMs: number
  /** How long heartbeats, renewals, registrations and releases may take before they count as failed. */
  readonly #bgTimeoutMs: number
  readonly #leaseTtlMs: number
  readonly #claimTtlMs: number
  readonly #maxPerAddress: number
  readonly #maxPending: number
  readonly #nodeKey: string
  readonly #epochKey: string
  readonly #nodeJson: string
  /** Rooms opened here and not closed or lost. */
  readonly #owned = new Set<string>()
  /** Pending claims made through this worker (tracked only when a claim cap is set). */
  readonly #claims = new Map<string, Claim>()
  /** Rooms closed here whose release failed: retried every beat (compare-and-delete, so harmless if someone else holds them). */
  readonly #toRelease = new Set<string>()
  /** Pending claims (and claims in flight) per address. */
  readonly #byAddress = new Map<string, number>()
  #pending = 0
  /** The highest epoch this worker has seen: a floor for new ones (Redis may have restarted empty). */
  #epoch = 0
  #timer: NodeJS.Timeout | null = null
  /** When the heartbeat in flight was sent (performance.now()); 0: none in flight. */
  #beatInFlight = 0
  #renewing = false
  /** When the last heartbeat that Redis answered was sent (performance.now()). */
  #lastBeat = -Infinity
  #lastNameClash = -Infinity
  #closed = false
  /** Whether the last operation reached Redis; false: an outage was logged. */
  #reachable = true
  #downSince = 0

  private constructor(opts: RedisDirectoryOptions) {
    const d = REDIS_DIRECTORY_DEFAULTS
    this.self = opts.self
    this.stats = opts.stats ?? new DirectoryStats()
    this.#log = opts.log
    this.#prefix = opts.keyPrefix ?? d.keyPrefix
    this.#nodeTtlMs = positive('nodeTtlMs', opts.nodeTtlMs ?? d.nodeTtlMs)
    this.#timeoutMs = positive('timeoutMs', opts.timeoutMs ?? d.timeoutMs)
    this.#leaseTtlMs = positive('leaseTtlMs', opts.leaseTtlMs ?? Math.max(3 * this.#nodeTtlMs, d.leaseTtlFloorMs))
    this.#claimTtlMs = positive('claimTtlMs', opts.claimTtlMs ?? d.claimTtlMs)
    this.#maxPerAddress = count('maxClaimsPerAddress', opts.maxClaimsPerAddress ?? d.maxClaimsPerAddress)
    this.#maxPending = count('maxPendingClaims', opts.maxPendingClaims ?? d.maxPendingClaims)
    if (this.#leaseTtlMs < this.#nodeTtlMs) throw new Error(`room directory: leaseTtlMs (${this.#leaseTtlMs}) must be at least nodeTtlMs (${this.#nodeTtlMs})`)
    if (!/^[^|\s]{1,200}$/.test(this.self.name)) throw new Error(`room directory: worker name ${JSON.stringify(this.self.name)} must be 1-200 characters without '|' or spaces`)
    this.#nodeKey = `${this.#prefix}node:${this.self.name}`
    this.#epochKey = `${this.#prefix}epoch`
    this.#nodeJson = JSON.stringify({ incarnation: this.incarnation, host: this.self.host, port: this.self.port })
    this.#bgTimeoutMs = Math.max(this.#nodeTtlMs, this.#timeoutMs)
    this.#url = opts.url
    this.#client = this.#newClient()
  }

  #newClient(): Client {
    const c = newClient(this.#url, Math.max(this.#timeoutMs, 1000), this.#bgTimeoutMs)
    // node-redis emits 'error' for every failed (re)connect: once per outage is logged. A replaced client's events are ignored.
    c.on('error', (err: Error) => {
      if (c === this.#client) this.#down(err)
    })
    c.on('ready', () => {
      if (c === this.#client) this.#ready()
    })
    return c
  }

  /** Starts `c` connecting (it keeps retrying); resolves true once it is ready, false if it was closed first. */
  #connect(c: Client): Promise<boolean> {
    return c.connect().then(
      () => true,
      (err: Error) => {
        // A client closed or replaced before it connected ends here; log anything else.
        if (!this.#closed && c === this.#client) this.#log.error('room directory: connection abandoned', { error: err.message })
        return false
      },
    )
  }

  /**
   * Connects (waiting up to `timeoutMs`) and starts heartbeats. If Redis does
   * not answer in time it logs a warning and resolves anyway: the worker
   * serves its own rooms, named joins that need the directory get 503 until
   * Redis answers (it keeps reconnecting). Rejects only on invalid options
   * (an unusable URL, say).
   */
  static async connect(opts: RedisDirectoryOptions): Promise<RedisDirectory> {
    const bad = checkUrl(opts.url)
    if (bad) throw bad
    const dir = new RedisDirectory(opts)
    await dir.#start(opts.url)
    return dir
  }

  /** Rooms opened here and still ours, as far as this worker knows. */
  get rooms(): ReadonlySet<string> {
    return this.#owned
  }

  /** Pending claims made through this worker by `address` (counted only when a claim cap is set). */
  pendingOf(address: string): number {
    return this.#byAddress.get(address) ?? 0
  }

  async #start(url: string): Promise<void> {
    const first = this.#connect(this.#client)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), this.#timeoutMs)))
    const ok = await Promise.race([first, late])
    clearTimeout(timer)
    const period = Math.max(1, Math.floor(this.#nodeTtlMs / 3))
    this.#timer = setInterval(() => this.#beat(), period)
    this.#timer.unref()
    if (!ok) this.#down(new Error(`no answer from ${redactUrl(url)} within ${this.#timeoutMs} ms; serving local rooms only`))
    else this.#log.info('room directory connected', { url: redactUrl(url), workerName: this.self.name, incarnation: this.incarnation })
  }

  locate(id: string, wantCreate: boolean, address: string, canHost = true): Promise<LocateResult> {
    if (this.#closed) return Promise.reject(new DirectoryUnavailable('room directory handle closed'))
    // Rooms are placed on the asker: one that could not create the room claims nothing (a claim it must refuse would
    // send every other worker's players of that id to it until the claim lapsed).
    const create = wantCreate && canHost
    // A new claim needs budget; asking for a room already claimed through us costs nothing.
    const charged = create && this.#capped() && !this.#claims.has(id)
    let mayClaim = true
    if (charged) {
      if (this.#overBudget(address)) mayClaim = false
      else this.#charge(address, 1)
    }
    const run = this.#eval('locate', [this.#roomKey(id), this.#epochKey], [this.#prefix, this.self.name, this.incarnation, create ? '1' : '0', mayClaim ? '1' : '0', String(this.#claimTtlMs), String(this.#epoch)], this.#timeoutMs)
    if (charged && mayClaim) {
      // Settled by Redis's answer, whenever it comes (a claim made after our timeout still holds its budget until it lapses).
      run.then(
        (r) => {
          const kind = Array.isArray(r) ? r[0] : null
          if (kind === 'claimed' || kind === 'takeover') this.#claims.set(id, { address, until: Date.now() + this.#claimTtlMs })
          else this.#charge(address, -1)
        },
        () => this.#charge(address, -1),
      )
    }
    return this.#op(DirectoryOp.LOCATE, run, this.#timeoutMs).then(
      (r) => this.#placement(id, r),
      (err: Error) => {
        throw err instanceof DirectoryUnavailable ? err : new DirectoryUnavailable(`room directory: ${err.message}`, { cause: err })
      },
    )
  }

  opened(id: string): void {
    if (this.#closed) return
    if (this.#claims.has(id)) this.#dropClaim(id)
    this.#toRelease.delete(id)
    this.#owned.add(id)
    // If this fails (Redis down), the next renewal or the reconnect registers it.
    void this.#sync([id], DirectoryOp.REGISTER, false)
  }

  closed(id: string): void {
    if (this.#closed) return
    const claimed = this.#claims.has(id)
    if (claimed) this.#dropClaim(id)
    if (!this.#owned.delete(id) && !claimed) return // not ours (lost, or never here)
    this.#release([id])
  }

  publish(rooms: readonly RoomSummary[]): void {
    if (this.#closed) return
    const json = JSON.stringify(rooms.slice(0, MAX_PUBLISHED_ROOMS))
    // Fire and forget: a failed publish is retried by the next one, a second later.
    this.#send(['SET', `${this.#prefix}rooms:${this.self.name}`, json, 'PX', String(LISTING_STALE_MS)], this.#bgTimeoutMs).catch(() => {})
  }

  async listRooms(): Promise<readonly ListedRoom[]> {
    if (this.#closed) throw new DirectoryUnavailable('room directory handle closed')
    const work = (async () => {
      const keys: string[] = []
      let cursor = '0'
      // SCAN, bounded: at most 100 rounds (a few thousand workers).
      for (let i = 0; i < 100; i++) {
        const r = (await this.#send(['SCAN', cursor, 'MATCH', `${this.#prefix}rooms:*`, 'COUNT', '500'], this.#timeoutMs)) as [string, string[]]
        cursor = String(r[0])
        keys.push(...r[1])
        if (cursor === '0') break
      }
      if (keys.length === 0) return []
      const values = (await this.#send(['MGET', ...keys], this.#timeoutMs)) as (string | null)[]
      const out: ListedRoom[] = []
      const cut = this.#prefix.length + 'rooms:'.length
      values.forEach((v, i) => {
        if (v === null) return
        const worker = (keys[i] as string).slice(cut)
        try {
          const rooms = JSON.parse(v) as unknown
          if (Array.isArray(rooms)) for (const r of rooms as RoomSummary[]) out.push({ ...r, worker })
        } catch {
          // a malformed list (another version?) is left out
        }
      })
      return out
    })()
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new DirectoryUnavailable(`room directory did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)))])
    } catch (err) {
      throw err instanceof DirectoryUnavailable ? err : new DirectoryUnavailable(`room directory: ${(err as Error).message}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }

  /** Compare-and-delete of `ids`; what fails is retried by the next beat (else a live owner's stale lease would outlive the room). */
  #release(ids: string[]): void {
    this.#op(DirectoryOp.RELEASE, this.#eval('release', [this.#nodeKey, ...ids.map((id) => this.#roomKey(id))], [this.#prefix, this.self.name, this.incarnation, '0']), this.#bgTimeoutMs).then(
      () => {
        for (const id of ids) this.#toRelease.delete(id)
      },
      () => {
        for (const id of ids) if (!this.#closed && !this.#owned.has(id)) this.#toRelease.add(id)
      },
    )
  }

  async close(timeoutMs = 1000): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    const rooms = [...new Set([...this.#owned, ...this.#claims.keys(), ...this.#toRelease])]
    // Our listing goes with us (not left to expire): best effort, with the release below.
    if (this.#client.isReady) this.#send(['DEL', `${this.#prefix}rooms:${this.self.name}`], timeoutMs).catch(() => {})
    this.#owned.clear()
    this.#toRelease.clear()
    this.#claims.clear()
    this.#byAddress.clear()
    this.#pending = 0
    let timer: NodeJS.Timeout | undefined
    const work = (async () => {
      if (this.#client.isReady) {
        await this.#op(DirectoryOp.RELEASE, this.#eval('release', [this.#nodeKey, ...rooms.map((id) => this.#roomKey(id))], [this.#prefix, this.self.name, this.incarnation, '1'], timeoutMs), timeoutMs).catch(() => {})
        await this.#client.close()
      }
    })().catch(() => {})
    await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))])
    clearTimeout(timer)
    this.#client.destroy() // a no-op after close(); otherwise ends reconnecting and whatever is still waiting
    this.#log.info('room directory closed', { released: rooms.length })
  }

  /**
   * Stops as kill -9 would: no more heartbeats or renewals, the connection
   * dropped, nothing released (leases lapse, node record expires after
   * nodeTtlMs). For tests, and for a worker that must not touch the directory
   * again; the handle is closed afterwards.
   */
  abandon(): void {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    this.#client.destroy()
  }

  /** Every nodeTtl/3: the node record, then every owned room's lease; pending claims that lapsed give their budget back. */
  #beat(): void {
    if (this.#closed) return
    this.#sweep(Date.now())
    const now = performance.now()
    if (this.#beatInFlight !== 0 && now - this.#beatInFlight > this.#bgTimeoutMs) {
      // Written and never answered: a hung Redis or a half-open connection (its host gone without a reset), which TCP
      // would take minutes to notice. A new connection either works or fails fast; the old one's commands fail.
      this.#recycle(now - this.#beatInFlight)
    }
    // One of each in flight: a stalled Redis must not pile them up.
    if (this.#beatInFlight === 0) {
      const sent = (this.#beatInFlight = now)
      const run = this.#eval('heartbeat', [this.#nodeKey, this.#epochKey], [this.#prefix, this.#nodeJson, String(this.#nodeTtlMs), String(this.#epoch)])
      run.then(
        () => this.#beatDone(sent),
        () => this.#beatDone(sent),
      )
      this.#op(DirectoryOp.HEARTBEAT, run, this.#bgTimeoutMs).then(
        (r) => this.#heartbeat(r, sent),
        () => {},
      )
    }
    if (!this.#renewing && this.#owned.size > 0) {
      this.#renewing = true
      void this.#sync([...this.#owned], DirectoryOp.RENEW, false, () => (this.#renewing = false))
    }
    if (this.#toRelease.size > 0) {
      // Taken out while in flight (a failure puts them back), so a stalled Redis does not get them twice.
      const ids = [...this.#toRelease]
      this.#toRelease.clear()
      this.#release(ids)
    }
  }

  #beatDone(sent: number): void {
    if (this.#beatInFlight === sent) this.#beatInFlight = 0
  }

  /** Replaces a connection that stopped answering. */
  #recycle(silentMs: number): void {
    this.#down(new Error(`no answer from Redis for ${Math.round(silentMs)} ms; reconnecting`))
    this.#log.debug('room directory: replacing a connection that stopped answering', { silentMs: Math.round(silentMs) })
    const old = this.#client
    this.#client = this.#newClient()
    this.#beatInFlight = 0
    old.destroy() // rejects everything it still waits for
    void this.#connect(this.#client)
  }

  /** A heartbeat's answer: the epoch counter; a node record of another incarnation where ours should be is another process using our name. */
  #heartbeat(r: unknown, sent: number): void {
    if (!Array.isArray(r)) return
    this.#seen(Number(r[1]))
    const old = typeof r[0] === 'string' && r[0] !== '' ? parseNode(r[0]) : null
    // Ours should still be there if the last heartbeat landed less than nodeTtl before this one.
    if (old && old.incarnation !== this.incarnation && sent - this.#lastBeat < this.#nodeTtlMs * 0.9 && sent - this.#lastNameClash > 60_000) {
      this.#lastNameClash = sent
      this.#log.error('room directory: another process heartbeats with this worker name (two machines with one --node-id?); rooms will move between them', { workerName: this.self.name })
    }
    this.#lastBeat = sent
  }

  /** The connection is (back) up: write the node record and every owned room again. */
  #ready(): void {
    if (this.#closed) return
    this.stats.up = true
    if (!this.#reachable) {
      this.#reachable = true
      this.#log.info('room directory reachable again; registering this worker and its rooms', { rooms: this.#owned.size, downMs: Math.round(performance.now() - this.#downSince) })
    }
    void this.#sync([...this.#owned], DirectoryOp.REGISTER, true)
  }

  /** Registers, renews or re-registers `ids` (and the node record): rooms another live worker holds are lost. Never rejects. */
  async #sync(ids: string[], op: DirectoryOp, withNode: boolean, settled?: () => void): Promise<void> {
    let reply: unknown
    try {
      const args = [this.#prefix, this.self.name, this.incarnation, String(this.#leaseTtlMs), String(this.#epoch), withNode ? this.#nodeJson : '', String(this.#nodeTtlMs)]
      const run = this.#eval('sync', [this.#epochKey, this.#nodeKey, ...ids.map((id) => this.#roomKey(id))], args)
      // `settled` when Redis answers (or the connection fails), not when our timer gives up: nothing piles up behind a hung one.
      if (settled) run.then(settled, settled)
      reply = await this.#op(op, run, this.#bgTimeoutMs)
    } catch {
      return // counted and logged by #op
    }
    if (!Array.isArray(reply) || reply.length !== ids.length * 2) {
      this.#log.error('room directory: unexpected reply to a registration', { op, rooms: ids.length })
      return
    }
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string
      const status = String(reply[2 * i])
      this.#seen(Number(reply[2 * i + 1]))
      if (status === 'lost') {
        if (!this.#owned.delete(id)) continue // closed meanwhile
        this.stats.lost++
        this.#log.warn('room directory: another worker holds this room now', { room: id, op })
        try {
          this.onLost(id)
        } catch (err) {
          this.#log.error('room directory: onLost threw', { room: id, error: (err as Error).message })
        }
      } else if (status === 'takeover') {
        this.stats.takeovers++
      }
    }
  }

  /** Maps a LOCATE reply to a placement. */
  #placement(id: string, r: unknown): LocateResult {
    if (!Array.isArray(r)) throw new DirectoryUnavailable(`room directory: unexpected reply for room ${JSON.stringify(id)}`)
    const kind = String(r[0])
    switch (kind) {
      case 'local':
        return { local: true }
      case 'claimed':
      case 'takeover':
        this.#seen(Number(r[1]))
        if (kind === 'takeover') this.stats.takeovers++
        return { local: true }
      case 'remote': {
        const rec = parseNode(String(r[2]))
        if (!rec) throw new DirectoryUnavailable(`room directory: malformed node record of ${String(r[1])}`)
        return { local: false, name: String(r[1]), host: rec.host, port: rec.port }
      }
      case 'none':
        return null
      case 'limit':
        return 'address_limit'
      default:
        throw new DirectoryUnavailable(`room directory: unexpected reply ${JSON.stringify(kind)}`)
    }
  }

  /** Counts, times and watches one operation; `timeoutMs` > 0: rejects DirectoryUnavailable when Redis takes longer. */
  #op<T>(op: DirectoryOp, run: Promise<T>, timeoutMs = 0): Promise<T> {
    const t0 = performance.now()
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              if (settled) return
              settled = true
              this.stats.ops[op].error++
              const err = new DirectoryUnavailable(`room directory did not answer within ${timeoutMs} ms`)
              this.#down(err)
              reject(err)
            }, timeoutMs)
          : undefined
      run.then(
        (v) => {
          clearTimeout(timer)
          if (settled) return
          settled = true
          this.stats.ops[op].ok++
          this.stats.observe(op, (performance.now() - t0) / 1000)
          this.#up()
          resolve(v)
        },
        (err: Error) => {
          clearTimeout(timer)
          if (settled) return
          settled = true
          this.stats.ops[op].error++
          this.#down(err)
          reject(err)
        },
      )
    })
  }

  /** Runs a script: EVALSHA, and EVAL when this Redis does not know it yet (a restart forgets scripts). */
  async #eval(name: ScriptName, keys: readonly string[], args: readonly string[], timeoutMs = 0): Promise<unknown> {
    const s = SCRIPTS[name]
    const tail = [String(keys.length), ...keys, ...args]
    try {
      return await this.#send(['EVALSHA', s.sha, ...tail], timeoutMs)
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err
    }
    return this.#send(['EVAL', s.lua, ...tail], timeoutMs)
  }

  #send(args: string[], timeoutMs = 0): Promise<unknown> {
    try {
      return this.#client.sendCommand(args, timeoutMs > 0 ? { timeout: timeoutMs } : undefined)
    } catch (err) {
      return Promise.reject(err as Error)
    }
  }

  #up(): void {
    this.stats.up = true
    if (this.#reachable) return
    this.#reachable = true
    this.#log.info('room directory reachable again', { downMs: Math.round(performance.now() - this.#downSince) })
  }

  #down(err: Error): void {
    this.stats.up = false
    if (this.#closed || !this.#reachable) return
    this.#reachable = false
    this.#downSince = performance.now()
    this.#log.warn('room directory unreachable; named joins get 503 until it answers', { error: err.message || err.name })
  }

  #seen(epoch: number): void {
    if (Number.isFinite(epoch) && epoch > this.#epoch) this.#epoch = epoch
  }

  #roomKey(id: string): string {
    return `${this.#prefix}room:${id}`
  }

  #capped(): boolean {
    return this.#maxPerAddress > 0 || this.#maxPending > 0
  }

  #full(address: string): boolean {
    return (this.#maxPending > 0 && this.#pending >= this.#maxPending) || (this.#maxPerAddress > 0 && address !== '' && this.pendingOf(address) >= this.#maxPerAddress)
  }

  #overBudget(address: string): boolean {
    if (!this.#full(address)) return false
    this.#sweep(Date.now()) // lapsed claims must not hold a budget until the next beat
    return this.#full(address)
  }

  #charge(address: string, n: number): void {
    this.#pending += n
    const left = this.pendingOf(address) + n
    if (left > 0) this.#byAddress.set(address, left)
    else this.#byAddress.delete(address)
  }

  #dropClaim(id: string): void {
    const c = this.#claims.get(id)
    if (!c) return
    this.#claims.delete(id)
    this.#charge(c.address, -1)
  }

  #sweep(now: number): void {
    for (const [id, c] of this.#claims) if (c.until < now) this.#dropClaim(id)
  }
}

/** A node record, or null when it is not one. */
function parseNode(json: string): { incarnation: string; host: string; port: number } | null {
  try {
    const v = JSON.parse(json) as { incarnation?: unknown; host?: unknown; port?: unknown }
    if (typeof v.incarnation !== 'string' || typeof v.host !== 'string' || typeof v.port !== 'number') return null
    return { incarnation: v.incarnation, host: v.host, port: v.port }
  } catch {
    return null
  }
}
