/**
 * Delta replication for one room.
 *
 * Each tick the room's entities are quantized into a ring of `historyTicks`
 * snapshots. Each player (a `Viewer`) is sent its visible entities encoded
 * against the last tick it acknowledged, or a full state when that tick has
 * left the history. Work shared between players is done once per tick:
 *
 *  - an entity's "created" chunk (`id, value...`) is encoded once per tick;
 *  - an entity's "changed" chunk against base tick B (`id, mask, delta...`) is
 *    encoded once per (tick, B), and players acking the same B share it;
 *  - the list of entities around a grid cell is gathered once per tick.
 *
 * A player's frame is then a header plus copies of cached chunks. Everything
 * lives in typed arrays sized at construction; the chunk arena only grows.
 */
import { MsgType, writeArrayHeader, writeInt, zigzag, type FieldSpec } from '../../proto/index.js'
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

/** Upper bound on one frame's size for `maxVisible` entities of `fieldCount` fields. */
export function maxFrameBytes(maxVisible: number, fieldCount: number): number {
  // header (fixarray + type + 3 ints) + 3 array headers + removed ids + per entity the larger chunk
  return 1 + 1 + 15 + 15 + maxVisible * 5 + maxVisible * (6 + 5 * fieldCount)
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
  /** Last tick sent (0: none). */
  lastSentTick = 0
  /** Paused by the ack window until every sent frame is acked. */
  stalled = false
  /** Why the last frame was full (FullReason.NONE for a delta). */
  lastFull: FullReason = FullReason.NONE

  readonly #window: number
  readonly #ringSize: number
  readonly #maxVisible: number
  readonly ringTick: Uint32Array
  readonly ringCount: Int32Array
  readonly ringIds: Int32Array
  /** Send sequence of the oldest kept entry; the acked one when `hasBase`. */
  seqHead = 0
  /** Send sequence of the next frame. */
  seqNext = 0
  hasBase = false

  constructor(entity: number, ackWindow: number, maxVisible: number) {
    this.entity = entity
    this.#window = ackWindow
    this.#ringSize = ackWindow + 1
    this.#maxVisible = maxVisible
    this.ringTick = new Uint32Array(this.#ringSize)
    this.ringCount = new Int32Array(this.#ringSize)
    this.ringIds = new Int32Array(this.#ringSize * maxVisible)
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
   * viewer resumes only when everything sent is acked, then gets one delta
   * from that ack (like a TCP window; never deadlocks, since an idle window
   * is empty).
   */
  canSend(): boolean {
    const inFlight = this.inFlight
    if (this.stalled) {
      if (inFlight > 0) return false
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
  readonly #createdStamp: Float64Array
  readonly #createdOff: Int32Array
  readonly #createdLen: Int32Array
  readonly #changeStamp: Float64Array
  readonly #changeOff: Int32Array
  readonly #changeLen: Int32Array
  readonly #changeElems: Uint8Array

  // Per-tick neighborhood lists per grid cell.
  readonly #cellStamp: Float64Array
  readonly #cellOff: Int32Array
  readonly #cellLen: Int32Array
  #cellPool: Int32Array
  #cellPoolPos = 0

  // Scratch for one viewer's encode.
  readonly #mark: Uint32Array
  #markGen = 0
  readonly #refOff: Int32Array
  readonly #refLen: Int32Array
  readonly #removed: Int32Array

  constructor(world: World, grid: Grid, fields: readonly FieldSpec[], opts: ReplicatorOptions) {
    if (fields.length > 7) throw new RangeError('at most 7 replicated fields (the change mask is one byte)')
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
    this.#arena = new Uint8Array(64 * 1024)
    this.#createdStamp = new Float64Array(C).fill(-1)
    this.#createdOff = new Int32Array(C)
    this.#createdLen = new Int32Array(C)
    this.#changeStamp = new Float64Array(H * C).fill(-1)
    this.#changeOff = new Int32Array(H * C)
    this.#changeLen = new Int32Array(H * C)
    this.#changeElems = new Uint8Array(H * C)
    const cells = grid.cols * grid.rows
    this.#cellStamp = new Float64Array(cells).fill(-1)
    this.#cellOff = new Int32Array(cells)
    this.#cellLen = new Int32Array(cells)
    this.#cellPool = new Int32Array(Math.max(1024, this.#maxVisible * 16))
    this.#mark = new Uint32Array(C)
    this.#refOff = new Int32Array(opts.maxVisible)
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

  /** Records the world as tick `tick` and starts a new round of per-tick caches. */
  snapshot(tick: number): void {
    const H = this.#H
    const C = this.#C
    const F = this.#F
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
    for (let e = 0; e < C; e++) {
      if (alive[e] !== 1) {
        gen[gBase + e] = 0
        continue
      }
      gen[gBase + e] = generation[e] as number
      const o = (gBase + e) * F
      for (let f = 0; f < F; f++) hist[o + f] = Math.round(((cols[f] as Float64Array)[e] as number) * (invQ[f] as number))
    }
    this.#arenaPos = 0
    this.#cellPoolPos = 0
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
   * `maxFrameBytes` long) and records it as sent. Returns the frame length.
   * The caller has checked `v.canSend()` and the socket's backpressure.
   */
  encode(v: Viewer, inputSeq: number, out: Uint8Array): number {
    const C = this.#C
    const F = this.#F
    const tick = this.#tick
    const tSlot = this.#slot
    const histGen = this.#histGen
    const mark = this.#mark

    // Baseline: the acked frame if its tick is still in the history.
    let base = 0
    let baseIds = 0
    let baseCount = 0
    if (v.hasBase && this.#histTick[v.ackTick % this.#H] === v.ackTick) {
      base = v.ackTick
      const r = v.seqHead % v.ringSize
      baseIds = r * v.maxVisible
      baseCount = v.ringCount[r] as number
      v.lastFull = FullReason.NONE
    } else {
      v.lastFull = v.hasBase ? FullReason.BASELINE_EXPIRED : FullReason.JOIN
    }
    const bSlot = base % this.#H

    // This frame's visible set, written straight into its ring entry.
    const seq = v.seqNext
    const r = seq % v.ringSize
    const curIds = r * v.maxVisible
    const ids = v.ringIds
    let n = 0
    const own = v.entity
    if (histGen[tSlot * C + own] !== 0) ids[curIds + n++] = own
    const cell = this.#grid.cellOf[own] as number
    if (cell >= 0) {
      this.#neighborhood(cell)
      const pool = this.#cellPool
      const off = this.#cellOff[cell] as number
      const len = this.#cellLen[cell] as number
      const max = this.#maxVisible
      for (let i = 0; i < len && n < max; i++) {
        const e = pool[off + i] as number
        if (e !== own) ids[curIds + n++] = e
      }
    }

    // Classify: changed (in baseline, same generation) or created.
    if (++this.#markGen >= 0xfffffff0) this.#resetMarks()
    const stampB = this.#markGen
    for (let i = 0; i < baseCount; i++) mark[ids[baseIds + i] as number] = stampB
    const refOff = this.#refOff
    const refLen = this.#refLen
    let nChanged = 0
    let changedElems = 0
    let nCreated = n
    let createdElems = 0
    for (let i = 0; i < n; i++) {
      const e = ids[curIds + i] as number
      const g = histGen[tSlot * C + e] as number
      if (base !== 0 && mark[e] === stampB && histGen[bSlot * C + e] === g) {
        const k = bSlot * C + e
        if (this.#changeStamp[k] !== tick) this.#encodeChange(e, bSlot, k)
        const len = this.#changeLen[k] as number
        if (len > 0) {
          refOff[nChanged] = this.#changeOff[k] as number
          refLen[nChanged] = len
          nChanged++
          changedElems += this.#changeElems[k] as number
        }
      } else {
        if (this.#createdStamp[e] !== tick) this.#encodeCreated(e)
        // Created refs fill the scratch from the top down.
        nCreated--
        refOff[nCreated] = this.#createdOff[e] as number
        refLen[nCreated] = this.#createdLen[e] as number
        createdElems += 1 + F
      }
    }
    // Removed: in the baseline, not in this frame.
    let nRemoved = 0
    if (baseCount > 0) {
      const stampC = ++this.#markGen
      for (let i = 0; i < n; i++) mark[ids[curIds + i] as number] = stampC
      for (let i = 0; i < baseCount; i++) {
        const e = ids[baseIds + i] as number
        if (mark[e] !== stampC) this.#removed[nRemoved++] = e
      }
    }

    // Write: [2, tick, base, inputSeq, removed[], changed[], created[]]
    let p = 0
    out[p++] = 0x97
    out[p++] = MsgType.STATE
    p = writeInt(out, p, tick)
    p = writeInt(out, p, base)
    p = writeInt(out, p, inputSeq)
    p = writeArrayHeader(out, p, nRemoved)
    for (let i = 0; i < nRemoved; i++) p = writeInt(out, p, this.#removed[i] as number)
    const arena = this.#arena
    p = writeArrayHeader(out, p, changedElems)
    for (let i = 0; i < nChanged; i++) {
      for (let o = refOff[i] as number, end = o + (refLen[i] as number); o < end; o++) out[p++] = arena[o] as number
    }
    p = writeArrayHeader(out, p, createdElems)
    for (let i = nCreated; i < n; i++) {
      for (let o = refOff[i] as number, end = o + (refLen[i] as number); o < end; o++) out[p++] = arena[o] as number
    }

    v.ringTick[r] = tick
    v.ringCount[r] = n
    v.seqNext = seq + 1
    v.lastSentTick = tick
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
    this.#reserve(5 + 5 * F)
    const arena = this.#arena
    const start = this.#arenaPos
    let p = writeInt(arena, start, e)
    const o = (this.#slot * this.#C + e) * F
    for (let f = 0; f < F; f++) p = writeInt(arena, p, this.#hist[o + f] as number)
    this.#createdStamp[e] = this.#tick
    this.#createdOff[e] = start
    this.#createdLen[e] = p - start
    this.#arenaPos = p
  }

  #encodeChange(e: number, bSlot: number, k: number): void {
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
    this.#changeStamp[k] = this.#tick
    if (mask === 0) {
      this.#changeLen[k] = 0
      return
    }
    this.#reserve(6 + 5 * F)
    const arena = this.#arena
    const start = this.#arenaPos
    let p = writeInt(arena, start, e)
    arena[p++] = mask // < 128: a positive fixint
    for (let f = 0; f < F; f++) {
      if ((mask & (1 << f)) !== 0) p = writeInt(arena, p, zigzag((hist[cur + f] as number) - (hist[old + f] as number)))
    }
    this.#changeOff[k] = start
    this.#changeLen[k] = p - start
    this.#changeElems[k] = 2 + count
    this.#arenaPos = p
  }

  /** Gathers the entities of the 3x3 cells around `cell` (own cell first), once per tick. */
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
    // Own cell first, then the 8 around it: when capped, nearer cells win.
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

  #resetMarks(): void {
    this.#mark.fill(0)
    this.#markGen = 1
  }
}

const NEIGHBOR_DX = [-1, 0, 1, -1, 1, -1, 0, 1]
const NEIGHBOR_DY = [-1, -1, -1, 0, 0, 1, 1, 1]
