/**
 * Snapshot interpolation for the entities a player does not control: draw
 * them a little in the past, between two STATE snapshots that have both
 * arrived, so motion is smooth whatever the tick rate and however unevenly
 * the frames arrive. Renderer-agnostic (no DOM): feed it snapshots, ask it
 * for positions at any frame time, draw them however you like.
 *
 * ## Model
 *
 * - **Server time.** Tick `n` happened at server time `n * 1000 / tickHz` ms.
 *   Each arrival gives one sample of the clock offset `arrivalMs - serverTime`
 *   (latency plus jitter). The offset is smoothed (exponential average, weight
 *   1/16), and the mean absolute deviation of the samples from it is the
 *   measured *jitter* (also weight 1/16, like RFC 3550's jitter estimate). A
 *   sample more than 250 ms off is an outlier (a stall): ignored, unless three
 *   in a row say the server's clock really moved (a room that was moved, a
 *   paused server), when the offset jumps to the new value.
 * - **Render delay.** Entities are drawn at server time
 *   `now - offset - delay`. The default delay is 2 tick intervals plus a
 *   jitter margin of 3 x the measured jitter (at most 200 ms): one interval
 *   so that the next snapshot is normally already here, one more so that a
 *   single late or lost frame is bridged by interpolating across the gap
 *   (the Source engine's default `cl_interp` is the same idea: 100 ms, two
 *   snapshots at its 20 Hz update rate). At 30 Hz with a steady connection
 *   that is 67 ms; with +-15 ms of jitter, about 90 ms.
 * - **Render clock.** The time drawn does not jump with each arrival: it
 *   runs at wall-clock speed, sped up or slowed down by at most 10% to follow
 *   the smoothed target, so it never runs backwards and jitter does not make
 *   motion stutter. It jumps only when it is more than 250 ms (or 2 tick
 *   intervals, if longer) off the target: the first frame, a resynchronised
 *   clock.
 * - **Between snapshots A and B** (the last snapshot at or before the
 *   render time, and the next one), an entity is drawn:
 *   - interpolated linearly, when it is in both and is the same entity;
 *   - at A's values (held, then switching at B's time) when its move from A
 *     to B is longer than `teleportDistance` (a respawn or a teleport: snap,
 *     do not slide), or when B lists it as created while A had it as an
 *     established entity (a new entity that reuses the id, see PROTOCOL.md
 *     §3);
 *   - at A's values until B's time when it is not in B (it left: it
 *     disappears at B's time, where it was last seen);
 *   - not at all when it is only in B: it appears at B's time, at its first
 *     position, instead of sliding in from nowhere.
 *   Skipped tick numbers (frames the server did not send) and a late frame
 *   both just make a longer segment: interpolation spans the gap. A gap
 *   longer than `maxGapMs` (default 250 ms: a stall, there is no telling
 *   what happened in between) is not interpolated: it is drawn as an
 *   underrun (below) until B's time, where everything snaps to B.
 * - **Underrun.** When the render time passes the newest snapshot (the
 *   buffer ran dry: frames stopped, or arrived later than the margin allows),
 *   the newest snapshot's entities are extrapolated along their last segment
 *   for at most `maxExtrapolateMs` (default one tick interval, enough to ride
 *   out one late frame), then held. Extrapolation is bounded because it guesses: an
 *   entity that turned or stopped overshoots by at most one interval of
 *   motion. Each sample taken past the newest snapshot counts in `underruns`.
 * - **Memory.** A ring of the newest `bufferSize` snapshots (default one
 *   second of ticks, at least 16). A snapshot is the entity map passed to
 *   `push`, kept by reference, not copied: `EntityTable` never mutates a
 *   snapshot's map or rows (it replaces them), so this costs nothing. If you
 *   feed your own maps, do not mutate them after pushing.
 *
 * Quantized values are multiplied by their field's quantum, so `sample` gives
 * world units. Fields not listed in `interpolate` (such as `kind` or `score`)
 * are the values of snapshot A: they change at snapshot times.
 *
 * @example
 * ```ts
 * import { TickwireClient, SnapshotInterpolator } from 'tickwire/client'
 * const client = await TickwireClient.connect('ws://localhost:9001/play')
 * const interp = new SnapshotInterpolator({
 *   tickHz: client.welcome.tickHz,
 *   fields: client.welcome.fields,   // [kind, x, y, score] in the reference arena
 *   interpolate: ['x', 'y'],
 * })
 * client.on('state', (frame, result) => {
 *   // A full state (after a resume or a resync) lists every entity as created: pass no list then.
 *   interp.push(frame.tick, performance.now(), client.table.entities, result.full ? undefined : result.created)
 * })
 * client.on('rejoined', () => interp.reset()) // another seat, perhaps another room: ids mean other things
 * const view = new Map<number, Float64Array>()
 * function draw(now: number): void {
 *   for (const [id, v] of interp.sample(now, view)) {
 *     if (id === client.welcome.entityId) continue // drawn from the InputPredictor
 *     drawCircle(v[1]!, v[2]!, v[0] === 0 ? 20 : 8) // x, y in world units
 *   }
 *   requestAnimationFrame(draw)
 * }
 * requestAnimationFrame(draw)
 * ```
 */
