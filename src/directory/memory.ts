/**
 * The room directory kept in one supervisor's memory (the embedded default,
 * see directory.ts): which worker slot owns each room. Named rooms are placed here before they exist (a claim), so two
 * players asking for the same new room on different workers get one owner.
 * A claim the owner does not turn into a room within `pendingMs` is dropped.
 *
 * A claim costs nothing to make (an upgrade naming a room nobody has; the
 * client need never follow its redirect), so claims not yet opened are
 * budgeted: at most `maxPerAddress` per client address and `maxPending` in
 * all. A claim over either answers `'address_limit'`.
 */


export interface DirectoryOptions {
  /** How long a claim waits to be opened before it lapses, ms. Default 10 s. */
  readonly pendingMs?: number
  /** Pending claims per client address (`--max-rooms-per-address`); 0: no cap. Default 0. */
  readonly maxPerAddress?: number
  /** Pending claims in all; 0: no cap. Default 0 (the supervisor passes PENDING_PER_ROOM x max rooms x workers). */
  readonly maxPending?: number
  /** Rooms one slot may run (`--max-rooms`): a slot that has them is not given new rooms; 0: no cap. Default 0. */
  readonly maxRooms?: number
}

interface Entry {
  slot: number
  /** While the owner has not reported the room open: when the claim lapses (ms); 0 once open. */
  pendingUntil: number
  /** Who made the pending claim ('' once open): its budget is returned when the claim opens or goes. */
  address: string
}

/** Run a sweep from a cap check at most this often (ms): lapsed claims must not hold a budget until the periodic sweep. */
const CAP_SWEEP_MS = 1000

import { DirectoryStats, DirectoryUnavailable, LISTING_STALE_MS, MAX_PUBLISHED_ROOMS, PENDING_PER_ROOM, type ListedRoom, type LocateResult, type RoomDirectory, type RoomSummary, type WorkerAddress } from './directory.js'

export { PENDING_PER_ROOM }

export class MemoryDirectory {
  readonly #rooms = new Map<string, Entry>()
  /** Players per slot, as last reported, plus claims placed since. -1: slot not serving. */
  readonly #load: number[]
  /** Rooms per slot, as last reported, plus claims placed since. */
  readonly #roomsOn: number[]
  readonly #maxRooms: number
  readonly #pendingMs: number
  readonly #maxPerAddress: number
  readonly #maxPending: number
  /** Pending claims per address (no entry: none). */
  readonly #byAddress = new Map<string, number>()
  #pending = 0
  #lastSweep = -Infinity
  /** Each slot's last published rooms and when (Date.now ms); absent: none, or the slot died. */
  readonly #published = new Map<number, { at: number; worker: string; rooms: readonly RoomSummary[] }>()

  constructor(slots: number, opts: DirectoryOptions = {}) {
    this.#load = new Array<number>(slots).fill(-1)
    this.#roomsOn = new Array<number>(slots).fill(0)
    this.#maxRooms = opts.maxRooms ?? 0
    this.#pendingMs = opts.pendingMs ?? 10_000
    this.#maxPerAddress = opts.maxPerAddress ?? 0
    this.#maxPending = opts.maxPending ?? 0
  }

  /** Rooms known (open or claimed). */
  get size(): number {
    return this.#rooms.size
  }

  /** Claims not yet opened as rooms. */
  get pending(): number {
    return this.#pending
  }

  /** Pending claims made by `address`. */
  pendingOf(address: string): number {
    return this.#byAddress.get(address) ?? 0
  }

  /** Marks a slot serving (with its players and rooms) or not (players -1). */
  setLoad(slot: number, players: number, rooms = 0): void {
    this.#load[slot] = players
    this.#roomsOn[slot] = rooms
  }

