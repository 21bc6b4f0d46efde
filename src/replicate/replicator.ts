/**
 * Delta replication for one room.
 *
 * Each tick the room's entities are quantized into a ring of `historyTicks`
 * snapshots. Each player (a `Viewer`) is sent its visible entities encoded
 * against the last tick it acknowledged, or a full state when that tick has
 * left the history. Work shared between players is done once per tick:
 *
 *  - an entity's "created" chunk (`value...`) is encoded once per tick;
 *  - an entity's "changed" chunk against base tick B (`mask, delta...`) is
 *    encoded once per (tick, B), and players acking the same B share it;
 *  - the sorted list of entities around a grid cell is gathered once per tick.
 *
 * A player's frame is then a header plus, per entity, its id (as the gap from
 * the previous id, so ids stay one byte in big rooms) and a copy of a cached
 * chunk. Everything lives in typed arrays sized at construction; the chunk
 * arena only grows.
 */
import { MsgType, ackEvery, writeArrayHeader, writeInt, zigzag, type FieldSpec } from '../../proto/index.js'
import { MAX_ROOM_ENTITIES } from '../sim/game.js'
import type { Grid } from '../sim/grid.js'
import type { World } from '../sim/world.js'

export interface ReplicatorOptions {
  /** Snapshots kept to delta against. */
  readonly historyTicks: number
  /** Sent-but-unacked frames before a viewer is paused. */
  readonly ackWindow: number
  /** Most entities one viewer is sent. */
  readonly maxVisible: number
}

/** Why a frame was a full state. */
export const FullReason = { NONE: 0, JOIN: 1, BASELINE_EXPIRED: 2 } as const
export type FullReason = (typeof FullReason)[keyof typeof FullReason]

/** Result of `Viewer.ack`. */
export const AckResult = { OK: 0, UNKNOWN_TICK: 1, REGRESSED: 2 } as const
export type AckResult = (typeof AckResult)[keyof typeof AckResult]

/** Most bytes a room's replication state can take: snapshot history, chunk records (when every history slot is some player's base in one tick; usually a few are) and per-cell lists. */
export function roomReplicationBytes(historyTicks: number, capacity: number, fieldCount: number, cells: number): number {
  const perSlotEntity = fieldCount * 4 + 4 + 16 // quantized values, generation, change record
  return historyTicks * capacity * perSlotEntity + capacity * (16 + 4) + cells * 16
}

/** Most bytes one player's replication state can take (its kept frames' entity ids at `maxVisible` each; it starts at 32 and grows). */
export function viewerBytes(ackWindow: number, maxVisible: number): number {
  return (ackWindow + 1) * (maxVisible * 2 + 8)
}

/** Upper bound on one frame's size for `maxVisible` entities of `fieldCount` fields. */
export function maxFrameBytes(maxVisible: number, fieldCount: number): number {
  return headerAndRemovedBytes(maxVisible) + 10 + maxVisible * (6 + 5 * fieldCount)
}

/** Most bytes before the changed list: fixarray, type, 3 ints, removed list, changed list header. */
function headerAndRemovedBytes(maxVisible: number): number {
  return 2 + 15 + 5 + maxVisible * 5 + 5
}

/** Size of the buffer `encode` writes into: a frame plus room to build the changed list in place. */
export function encodeBufferBytes(maxVisible: number, fieldCount: number): number {
  return headerAndRemovedBytes(maxVisible) + maxFrameBytes(maxVisible, fieldCount) + INLINE_BYTES
}

/**
 * One player's replication state: what it acknowledged and, for each frame
 * still in flight, which entities that frame covered (needed to diff against
 * it once acked). Holds at most `ackWindow + 1` such sets.
 */
export class Viewer {
  /** The entity whose surroundings this viewer sees (always visible). */
  entity: number
  /** Last tick acked by the client (0: none). */
  ackTick = 0
  /** Paused by the ack window until every sent frame is acked. */
  stalled = false
  /** Why the last frame was full (FullReason.NONE for a delta). */
  lastFull: FullReason = FullReason.NONE

