/**
 * The room directory, kept by the supervisor: which worker slot owns each
 * room. Named rooms are placed here before they exist (a claim), so two
 * players asking for the same new room on different workers get one owner.
 * A claim the owner does not turn into a room within `pendingMs` is dropped.
 */

interface Entry {
  slot: number
  /** While the owner has not reported the room open: when the claim lapses (ms); 0 once open. */
  pendingUntil: number
}

export class Directory {
  readonly #rooms = new Map<string, Entry>()
  /** Players per slot, as last reported, plus claims placed since. -1: slot not serving. */
  readonly #load: number[]
  readonly #pendingMs: number

  constructor(slots: number, pendingMs = 10_000) {
    this.#load = new Array<number>(slots).fill(-1)
    this.#pendingMs = pendingMs
  }

  /** Rooms known (open or claimed). */
  get size(): number {
    return this.#rooms.size
  }

  /** Marks a slot serving (with its load) or not (-1). */
  setLoad(slot: number, players: number): void {
    this.#load[slot] = players
  }

  /**
   * The slot that owns `room`. If none does and `create` is set, places it on
   * the least-loaded serving slot, preferring `asker` on a tie (no redirect).
   * Null when nobody owns it and `create` is off, or no slot serves.
   */
  claim(room: string, asker: number, create: boolean, now: number): number | null {
    const e = this.#rooms.get(room)
    if (e && (this.#load[e.slot] ?? -1) >= 0) return e.slot
    if (e) this.#rooms.delete(room)
    if (!create) return null
    let best = -1
    for (let s = 0; s < this.#load.length; s++) {
      const load = this.#load[s] as number
      if (load < 0) continue
      const bestLoad = best < 0 ? Infinity : (this.#load[best] as number)
      if (load < bestLoad || (load === bestLoad && s === asker)) best = s
    }
    if (best < 0) return null
    this.#rooms.set(room, { slot: best, pendingUntil: now + this.#pendingMs })
    this.#load[best] = (this.#load[best] as number) + 1 // until the next report: keeps a burst of claims spread
    return best
  }

  /** `slot` created `room`. False when another slot owns that id (a collision; the caller logs it). */
  opened(room: string, slot: number): boolean {
    const e = this.#rooms.get(room)
    if (e && e.slot !== slot && (this.#load[e.slot] ?? -1) >= 0) return false
    this.#rooms.set(room, { slot, pendingUntil: 0 })
    return true
  }

  /** `slot` disposed `room`. */
  closed(room: string, slot: number): void {
    if (this.#rooms.get(room)?.slot === slot) this.#rooms.delete(room)
  }

  /** The slot died: forget its rooms and stop placing rooms there. Returns how many rooms it had. */
  dropSlot(slot: number): number {
    this.#load[slot] = -1
    let n = 0
    for (const [room, e] of this.#rooms) {
      if (e.slot === slot) {
        this.#rooms.delete(room)
        n++
      }
    }
    return n
  }

  /** Drops claims that never became rooms. */
  sweep(now: number): void {
    for (const [room, e] of this.#rooms) if (e.pendingUntil !== 0 && e.pendingUntil < now) this.#rooms.delete(room)
  }

  /** The owner of `room`, if known. */
  owner(room: string): number | undefined {
    return this.#rooms.get(room)?.slot
  }
}