import type { FieldSpec } from '../../proto/index.js'

/** Defaults of `InterpolatorOptions`, with their units. */
export const INTERPOLATOR_DEFAULTS = Object.freeze({
  /** Render delay before the jitter margin, in tick intervals. */
  delayTicks: 2,
  /** Jitter margin = this x the measured mean absolute arrival deviation. */
  jitterFactor: 3,
  /** Largest jitter margin, ms. */
  maxJitterMarginMs: 200,
  /** A move longer than this between two snapshots snaps instead of sliding, world units (the arena's avatars move 7.3 u per tick at 30 Hz). */
  teleportDistance: 100,
  /** Snapshots further apart than this in server time do not interpolate, ms. */
  maxGapMs: 250,
  /** Extrapolation past the newest snapshot, in tick intervals. */
  maxExtrapolateTicks: 1,
  /** Snapshots kept: this many seconds of ticks... */
  bufferSeconds: 1,
  /** ...but at least this many. */
  minBufferSize: 16,
})

/** Offset samples this far from the smoothed offset are outliers (a stall), ms. */
const OUTLIER_MS = 250
/** Outliers in a row that resynchronise the offset. */
const RESYNC_AFTER = 3
/** Weight of a new sample in the smoothed offset and jitter (as RFC 3550's 1/16). */
const SMOOTHING = 1 / 16
/** The render clock runs at most this much faster or slower than the wall clock. */
const MAX_RATE_CHANGE = 0.1
/** The render clock jumps when it is further than this from its target, ms (or 2 intervals). */
const CLOCK_SNAP_MS = 250

/**
 * Options of `SnapshotInterpolator`, checked by its constructor: an empty
 * `fields` is a TypeError; a `tickHz` or quantum that is not a finite number
 * > 0, an `interpolate` name that is not a field, a negative or NaN number, or
 * a `bufferSize` that is not an integer >= 2 is a RangeError naming the option.
 */
export interface InterpolatorOptions {
  /** Ticks per second: WELCOME's `tickHz`. */
  readonly tickHz: number
  /** The replicated fields, in wire order: WELCOME's `fields` (names and quanta). */
  readonly fields: readonly FieldSpec[]
  /**
   * Names of the fields to interpolate (continuous quantities such as `x`, `y`);
   * their distance decides teleports. The other fields take snapshot A's values.
   */
  readonly interpolate: readonly string[]
  /**
   * A fixed render delay, ms (>= 0; near 0 draws at about the newest
   * snapshot's time, so every late frame is extrapolated). Default: adaptive, 2 tick intervals + 3 x the
   * measured jitter, the jitter margin at most 200 ms (see the module comment).
   */
  readonly delayMs?: number
  /**
   * Moves longer than this between consecutive snapshots snap instead of
   * sliding (world units, Euclidean over the `interpolate` fields; >= 0). Default 100.
   */
  readonly teleportDistance?: number
  /** Snapshots further apart than this (server time, ms; >= 0) do not interpolate: drawn as an underrun until the newer one, then snapped. Default 250. */
  readonly maxGapMs?: number
  /** Longest extrapolation past the newest snapshot, ms (>= 0). Default one tick interval; 0 holds. */
  readonly maxExtrapolateMs?: number
  /** Snapshots kept (an integer >= 2). Default one second of ticks, at least 16. */
  readonly bufferSize?: number
}

