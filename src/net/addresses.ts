/**
 * Per-client-address budgets, so one address cannot exhaust what every player
 * shares: open connections, the upgrade rate, rooms it created, seats held for
 * it and rooms that only its held seats keep alive. Counts are per process
 * (each worker keeps its own book; the room directory caps claims in flight
 * across workers).
 *
 * The client address is the socket's peer, or the last `X-Forwarded-For`
 * entry when the peer is a configured trusted proxy. IPv6 addresses are
 * grouped by their /64: one host usually owns a whole /64.
 */
import { isIP } from 'node:net'

/** What a budget allows; 0 means no limit for every one but `upgradeBurstPerAddress`. */
export interface AddressLimits {
  readonly maxConnectionsPerAddress: number
  readonly upgradeRatePerAddress: number
  readonly upgradeBurstPerAddress: number
  readonly maxRoomsPerAddress: number
  readonly maxHeldPerAddress: number
  readonly maxIdleRoomsPerAddress: number
}

/** One address's counts. Lives while any count is non-zero or its upgrade bucket is refilling. */
export interface AddressEntry {
  readonly key: string
  /** Connections upgraded or being upgraded (an async directory lookup counts too). */
  connections: number
  /** Open rooms this address created. */
  rooms: number
  /** Seats held for a resume after this address's connection dropped. */
  held: number
  /** Of `held`: holds that were the only thing keeping their room alive when made. */
  idleHolds: number
  /** Upgrade token bucket. */
  tokens: number
  lastRefill: number
}

/** Why an upgrade was refused by the book. */
export type UpgradeLimit = 'connections' | 'upgrade_rate'

/** Entries kept at most; past it idle ones are swept first, then new addresses share one overflow entry. */
const MAX_ENTRIES = 200_000

export class AddressBook {
  readonly #limits: AddressLimits
  readonly #entries = new Map<string, AddressEntry>()
  /** Where addresses land when the table is full: they then share one budget (better than unbounded memory). */
  readonly #overflow: AddressEntry

  constructor(limits: AddressLimits) {
    this.#limits = limits
    this.#overflow = newEntry('overflow', limits.upgradeBurstPerAddress, 0)
  }

  get size(): number {
    return this.#entries.size
  }