  readonly #window: number
  /** Paused viewers resume below this many unacked frames: ackEvery(window). */
  readonly #resumeBelow: number
  readonly #ringSize: number
  readonly #maxVisible: number
  readonly ringTick: Uint32Array
  readonly ringCount: Int32Array
  /**
   * Entity ids of each kept frame, `stride` slots per frame; 16-bit (rooms
   * hold at most 65536 entities) to halve per-player memory. The stride
   * starts small and doubles, up to `maxVisible`, when a frame needs more: a
   * player usually sees a few dozen entities, and the ring at `maxVisible`
   * (128) was half of its memory.
   */
  ringIds: Uint16Array
  /** Slots per frame in `ringIds`. */
  stride: number
  /** Send sequence of the oldest kept entry; the acked one when `hasBase`. */
  seqHead = 0
  /** Send sequence of the next frame. */
  seqNext = 0
  hasBase = false

  constructor(entity: number, ackWindow: number, maxVisible: number) {
    this.entity = entity
    this.#window = ackWindow
    this.#resumeBelow = ackEvery(ackWindow)
    this.#ringSize = ackWindow + 1
    this.#maxVisible = maxVisible
    this.ringTick = new Uint32Array(this.#ringSize)
    this.ringCount = new Int32Array(this.#ringSize)
    this.stride = Math.min(maxVisible, INITIAL_STRIDE)
    this.ringIds = new Uint16Array(this.#ringSize * this.stride)
  }

  /** Makes room for frames of `need` ids (at most maxVisible), keeping the kept frames' ids. */
  grow(need: number): void {
    const stride = Math.min(this.#maxVisible, Math.max(need, this.stride * 2))
    if (stride <= this.stride) return
    const next = new Uint16Array(this.#ringSize * stride)
    for (let r = 0; r < this.#ringSize; r++) {
      const n = Math.min(this.ringCount[r] as number, this.stride)
      next.set(this.ringIds.subarray(r * this.stride, r * this.stride + n), r * stride)
    }
    this.ringIds = next
    this.stride = stride
  }

  /** Frames sent after the acked one. */
  get inFlight(): number {
    return this.hasBase ? this.seqNext - this.seqHead - 1 : this.seqNext - this.seqHead
  }

  /** Applies the client's ack of `tick`. */
  ack(tick: number): AckResult {
    if (tick === this.ackTick) return AckResult.OK
    if (tick < this.ackTick) return AckResult.REGRESSED
    for (let s = this.seqNext - 1; s >= this.seqHead; s--) {
      if (this.ringTick[s % this.#ringSize] === tick) {
        this.seqHead = s
        this.hasBase = true
        this.ackTick = tick
        return AckResult.OK
      }
    }
    return AckResult.UNKNOWN_TICK
  }

  /**
   * Flow control: false while too many frames are unacked. Once paused, the
   * viewer resumes when fewer than `ackEvery(window)` frames are unacked
   * (PROTOCOL.md §6), then gets one delta from that ack. A client that acks
   * at least that often always gets there, so the window never deadlocks;
   * one that acks every frame resumes as soon as it has caught up.
   */
  canSend(): boolean {
    const inFlight = this.inFlight
    if (this.stalled) {
      if (inFlight >= this.#resumeBelow) return false
      this.stalled = false
    }
    if (inFlight >= this.#window) {
      this.stalled = true
      return false
    }
    return true
  }

  get maxVisible(): number {
    return this.#maxVisible
  }
  get ringSize(): number {
    return this.#ringSize
  }
}

export class RoomReplicator {
  readonly #world: World
  readonly #grid: Grid
  readonly #H: number
  readonly #C: number
  readonly #F: number
  readonly #invQ: Float64Array
  readonly #columns: readonly Float64Array[]
  readonly #maxVisible: number
  readonly opts: ReplicatorOptions

  /** Quantized values: [slot][entity][field]. */
  readonly #hist: Int32Array
  /** Generation per [slot][entity]; 0 = absent. */
  readonly #histGen: Uint32Array
  readonly #histTick: Float64Array
  #tick = 0
  #slot = 0

  // Per-tick chunk caches; an entry is valid when its stamp equals the tick.
  #arena: Uint8Array
  #arenaPos = 0
  // One 16-byte record per entity (created: [stamp, offset, length, -]) or per
  // (base slot, entity) (changed: [stamp, length | elements << 8, chunk bytes
  // inline or arena offset]), so a lookup touches one cache line.
  readonly #created: Int32Array
  #change: Int32Array
  /** The same memory as `#change`, as bytes: chunks of up to INLINE_BYTES sit in the record's last 8 bytes. */
  #changeBytes: Uint8Array
  // Change records come in blocks of C, one block per base slot in use this tick: players ack
  // within a few ticks of each other, so a handful of blocks serve a room, not one per history slot
  // (that was 16 B x historyTicks x capacity, ~100 KB per arena room). A block handed to another slot
  // in a later tick holds stale stamps, so its records are recomputed: no clearing needed.
  /** The last output buffer, and a view of it for writing inline chunks a word at a time. */
  #out: Uint8Array = new Uint8Array(0)
  #outView: DataView = new DataView(new ArrayBuffer(0))
  readonly #blockOf: Int32Array
  readonly #blockTick: Float64Array
  #blocksUsed = 0

  // Per-tick neighborhood lists per grid cell.
  readonly #cellStamp: Float64Array
  readonly #cellOff: Int32Array
  readonly #cellLen: Int32Array
  #cellPool: Int32Array
  #cellPoolPos = 0

  // Scratch for one viewer's encode.
  readonly #mark: Uint32Array
  #markGen = 0
  readonly #fresh: Int32Array
  readonly #refOff: Int32Array
  readonly #refId: Int32Array
  /** Where encode builds the changed list in `out`: past any header and removed list. */
  readonly #changedAt: number
  readonly #refLen: Int32Array
  readonly #removed: Int32Array

  constructor(world: World, grid: Grid, fields: readonly FieldSpec[], opts: ReplicatorOptions) {
    if (fields.length > 7) throw new RangeError('at most 7 replicated fields (the change mask is one byte)')
    if (world.capacity > MAX_ROOM_ENTITIES) throw new RangeError(`a room holds at most ${MAX_ROOM_ENTITIES} entities; the game's layout asks for ${world.capacity}`)
    this.#world = world
    this.#grid = grid
    this.opts = opts
    this.#H = opts.historyTicks
    this.#C = world.capacity
    this.#F = fields.length
    this.#maxVisible = opts.maxVisible
    this.#invQ = Float64Array.from(fields, (f) => 1 / f.quantum)
    this.#columns = fields.map((f) => world.column(f.name))
    const H = this.#H
    const C = this.#C
    this.#hist = new Int32Array(H * C * this.#F)
    this.#histGen = new Uint32Array(H * C)
    this.#histTick = new Float64Array(H).fill(-1)
    // A tick's chunks: every entity created once plus changes against a few bases; grows (doubling) past that.
    // It was a fixed 64 KiB, a third of an arena room's replication memory.
    this.#arena = new Uint8Array(Math.max(1024, C * (2 + 5 * this.#F) * 2))
    this.#created = new Int32Array(C * 4).fill(-1)
    this.#change = new Int32Array(Math.min(H, INITIAL_CHANGE_BLOCKS) * C * 4).fill(-1)
    this.#changeBytes = new Uint8Array(this.#change.buffer)
    this.#blockOf = new Int32Array(H)
    this.#blockTick = new Float64Array(H).fill(-1)
    const cells = grid.cols * grid.rows
    this.#cellStamp = new Float64Array(cells).fill(-1)
    this.#cellOff = new Int32Array(cells)
    this.#cellLen = new Int32Array(cells)
    this.#cellPool = new Int32Array(this.#maxVisible * 4) // grows (doubling) to what a tick needs
    this.#mark = new Uint32Array(C)
    this.#fresh = new Int32Array(opts.maxVisible + 1)
    this.#refOff = new Int32Array(opts.maxVisible)
    this.#refId = new Int32Array(opts.maxVisible)
    this.#changedAt = headerAndRemovedBytes(opts.maxVisible)
    this.#refLen = new Int32Array(opts.maxVisible)
    this.#removed = new Int32Array(opts.maxVisible)
  }

  get tick(): number {
    return this.#tick
  }

  /** Upper bound of one frame's size in bytes. */
  get maxFrameBytes(): number {
    return maxFrameBytes(this.#maxVisible, this.#F)
  }

  /** Size `encode`'s output buffer must have. */
  get encodeBufferBytes(): number {
    return encodeBufferBytes(this.#maxVisible, this.#F)
  }

  /** Records the world as tick `tick` and starts a new round of per-tick caches. */
  snapshot(tick: number): void {
    const H = this.#H
    const C = this.#C
    const F = this.#F
    // Chunk caches are keyed by tick: snapshotting a tick twice would serve stale chunks.
    if (tick <= this.#tick) throw new RangeError(`snapshot(${tick}) after snapshot(${this.#tick}): ticks must increase`)
    const slot = tick % H
    this.#tick = tick
    this.#slot = slot
    this.#histTick[slot] = tick
    const { alive, generation } = this.#world
    const hist = this.#hist
    const gen = this.#histGen
    const cols = this.#columns
    const invQ = this.#invQ
    const gBase = slot * C
    for (let e = 0; e < C; e++) gen[gBase + e] = alive[e] === 1 ? (generation[e] as number) : 0
    // Field by field: each pass streams one column (dead slots are quantized too; nothing reads them).
    const hBase = gBase * F
    for (let f = 0; f < F; f++) {
      const col = cols[f] as Float64Array
      const q = invQ[f] as number
      for (let e = 0, o = hBase + f; e < C; e++, o += F) hist[o] = Math.round((col[e] as number) * q)
    }
    this.#arenaPos = 0
    this.#cellPoolPos = 0
    this.#blocksUsed = 0
  }

  /** This tick's block of change records for base slot `bSlot` (its first record's index / 4 is the result x C). */
  #block(bSlot: number): number {
    if (this.#blockTick[bSlot] === this.#tick) return this.#blockOf[bSlot] as number
    const b = this.#blocksUsed++
    const words = (b + 1) * this.#C * 4
    if (words > this.#change.length) {
      const next = new Int32Array(Math.max(words, this.#change.length * 2)).fill(-1)
      next.set(this.#change)
      this.#change = next
      this.#changeBytes = new Uint8Array(next.buffer)
    }
    this.#blockTick[bSlot] = this.#tick
    this.#blockOf[bSlot] = b
    return b
  }

  /** Creates the replication state of a player whose entity is `entity`. */
  newViewer(entity: number): Viewer {
    return new Viewer(entity, this.opts.ackWindow, this.#maxVisible)
  }

  /** Quantized value of `field` of `entity` at the current tick (for tests and tools). */
  value(entity: number, field: number): number {
    return this.#hist[(this.#slot * this.#C + entity) * this.#F + field] as number
  }

  /** Whether `entity` exists at the current tick. */
  exists(entity: number): boolean {
    return this.#histGen[this.#slot * this.#C + entity] !== 0
  }

  /**
   * Encodes the current tick's STATE frame for `v` into `out` (at least
   * `encodeBufferBytes` long) and records it as sent. Returns the frame length.
   * The caller has checked `v.canSend()` and the socket's backpressure.
   */
  encode(v: Viewer, inputSeq: number, out: Uint8Array): number {
    const C = this.#C
    const F = this.#F
    const tick = this.#tick
    const stamp = tick | 0
    const tSlot = this.#slot
    const histGen = this.#histGen

    // Baseline: the acked frame if its tick is still in the history.
    let base = 0
    let baseRing = 0
    let baseCount = 0
    if (v.hasBase && this.#histTick[v.ackTick % this.#H] === v.ackTick) {
      base = v.ackTick
      baseRing = v.seqHead % v.ringSize
      baseCount = v.ringCount[baseRing] as number
      v.lastFull = FullReason.NONE
    } else {
      v.lastFull = v.hasBase ? FullReason.BASELINE_EXPIRED : FullReason.JOIN
    }
    const bSlot = base % this.#H

    // This frame's visible set, ascending ids, written straight into its ring entry.
    const seq = v.seqNext
    const r = seq % v.ringSize
    const n = this.#visible(v, histGen[tSlot * C + v.entity] !== 0, r) // may grow the ring: read it after
    const ids = v.ringIds
    const curIds = r * v.stride
    const baseIds = baseRing * v.stride

    // Merge-walk this frame's ids against the baseline's (both ascending):
    // only in the baseline: removed; in both and the same entity: changed;
    // otherwise: created (a new entity, or a new one that reuses an id).
    // Changed entities (nearly all of them) are written straight into `out`
    // past the largest possible header and removed list, then moved into
    // place: one pass, no per-entity bookkeeping.
    const refOff = this.#refOff
    const refLen = this.#refLen
    const refId = this.#refId
    const removed = this.#removed
    const kBase = baseCount > 0 ? this.#block(bSlot) * C : 0 // may grow #change: read it after
    if (out !== this.#out) {
      this.#out = out
      this.#outView = new DataView(out.buffer, out.byteOffset, out.byteLength)
    }
    const outView = this.#outView
    const change = this.#change
    const created = this.#created
    const cStart = this.#changedAt
    let cp = cStart
    let prevChanged = 0
    let nRemoved = 0
    let changedElems = 0
    let nCreated = 0
    let i = 0
    let j = 0
    while (i < n) {
      const e = ids[curIds + i++] as number
      while (j < baseCount && (ids[baseIds + j] as number) < e) removed[nRemoved++] = ids[baseIds + j++] as number
      if (j < baseCount && ids[baseIds + j] === e) {
        j++
        const k = (kBase + e) * 4
        if (change[k] !== stamp) this.#encodeChange(e, bSlot, k)
        const meta = change[k + 1] as number // -1: another entity now; else length | elements << 8
        const len = meta & 0xff
        if (meta > 0) {
          const gap = e - prevChanged
          prevChanged = e
          if (gap < 0x80) out[cp++] = gap
          else cp = writeInt(out, cp, gap)
          if (len <= INLINE_BYTES) {
            // Short chunks live in the record itself: no second memory access. Both words are
            // written whole (little-endian, as the Int32Array holds them) and cp moves by len:
            // the bytes past it are overwritten next (the buffer has INLINE_BYTES of slack).
            outView.setInt32(cp, change[k + 2] as number, true)
            outView.setInt32(cp + 4, change[k + 3] as number, true)
            cp += len
          } else {
            const arena = this.#arena
            for (let o = change[k + 2] as number, end = o + len; o < end; o++) out[cp++] = arena[o] as number
          }
          changedElems += meta >>> 8
        }
        if (meta >= 0) continue // -1: the id now holds another entity, sent as created
      }
      if (created[e * 4] !== stamp) this.#encodeCreated(e)
      refOff[nCreated] = created[e * 4 + 1] as number
      refLen[nCreated] = created[e * 4 + 2] as number
      refId[nCreated] = e
      nCreated++
    }
    while (j < baseCount) removed[nRemoved++] = ids[baseIds + j++] as number

    // [2, tick, baseAge, inputSeq, removed[], changed[], created[]]; ids as gaps from the previous id.
    let p = 0
    out[p++] = 0x97
    out[p++] = MsgType.STATE
    p = writeInt(out, p, tick)
    p = writeInt(out, p, base === 0 ? 0 : tick - base)
    p = writeInt(out, p, inputSeq)
    p = writeArrayHeader(out, p, nRemoved)
    let prev = 0
    for (let k = 0; k < nRemoved; k++) {
      const e = removed[k] as number
      p = writeInt(out, p, e - prev)
      prev = e
    }
    p = writeArrayHeader(out, p, changedElems)
    out.copyWithin(p, cStart, cp)
    p += cp - cStart
    p = writeArrayHeader(out, p, nCreated * (1 + F))
    prev = 0
    const arena = this.#arena
    for (let k = 0; k < nCreated; k++) {
      const e = refId[k] as number
      p = writeInt(out, p, e - prev)
      prev = e
      for (let o = refOff[k] as number, end = o + (refLen[k] as number); o < end; o++) out[p++] = arena[o] as number
    }

    v.ringTick[r] = tick
    v.ringCount[r] = n
    v.seqNext = seq + 1
    return p
  }

  #reserve(bytes: number): void {
    if (this.#arenaPos + bytes <= this.#arena.length) return
    const next = new Uint8Array(Math.max(this.#arena.length * 2, this.#arenaPos + bytes))
    next.set(this.#arena.subarray(0, this.#arenaPos))
    this.#arena = next
  }

  #encodeCreated(e: number): void {
    const F = this.#F
    this.#reserve(5 * F)
    const arena = this.#arena
    const start = this.#arenaPos
    let p = start
    const o = (this.#slot * this.#C + e) * F
    for (let f = 0; f < F; f++) p = writeInt(arena, p, this.#hist[o + f] as number)
    const c = this.#created
    c[e * 4] = this.#tick | 0
    c[e * 4 + 1] = start
    c[e * 4 + 2] = p - start
    this.#arenaPos = p
  }

  #encodeChange(e: number, bSlot: number, k: number): void {
    const change = this.#change
    change[k] = this.#tick | 0
    const g = this.#histGen
    if (g[bSlot * this.#C + e] !== g[this.#slot * this.#C + e]) {
      change[k + 1] = -1 // not the same entity: the caller sends it as created
      return
    }
    const F = this.#F
    const hist = this.#hist
    const cur = (this.#slot * this.#C + e) * F
    const old = (bSlot * this.#C + e) * F
    let mask = 0
    let count = 0
    for (let f = 0; f < F; f++) {
      if (hist[cur + f] !== hist[old + f]) {
        mask |= 1 << f
        count++
      }
    }
    if (mask === 0) {
      change[k + 1] = 0
      return
    }
    this.#reserve(1 + 5 * F)
    const arena = this.#arena
    const start = this.#arenaPos
    let p = start
    arena[p++] = mask // < 128: a positive fixint
    for (let f = 0; f < F; f++) {
      if ((mask & (1 << f)) !== 0) p = writeInt(arena, p, zigzag((hist[cur + f] as number) - (hist[old + f] as number)))
    }
    const len = p - start
    change[k + 1] = len | ((2 + count) << 8)
    if (len <= INLINE_BYTES) {
      // Copied into the record; the arena space is reused by the next chunk.
      const bytes = this.#changeBytes
      for (let i = 0, o = k * 4 + 8; i < len; i++) bytes[o + i] = arena[start + i] as number
      return
    }
    change[k + 2] = start
    this.#arenaPos = p
  }

  /**
   * Writes the ids `v` sees now into its ring at `at`, ascending, and returns
   * the count: the cached neighbourhood of its cell plus its own entity (when
   * alive), at most `maxVisible`. Sorting ~30 ids per player would cost more
   * than the rest of the encode, so the order is carried over instead: the
   * ids of the last frame that are still visible keep their order, and only
   * newcomers (usually none or a few) are sorted and merged in.
   */
  #visible(v: Viewer, ownAlive: boolean, r: number): number {
    const own = v.entity
    const mark = this.#mark
    if (this.#markGen >= 0xfffffff0) {
      mark.fill(0)
      this.#markGen = 0
    }
    const seen = ++this.#markGen // in view now
    const kept = ++this.#markGen // in view now and already placed
    const cell = this.#grid.cellOf[own] as number
    let off = 0
    let len = 0
    if (cell >= 0) this.#neighborhood(cell) // may grow (replace) the pool: read it after
    const pool = this.#cellPool
    if (cell >= 0) {
      off = this.#cellOff[cell] as number
      len = this.#cellLen[cell] as number
      for (let k = 0; k < len; k++) mark[pool[off + k] as number] = seen
      // Own is nearly always there (its cell is gathered first); if the cap cut it, drop the farthest one.
      if (ownAlive && mark[own] !== seen && len === this.#maxVisible) mark[pool[off + --len] as number] = 0
    }
    let inView = len
    if (ownAlive) {
      if (mark[own] !== seen) inView++
      mark[own] = seen
    }
    if (inView > v.stride) v.grow(inView)
    const ids = v.ringIds
    const at = r * v.stride
    let n = 0
    if (v.seqNext > 0) {
      const last = ((v.seqNext - 1) % v.ringSize) * v.stride
      const lastCount = v.ringCount[(v.seqNext - 1) % v.ringSize] as number
      for (let i = 0; i < lastCount; i++) {
        const e = ids[last + i] as number
        if (mark[e] === seen) {
          ids[at + n++] = e
          mark[e] = kept
        }
      }
    }
    if (n === inView) return n // nobody new in view: the usual case
    const fresh = this.#fresh
    let m = 0
    for (let k = 0; k < len; k++) {
      const e = pool[off + k] as number
      if (mark[e] === seen) {
        mark[e] = kept
        fresh[m++] = e
      }
    }
    if (ownAlive && mark[own] === seen) fresh[m++] = own
    sortInts(fresh, m)
    // Merge the newcomers into the kept run, from the back, in place.
    let i = n - 1
    let w = n + m - 1
    for (let j = m - 1; j >= 0; ) {
      const f = fresh[j] as number
      if (i >= 0 && (ids[at + i] as number) > f) ids[at + w--] = ids[at + i--] as number
      else {
        ids[at + w--] = f
        j--
      }
    }
    return n + m
  }

  /** Gathers the entities of the 3x3 cells around `cell` (own cell first, so the cap keeps the nearest), once per tick. */
  #neighborhood(cell: number): void {
    if (this.#cellStamp[cell] === this.#tick) return
    const g = this.#grid
    const { cellStart, items, cols, rows } = g
    const max = this.#maxVisible
    if (this.#cellPoolPos + max > this.#cellPool.length) {
      const next = new Int32Array(this.#cellPool.length * 2 + max)
      next.set(this.#cellPool.subarray(0, this.#cellPoolPos))
      this.#cellPool = next
    }
    const pool = this.#cellPool
    const off = this.#cellPoolPos
    let n = 0
    const cx = cell % cols
    const cy = (cell - cx) / cols
    // Own cell first, then edge neighbours, then corners: when capped, nearer cells win.
    for (let ring = 0; ring < 9 && n < max; ring++) {
      const dx = ring === 0 ? 0 : (NEIGHBOR_DX[ring - 1] as number)
      const dy = ring === 0 ? 0 : (NEIGHBOR_DY[ring - 1] as number)
      const nx = cx + dx
      const ny = cy + dy
      if (nx < 0 || ny < 0 || nx >= cols || ny >= rows) continue
      const c = ny * cols + nx
      for (let k = cellStart[c] as number, end = cellStart[c + 1] as number; k < end && n < max; k++) {
        pool[off + n++] = items[k] as number
      }
    }
    this.#cellStamp[cell] = this.#tick
    this.#cellOff[cell] = off
    this.#cellLen[cell] = n
    this.#cellPoolPos = off + n
  }

}


/** Blocks of change records a room starts with (#block adds more when a tick has more distinct bases). */
const INITIAL_CHANGE_BLOCKS = 4

/** Slots per frame a viewer's ring starts with (Viewer.grow doubles it when a frame needs more). */
const INITIAL_STRIDE = 32

/** Bytes of a changed chunk kept inside its record (words 2 and 3); longer ones stay in the arena (offset in word 2). */
const INLINE_BYTES = 8

/** The 8 cells around a cell, nearest first: the 4 sharing an edge, then the 4 corners. */
const NEIGHBOR_DX = [-1, 1, 0, 0, -1, 1, -1, 1]
const NEIGHBOR_DY = [0, 0, -1, 1, -1, -1, 1, 1]

/** Sorts `a[0 .. n)` ascending: insertion sort for the usual handful, the native sort for more. */
function sortInts(a: Int32Array, n: number): void {
  if (n > 32) {
    a.subarray(0, n).sort()
    return
  }
  for (let i = 1; i < n; i++) {
    const v = a[i] as number
    let j = i - 1
    while (j >= 0 && (a[j] as number) > v) {
      a[j + 1] = a[j] as number
      j--
    }
    a[j + 1] = v
  }
}