/** Entity values of one snapshot, by id (an `EntityTable` snapshot fits as it is). */
export type SnapshotEntities = ReadonlyMap<number, ArrayLike<number>>

const EMPTY: SnapshotEntities = new Map()

/**
 * Buffers recent STATE snapshots and samples the entities between them at a
 * render time slightly in the past. See the module comment for the model.
 */
export class SnapshotInterpolator {
  /** Samples taken past the newest snapshot (the buffer had run dry). */
  underruns = 0
  readonly #interval: number
  readonly #quanta: Float64Array
  /** Field indices to interpolate. */
  readonly #lerp: Int32Array
  readonly #fixedDelay: number | undefined
  readonly #teleport2: number
  readonly #maxGap: number
  readonly #maxExtrapolate: number
  readonly #clockSnap: number
  // Ring of snapshots, sorted by tick: logical index i lives at (#head + i) % capacity.
  readonly #cap: number
  readonly #ticks: Float64Array
  readonly #maps: SnapshotEntities[]
  /** Ids the frame listed as created (ascending), or null. */
  readonly #created: (ArrayLike<number> | null)[]
  #head = 0
  #count = 0
  // Server clock estimate.
  #offset = 0
  #jitter = 0
  /** Tick gaps between the last in-order snapshots; their smallest is the server's send period (--send-hz). */
  readonly #gaps = new Float64Array(8).fill(1)
  #gapAt = 0
  #sendTicks = 1
  #synced = false
  #outliers = 0
  // Render clock.
  #renderTime = 0
  #lastNow = 0
  #clockSet = false
  /** Rows freed by entities that left, reused for the next ones that appear. */
  readonly #pool: Float64Array[] = []