  /** The entry of `key` (see `clientKey`), created on first use. */
  entry(key: string, now: number): AddressEntry {
    let e = this.#entries.get(key)
    if (e) return e
    if (this.#entries.size >= MAX_ENTRIES) {
      this.sweep(now)
      if (this.#entries.size >= MAX_ENTRIES) return this.#overflow
    }
    e = newEntry(key, this.#limits.upgradeBurstPerAddress, now)
    this.#entries.set(key, e)
    return e
  }

  /**
   * Admits one upgrade from `e`: takes a token from its bucket and counts the
   * connection. Returns the budget that refuses it instead (nothing counted then).
   */
  admit(e: AddressEntry, now: number): UpgradeLimit | null {
    const l = this.#limits
    if (l.maxConnectionsPerAddress > 0 && e.connections >= l.maxConnectionsPerAddress) return 'connections'
    if (l.upgradeRatePerAddress > 0) {
      e.tokens = Math.min(l.upgradeBurstPerAddress, e.tokens + ((now - e.lastRefill) / 1000) * l.upgradeRatePerAddress)
      e.lastRefill = now
      if (e.tokens < 1) return 'upgrade_rate'
      e.tokens -= 1
    }
    e.connections++
    return null
  }

  /** A connection counted by `admit` closed (or its upgrade was abandoned). */
  disconnected(e: AddressEntry, now: number): void {
    e.connections--
    this.#maybeForget(e, now)
  }

  /** Whether `e` may create another room. */
  mayCreateRoom(e: AddressEntry): boolean {
    return this.#limits.maxRoomsPerAddress === 0 || e.rooms < this.#limits.maxRoomsPerAddress
  }

  roomClosed(e: AddressEntry, now: number): void {
    e.rooms--
    this.#maybeForget(e, now)
  }

  /**
   * Whether a seat of `e` whose connection dropped may be held. `idle`: no other
   * player of its room is connected, so the hold alone would keep the room alive.
   */
  mayHold(e: AddressEntry, idle: boolean): 'held' | 'idle_rooms' | null {
    const l = this.#limits
    if (l.maxHeldPerAddress > 0 && e.held >= l.maxHeldPerAddress) return 'held'
    if (idle && l.maxIdleRoomsPerAddress > 0 && e.idleHolds >= l.maxIdleRoomsPerAddress) return 'idle_rooms'
    return null
  }

  /** A hold ended (resumed, expired or released). */
  holdEnded(e: AddressEntry, idle: boolean, now: number): void {
    e.held--
    if (idle) e.idleHolds--
    this.#maybeForget(e, now)
  }

  /** Drops entries with nothing counted whose bucket has refilled by `now`. */
  sweep(now: number): void {
    for (const e of this.#entries.values()) this.#maybeForget(e, now)
  }

  #maybeForget(e: AddressEntry, now: number): void {
    if (e.connections > 0 || e.rooms > 0 || e.held > 0 || e === this.#overflow) return
    const l = this.#limits
    // A forgotten entry comes back with a full bucket: keep it until it would have refilled anyway.
    const refilled = l.upgradeRatePerAddress === 0 || e.tokens + ((now - e.lastRefill) / 1000) * l.upgradeRatePerAddress >= l.upgradeBurstPerAddress
    if (refilled) this.#entries.delete(e.key)
  }
}

function newEntry(key: string, tokens: number, now: number): AddressEntry {
  return { key, connections: 0, rooms: 0, held: 0, idleHolds: 0, tokens, lastRefill: now }
}

/**
 * Parses `--trusted-proxies` (comma-separated IP addresses). Throws a message
 * naming the bad entry.
 */
export function parseTrustedProxies(list: string): ReadonlySet<string> {
  const out = new Set<string>()
  for (const raw of list.split(',')) {
    const a = raw.trim()
    if (a === '') continue
    if (isIP(a) === 0) throw new Error(`--trusted-proxies: ${JSON.stringify(a)} is not an IP address (CIDR ranges are not supported)`)
    out.add(canonical(a))
  }
  return out
}

/**
 * The budget key of a client: its address, IPv4 as is, IPv6 cut to its /64.
 * `peer` is the socket's address; when it is a trusted proxy, the rightmost
 * `X-Forwarded-For` entry that is not itself a trusted proxy names the client.
 */
export function clientAddress(peer: string, forwardedFor: string, trusted: ReadonlySet<string>): string {
  let addr = canonical(peer)
  if (trusted.size > 0 && trusted.has(addr) && forwardedFor !== '') {
    const hops = forwardedFor.split(',')
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = stripPort((hops[i] as string).trim())
      if (isIP(hop) === 0) break // junk: stop at the proxy we trust
      addr = canonical(hop)
      if (!trusted.has(addr)) break
    }
  }
  return addr
}

/** `1.2.3.4:5678` -> `1.2.3.4`, `[::1]:80` -> `::1` (some proxies write the client's port too); anything else unchanged. */
function stripPort(hop: string): string {
  if (hop.startsWith('[')) {
    const end = hop.indexOf(']')
    return end > 0 ? hop.slice(1, end) : hop
  }
  const colon = hop.indexOf(':')
  return colon > 0 && hop.indexOf(':', colon + 1) < 0 ? hop.slice(0, colon) : hop
}

/** The /64 prefix of an IPv6 address (or the IPv4 of a mapped one); IPv4 unchanged. */
export function budgetKey(addr: string): string {
  if (!addr.includes(':')) return addr
  const groups = expand(addr)
  return groups ? groups.slice(0, 4).join(':') + '::/64' : addr
}

/** IPv4-mapped IPv6 as IPv4; IPv6 lower-case and expanded; anything else as given. */
function canonical(addr: string): string {
  const a = addr.toLowerCase()
  if (!a.includes(':')) return a
  const m = /^(?:0{1,4}:){0,5}(?:0{0,4}:)?ffff:([0-9.]+)$/.exec(a) ?? /^::ffff:([0-9.]+)$/.exec(a)
  if (m && isIP(m[1] as string) === 4) return m[1] as string
  const groups = expand(a)
  if (!groups) return a
  // uWS writes IPv4-mapped addresses in hex groups: 0000:...:ffff:7f00:0001.
  if (groups.slice(0, 5).every((g) => g === '0000') && groups[5] === 'ffff') {
    const hi = parseInt(groups[6] as string, 16)
    const lo = parseInt(groups[7] as string, 16)
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
  }
  return groups.join(':')
}

/** The eight 4-digit groups of an IPv6 address, or null. */
function expand(a: string): string[] | null {
  if (isIP(a) !== 6 || a.includes('.')) return null
  const [head, tail] = a.split('::') as [string, string | undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const fill = tail === undefined ? 0 : 8 - h.length - t.length
  const groups = [...h, ...new Array<string>(fill).fill('0'), ...t]
  return groups.length === 8 ? groups.map((g) => g.padStart(4, '0')) : null
}