  /**
   * The slot that owns `room`. If none does and `create` is set, places it on
   * the least-loaded serving slot, preferring `asker` on a tie (no redirect),
   * as a claim charged to `address`. Null when nobody owns it and `create` is
   * off, or no slot serves; `'address_limit'` when the claim would exceed the
   * per-address or the global budget of pending claims.
   */
  claim(room: string, asker: number, create: boolean, now: number, address = ''): number | null | 'address_limit' {
    const e = this.#rooms.get(room)
    if (e && (this.#load[e.slot] ?? -1) >= 0) return e.slot
    if (e) this.#delete(room, e)
    if (!create) return null
    if (this.#overCap(address, now)) return 'address_limit'
    let best = -1
    for (let s = 0; s < this.#load.length; s++) {
      const load = this.#load[s] as number
      if (load < 0) continue
      // A slot at --max-rooms would refuse the room: the next least-loaded one gets it (null when all are full).
      if (this.#maxRooms > 0 && (this.#roomsOn[s] as number) >= this.#maxRooms) continue
      const bestLoad = best < 0 ? Infinity : (this.#load[best] as number)
      if (load < bestLoad || (load === bestLoad && s === asker)) best = s
    }
    if (best < 0) return null
    this.#rooms.set(room, { slot: best, pendingUntil: now + this.#pendingMs, address })
    this.#pending++
    this.#byAddress.set(address, this.pendingOf(address) + 1)
    this.#load[best] = (this.#load[best] as number) + 1 // until the next report: keeps a burst of claims spread
    this.#roomsOn[best] = (this.#roomsOn[best] as number) + 1
    return best
  }

  /** `slot` created `room`. False when another slot owns that id (a collision; the caller logs it). */
  opened(room: string, slot: number): boolean {
    const e = this.#rooms.get(room)
    if (e && e.slot !== slot && (this.#load[e.slot] ?? -1) >= 0) return false
    if (e) this.#release(e)
    this.#rooms.set(room, { slot, pendingUntil: 0, address: '' })
    return true
  }

  /** `slot` disposed `room`. */
  closed(room: string, slot: number): void {
    const e = this.#rooms.get(room)
    if (e?.slot === slot) this.#delete(room, e)
  }

  /** Slot `slot` (named `worker`) runs these rooms now (at most MAX_PUBLISHED_ROOMS are kept). */
  publish(slot: number, worker: string, rooms: readonly RoomSummary[], now = Date.now()): void {
    this.#published.set(slot, { at: now, worker, rooms: rooms.slice(0, MAX_PUBLISHED_ROOMS) })
  }

  /** Every serving slot's rooms published within LISTING_STALE_MS. */
  listRooms(now = Date.now()): ListedRoom[] {
    const out: ListedRoom[] = []
    for (const [slot, p] of this.#published) {
      if (now - p.at > LISTING_STALE_MS || (this.#load[slot] ?? -1) < 0) continue
      for (const r of p.rooms) out.push({ ...r, worker: p.worker })
    }
    return out
  }

  /** The slot died: forget its rooms and stop placing rooms there. Returns how many rooms (and claims) it had. */
  dropSlot(slot: number): number {
    this.#load[slot] = -1
    this.#published.delete(slot)
    let n = 0
    for (const [room, e] of this.#rooms) {
      if (e.slot === slot) {
        this.#delete(room, e)
        n++
      }
    }
    return n
  }

  /** Drops claims that never became rooms. */
  sweep(now: number): void {
    this.#lastSweep = now
    for (const [room, e] of this.#rooms) if (e.pendingUntil !== 0 && e.pendingUntil < now) this.#delete(room, e)
  }

  /** The owner of `room`, if known. */
  owner(room: string): number | undefined {
    return this.#rooms.get(room)?.slot
  }

  /**
   * Slot `slot`'s handle on this directory (`RoomDirectory`), in this process:
   * the supervisor answers its workers' IPC requests through it, and the
   * shared directory test suite runs against it. `addressOf` names a slot
   * (null: not serving).
   */
  member(slot: number, addressOf: (slot: number) => WorkerAddress | null): RoomDirectory {
    const self = addressOf(slot)
    if (!self) throw new Error(`slot ${slot} has no address`)
    if ((this.#load[slot] ?? -1) < 0) this.setLoad(slot, 0) // a member serves
    let closed = false
    const stats = new DirectoryStats()
    const dir: RoomDirectory = {
      self,
      stats,
      onLost: () => {},
      locate: (id, create, address) => {
        if (closed) return Promise.reject(new DirectoryUnavailable('directory handle closed'))
        stats.ops.locate.ok++
        const owner = this.claim(id, slot, create, Date.now(), address)
        if (owner === null || owner === 'address_limit') return Promise.resolve(owner)
        if (owner === slot) return Promise.resolve({ local: true })
        const where = addressOf(owner)
        return Promise.resolve<LocateResult>(where ? { local: false, ...where } : null)
      },
      opened: (id) => {
        if (!closed && !this.opened(id, slot)) dir.onLost(id)
      },
      closed: (id) => {
        if (!closed) this.closed(id, slot)
      },
      close: () => {
        closed = true
        this.dropSlot(slot)
        return Promise.resolve()
      },
      publish: (rooms) => {
        if (!closed) this.publish(slot, self.name, rooms)
      },
      listRooms: () => (closed ? Promise.reject(new DirectoryUnavailable('directory handle closed')) : Promise.resolve(this.listRooms())),
    }
    return dir
  }

  #full(address: string): boolean {
    return (this.#maxPending > 0 && this.#pending >= this.#maxPending) || (this.#maxPerAddress > 0 && address !== '' && this.pendingOf(address) >= this.#maxPerAddress)
  }

  #overCap(address: string, now: number): boolean {
    if (!this.#full(address)) return false
    // Lapsed claims may still be counted (the periodic sweep is seconds apart): sweep, at most once a second, and look again.
    if (now - this.#lastSweep < CAP_SWEEP_MS) return true
    this.sweep(now)
    return this.#full(address)
  }

  #delete(room: string, e: Entry): void {
    this.#rooms.delete(room)
    this.#release(e)
  }

  /** Returns a pending claim's budget (no-op for an open room). */
  #release(e: Entry): void {
    if (e.pendingUntil === 0) return
    e.pendingUntil = 0
    this.#pending--
    const n = this.pendingOf(e.address) - 1
    if (n > 0) this.#byAddress.set(e.address, n)
    else this.#byAddress.delete(e.address)
  }
}