  constructor(opts: InterpolatorOptions) {
    const D = INTERPOLATOR_DEFAULTS
    positive('tickHz', opts.tickHz)
    if (!Array.isArray(opts.fields) || opts.fields.length === 0) throw new TypeError('fields must be a non-empty array of { name, quantum } (WELCOME.fields)')
    this.#interval = 1000 / opts.tickHz
    this.#quanta = Float64Array.from(opts.fields, (f, i) => {
      positive(`fields[${i}].quantum`, f.quantum)
      return f.quantum
    })
    this.#lerp = Int32Array.from(opts.interpolate, (name) => {
      const i = opts.fields.findIndex((f) => f.name === name)
      if (i < 0) throw new RangeError(`interpolate: no field named ${JSON.stringify(name)} (fields: ${opts.fields.map((f) => f.name).join(', ')})`)
      return i
    })
    if (opts.delayMs !== undefined) nonNegative('delayMs', opts.delayMs)
    this.#fixedDelay = opts.delayMs
    const teleport = opts.teleportDistance ?? D.teleportDistance
    nonNegative('teleportDistance', teleport)
    this.#teleport2 = teleport * teleport
    this.#maxGap = opts.maxGapMs ?? D.maxGapMs
    nonNegative('maxGapMs', this.#maxGap)
    this.#maxExtrapolate = opts.maxExtrapolateMs ?? D.maxExtrapolateTicks * this.#interval
    nonNegative('maxExtrapolateMs', this.#maxExtrapolate)
    this.#cap = opts.bufferSize ?? Math.max(D.minBufferSize, Math.ceil(opts.tickHz * D.bufferSeconds))
    if (!Number.isInteger(this.#cap) || this.#cap < 2) throw new RangeError(`bufferSize must be an integer >= 2, got ${this.#cap}`)
    this.#clockSnap = Math.max(CLOCK_SNAP_MS, 2 * this.#interval)
    this.#ticks = new Float64Array(this.#cap)
    this.#maps = new Array<SnapshotEntities>(this.#cap).fill(EMPTY)
    this.#created = new Array<ArrayLike<number> | null>(this.#cap).fill(null)
  }

  /**
   * The render delay now in force, ms: the fixed `delayMs`, or 2 send
   * intervals + the jitter margin. The send interval is one tick unless the
   * server sends every k-th tick (`--send-hz`): then it is k ticks, learnt
   * from the smallest tick gap between recent snapshots.
   */
  get delayMs(): number {
    if (this.#fixedDelay !== undefined) return this.#fixedDelay
    const D = INTERPOLATOR_DEFAULTS
    return D.delayTicks * this.#sendTicks * this.#interval + Math.min(D.jitterFactor * this.#jitter, D.maxJitterMarginMs)
  }

  /** Smoothed `arrivalMs - serverTime` (latency plus the clocks' difference), ms. */
  get offsetMs(): number {
    return this.#offset
  }

  /** Measured arrival jitter (smoothed mean absolute deviation from the offset), ms. */
  get jitterMs(): number {
    return this.#jitter
  }

  /** The server time drawn by the last `sample`, ms (tick n is at n * 1000 / tickHz). */
  get renderTime(): number {
    return this.#renderTime
  }

  /** Snapshots buffered. */
  get size(): number {
    return this.#count
  }

  /** Tick of the newest snapshot (0: none). */
  get newestTick(): number {
    return this.#count === 0 ? 0 : this.#tickAt(this.#count - 1)
  }

  /** Forgets all snapshots and the clock estimate (after a reconnect: ticks may restart elsewhere). */
  reset(): void {
    this.#maps.fill(EMPTY)
    this.#created.fill(null)
    this.#head = 0
    this.#count = 0
    this.#synced = false
    this.#outliers = 0
    this.#offset = 0
    this.#jitter = 0
    this.#clockSet = false
    this.#gaps.fill(1)
    this.#sendTicks = 1
  }

  /**
   * Adds the snapshot of `tick`, which arrived at `arrivalMs` (the clock
   * `sample` is given, e.g. `performance.now()`). `entities` is kept by
   * reference (see the module comment). `created`: the ids the frame listed
   * as created (`ApplyResult.created`, ascending; omit it for a full state,
   * `ApplyResult.full`, which lists every entity); lets a new entity that
   * reuses an id snap instead of sliding. Snapshots may arrive out of order;
   * one older than everything buffered, or a tick already buffered, is
   * dropped (returns false). A tick more than a buffer's worth older than the
   * newest means the ticks restarted (another room, another server): the
   * buffer is reset and starts from it.
   */
  push(tick: number, arrivalMs: number, entities: SnapshotEntities, created?: ArrayLike<number>): boolean {
    if (!Number.isFinite(tick)) throw new RangeError(`tick must be a finite number, got ${tick}`)
    if (!Number.isFinite(arrivalMs)) throw new RangeError(`arrivalMs must be a finite number, got ${arrivalMs}`)
    if (this.#count > 0 && this.newestTick - tick > this.#cap) this.reset()
    // Position in tick order, from the newest end (frames nearly always come in order).
    let p = this.#count
    while (p > 0 && this.#tickAt(p - 1) > tick) p--
    if (p > 0 && this.#tickAt(p - 1) === tick) return false
    if (this.#count === this.#cap) {
      if (p === 0) return false // older than everything kept
      this.#head = (this.#head + 1) % this.#cap
      this.#count--
      p--
    }
    for (let i = this.#count; i > p; i--) {
      const to = this.#slot(i)
      const from = this.#slot(i - 1)
      this.#ticks[to] = this.#ticks[from] as number
      this.#maps[to] = this.#maps[from] as SnapshotEntities
      this.#created[to] = this.#created[from] as ArrayLike<number> | null
    }
    const s = this.#slot(p)
    this.#ticks[s] = tick
    this.#maps[s] = entities
    this.#created[s] = created && created.length > 0 ? ascending(created) : null
    this.#count++
    if (p === this.#count - 1 && p > 0) {
      // A skipped frame makes one gap longer; only a run of 8 long gaps raises the send period.
      this.#gaps[this.#gapAt] = tick - this.#tickAt(p - 1)
      this.#gapAt = (this.#gapAt + 1) % this.#gaps.length
      let min = Infinity
      for (let i = 0; i < this.#gaps.length; i++) min = Math.min(min, this.#gaps[i] as number)
      this.#sendTicks = Math.max(1, min)
    }
    this.#observe(arrivalMs - tick * this.#interval)
    return true
  }

  /**
   * The entities at render time for local time `nowMs` (same clock as the
   * arrivals): per id, every field dequantized (× quantum), the `interpolate`
   * fields interpolated. Reuses `out` and its rows (pass the same map every
   * frame: no allocation once warm): ids no longer visible are removed from
   * it. Do not keep the rows: they are overwritten by the next call.
   */
  sample(nowMs: number, out: Map<number, Float64Array> = new Map()): Map<number, Float64Array> {
    if (this.#count === 0) {
      this.#release(out, EMPTY)
      return out
    }
    const t = this.#advanceClock(nowMs)
    let i = this.#count - 1
    while (i > 0 && this.#timeAt(i) > t) i--
    const a = this.#timeAt(i)
    if (a > t) {
      // Before the oldest snapshot: hold it.
      this.#fill(out, this.#mapAt(0), null, 0, 0, 0, 0)
    } else if (i < this.#count - 1 && this.#timeAt(i + 1) - a <= this.#maxGap) {
      const b = this.#timeAt(i + 1)
      this.#fill(out, this.#mapAt(i), this.#mapAt(i + 1), (t - a) / (b - a), b - a, i, i + 1)
    } else {
      // Past the newest snapshot (an underrun), or in a gap too long to interpolate
      // across (a stall): extrapolate along the segment ending at A, bounded, then hold.
      if (i === this.#count - 1 && t > a) this.underruns++
      if (i === 0) this.#fill(out, this.#mapAt(0), null, 0, 0, 0, 0)
      else {
        const p = this.#timeAt(i - 1)
        const ahead = Math.min(t - a, this.#maxExtrapolate)
        // Sampled "from" A with a negative alpha towards the snapshot before it.
        this.#fill(out, this.#mapAt(i), this.#mapAt(i - 1), -ahead / (a - p), a - p, i, i - 1)
      }
    }
    return out
  }

  /**
   * Writes A's entities into `out`, moved `alpha` of the way towards B where
   * the entity is continuous from one to the other. `gap` = |B - A| in server
   * ms; `ia`, `ib`: logical indices of A and B (for their created lists).
   */
  #fill(out: Map<number, Float64Array>, A: SnapshotEntities, B: SnapshotEntities | null, alpha: number, gap: number, ia: number, ib: number): void {
    const q = this.#quanta
    const F = q.length
    const lerp = this.#lerp
    const blend = B !== null && alpha !== 0 && gap <= this.#maxGap
    // The later of the two snapshots decides whether an id was re-used (its created list vs the earlier one's).
    const later = ia > ib ? ia : ib
    const createdLate = blend ? this.#createdAt(later) : null
    const createdEarly = blend ? this.#createdAt(later === ia ? ib : ia) : null
    for (const [id, a] of A) {
      let row = out.get(id)
      if (row === undefined || row.length !== F) {
        row = this.#pool.pop() ?? new Float64Array(F)
        out.set(id, row)
      }
      for (let f = 0; f < F; f++) row[f] = (a[f] as number) * (q[f] as number)
      if (!blend) continue
      const b = (B as SnapshotEntities).get(id)
      if (b === undefined) continue
      if (createdLate !== null && has(createdLate, id) && !(createdEarly !== null && has(createdEarly, id))) continue
      let d2 = 0
      for (let k = 0; k < lerp.length; k++) {
        const f = lerp[k] as number
        const d = ((b[f] as number) - (a[f] as number)) * (q[f] as number)
        d2 += d * d
      }
      if (d2 > this.#teleport2) continue
      for (let k = 0; k < lerp.length; k++) {
        const f = lerp[k] as number
        row[f] = ((a[f] as number) + ((b[f] as number) - (a[f] as number)) * alpha) * (q[f] as number)
      }
    }
    this.#release(out, A)
  }

  /** Removes from `out` the ids not in `visible`, keeping their rows for reuse. */
  #release(out: Map<number, Float64Array>, visible: SnapshotEntities): void {
    if (out.size === visible.size) return // every id in out was just written from `visible`
    for (const [id, row] of out) {
      if (!visible.has(id)) {
        out.delete(id)
        if (this.#pool.length < 256) this.#pool.push(row)
      }
    }
  }

  /** Folds one `arrival - serverTime` sample into the offset and jitter estimates. */
  #observe(sample: number): void {
    if (!this.#synced) {
      this.#offset = sample
      this.#synced = true
      return
    }
    const dev = sample - this.#offset
    if (Math.abs(dev) > OUTLIER_MS) {
      if (++this.#outliers >= RESYNC_AFTER) {
        this.#offset = sample
        this.#outliers = 0
      }
      return
    }
    this.#outliers = 0
    this.#offset += dev * SMOOTHING
    this.#jitter += (Math.abs(dev) - this.#jitter) * SMOOTHING
  }

  /** Moves the render clock to local time `now` and returns it (server ms). */
  #advanceClock(now: number): number {
    const target = now - this.#offset - this.delayMs
    if (!this.#clockSet) {
      this.#clockSet = true
      this.#renderTime = target
      this.#lastNow = now
    } else {
      const dt = Math.max(0, now - this.#lastNow)
      const free = this.#renderTime + dt
      const err = target - free
      if (Math.abs(err) > this.#clockSnap) this.#renderTime = target
      else {
        const max = MAX_RATE_CHANGE * dt
        this.#renderTime = free + (err > max ? max : err < -max ? -max : err)
      }
    }
    if (now > this.#lastNow) this.#lastNow = now
    return this.#renderTime
  }

  #slot(i: number): number {
    return (this.#head + i) % this.#cap
  }
  #tickAt(i: number): number {
    return this.#ticks[this.#slot(i)] as number
  }
  #timeAt(i: number): number {
    return this.#tickAt(i) * this.#interval
  }
  #mapAt(i: number): SnapshotEntities {
    return this.#maps[this.#slot(i)] as SnapshotEntities
  }
  #createdAt(i: number): ArrayLike<number> | null {
    return this.#created[this.#slot(i)] ?? null
  }
}

/** `list` if it ascends, else a sorted copy. */
function ascending(list: ArrayLike<number>): ArrayLike<number> {
  for (let i = 1; i < list.length; i++) {
    if ((list[i] as number) <= (list[i - 1] as number)) return Float64Array.from(list).sort()
  }
  return list
}

/** Binary search in an ascending list. */
function has(list: ArrayLike<number>, id: number): boolean {
  let lo = 0
  let hi = list.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const v = list[mid] as number
    if (v === id) return true
    if (v < id) lo = mid + 1
    else hi = mid - 1
  }
  return false
}

function positive(name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a finite number > 0, got ${v}`)
}

function nonNegative(name: string, v: number): void {
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new RangeError(`${name} must be a number >= 0, got ${v}`)
}
