/**
 * SnapshotInterpolator on synthetic tick streams: steady, jittered, a late
 * frame, a skipped tick, entities coming and going, a teleport, a reused id,
 * an underrun and a stall. Entities move at constant velocity, so the exact
 * value at any render time is known: x = 2 units per tick.
 */
import t from 'tap'
import { INTERPOLATOR_DEFAULTS, SnapshotInterpolator, type SnapshotEntities } from '../src/client/interpolation.js'
import { mulberry32 } from '../src/sim/random.js'

const HZ = 30
const I = 1000 / HZ // tick interval, ms
const FIELDS = [
  { name: 'kind', quantum: 1 },
  { name: 'x', quantum: 0.25 },
  { name: 'y', quantum: 0.25 },
  { name: 'score', quantum: 1 },
]
const FRAME = 1000 / 60 // render frame, ms
const EPS = 1e-9

/** x of the mover at server time `ms`: 2 units per tick (60 u/s). */
const lineX = (ms: number): number => (2 * ms) / I

interface Frame {
  tick: number
  arrival: number
  entities: SnapshotEntities
  created?: number[]
}

/** One entity row: kind, x, y, score in world units, quantized. */
function row(x: number, y = 0, score = 0, kind = 0): Int32Array {
  return Int32Array.of(kind, Math.round(x / 0.25), Math.round(y / 0.25), score)
}

/** Frames for `ticks`, entity 1 on the line, arriving `latency` (+ jitter) ms after their tick. */
function frames(ticks: Iterable<number>, latency: number, jitter: (tick: number) => number = () => 0, extra?: (tick: number, m: Map<number, Int32Array>) => void): Frame[] {
  const out: Frame[] = []
  for (const tick of ticks) {
    const m = new Map<number, Int32Array>([[1, row(2 * tick, 10)]])
    extra?.(tick, m)
    out.push({ tick, arrival: tick * I + latency + jitter(tick), entities: m })
  }
  return out
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i)
}

interface Sample {
  now: number
  rt: number
  delay: number
  offset: number
  underruns: number
  v: Map<number, number[]>
}

/** Renders at 60 fps from `from` to `to`, pushing each frame once its arrival time has come (in arrival order). */
function play(interp: SnapshotInterpolator, fs: Frame[], from: number, to: number): Sample[] {
  const queue = [...fs].sort((a, b) => a.arrival - b.arrival)
  const out: Sample[] = []
  const view = new Map<number, Float64Array>()
  let q = 0
  for (let now = from; now <= to; now += FRAME) {
    while (q < queue.length && (queue[q] as Frame).arrival <= now) {
      const f = queue[q++] as Frame
      interp.push(f.tick, f.arrival, f.entities, f.created)
    }
    interp.sample(now, view)
    const v = new Map<number, number[]>()
    for (const [id, r] of view) v.set(id, Array.from(r))
    out.push({ now, rt: interp.renderTime, delay: interp.delayMs, offset: interp.offsetMs, underruns: interp.underruns, v })
  }
  return out
}

const x1 = (s: Sample): number | undefined => s.v.get(1)?.[1]

function interpolator(extra: Partial<ConstructorParameters<typeof SnapshotInterpolator>[0]> = {}): SnapshotInterpolator {
  return new SnapshotInterpolator({ tickHz: HZ, fields: FIELDS, interpolate: ['x', 'y'], ...extra })
}

t.test('steady 30 Hz: exact positions, render delay of two intervals honoured, monotonic', async (t) => {
  const interp = interpolator()
  const latency = 40
  const samples = play(interp, frames(range(1, 90), latency), 0, 3000)
  t.ok(Math.abs(interp.offsetMs - latency) < EPS, `clock offset = the latency (${interp.offsetMs})`)
  t.ok(interp.jitterMs < EPS, `no jitter measured (${interp.jitterMs})`)
  t.ok(Math.abs(interp.delayMs - 2 * I) < EPS, `delay = 2 intervals (${interp.delayMs.toFixed(2)} ms)`)
  const live = samples.filter((s) => s.rt >= I && s.rt <= 90 * I)
  t.ok(live.length > 150, `${live.length} frames inside the stream`)
  let worstDelay = 0
  let worstX = 0
  let backwards = 0
  let prev = -Infinity
  for (const s of live) {
    worstDelay = Math.max(worstDelay, Math.abs(s.now - latency - 2 * I - s.rt))
    worstX = Math.max(worstX, Math.abs((x1(s) as number) - lineX(s.rt)))
    if ((x1(s) as number) < prev) backwards++
    prev = x1(s) as number
    t.equal(s.v.get(1)?.[2], 10, 'y constant')
  }
  t.ok(worstDelay < 1e-6, `render time = now - latency - 2 intervals (worst ${worstDelay})`)
  t.ok(worstX < 1e-6, `x exact on the line (worst error ${worstX})`)
  t.equal(backwards, 0, 'never moves backwards')
  // At a snapshot's own time the value is that snapshot's, exactly.
  const at = interpolator({ delayMs: 0 })
  at.push(10, 10 * I, new Map([[1, row(20)]]))
  at.push(11, 11 * I, new Map([[1, row(22.25)]]))
  t.equal(at.sample(10 * I).get(1)?.[1], 20, 'value at tick 10 = snapshot 10 (clock offset 0, delay 0)')
  t.equal(interp.underruns, 0, 'no underrun on a steady stream')
})

t.test('jitter +-15 ms: delay adapts, no underruns, no stutter', async (t) => {
  const rnd = mulberry32(42)
  const jit = new Map<number, number>()
  const jitter = (tick: number): number => {
    if (!jit.has(tick)) jit.set(tick, (rnd() * 2 - 1) * 15)
    return jit.get(tick) as number
  }
  const interp = interpolator()
  const samples = play(interp, frames(range(1, 300), 50, jitter), 0, 10_000)
  t.ok(interp.jitterMs > 5 && interp.jitterMs < 10, `measured jitter ${interp.jitterMs.toFixed(2)} ms (uniform +-15: mean |dev| 7.5)`)
  t.ok(interp.delayMs > 2 * I + 15 && interp.delayMs < 2 * I + 30, `delay ${interp.delayMs.toFixed(1)} ms = 2 intervals + a 3x jitter margin`)
  t.ok(Math.abs(interp.offsetMs - 50) < 4, `offset ${interp.offsetMs.toFixed(2)} ms tracks the 50 ms mean latency`)
  const warm = samples.filter((s) => s.now > 1000 && s.rt <= 300 * I)
  const before = interp.underruns
  let worstX = 0
  let worstStep = 0
  let prev: Sample | undefined
  for (const s of warm) {
    worstX = Math.max(worstX, Math.abs((x1(s) as number) - lineX(s.rt)))
    if (prev) {
      // Constant velocity: each frame advances by the frame time, +-10% while the clock slews.
      const step = (x1(s) as number) - (x1(prev) as number)
      const ideal = lineX(FRAME)
      worstStep = Math.max(worstStep, Math.abs(step - ideal) / ideal)
    }
    prev = s
  }
  t.ok(worstX < 1e-6, `positions exact for the render time (worst ${worstX})`)
  t.ok(worstStep <= 0.1 + 1e-6, `per-frame motion within 10% of constant speed (worst ${(worstStep * 100).toFixed(2)}%)`)
  // Compare: drawing each snapshot as it arrives would step 0 or 2 ticks' worth between frames.
  const lastRt = warm.at(-1) as Sample
  t.ok(Math.abs(lastRt.now - interp.offsetMs - interp.delayMs - lastRt.rt) < 5, 'render time within 5 ms of now - offset - delay')
  t.equal(before, 0, 'no underruns')
})

t.test('a late frame (after the next one) and a very late one: still exact and monotonic', async (t) => {
  const fs = frames(range(1, 120), 40)
  const f50 = fs[49] as Frame
  const f51 = fs[50] as Frame
  f50.arrival = f51.arrival + 1 // 50 arrives after 51
  const f80 = fs[79] as Frame
  f80.arrival += 150 // arrives after 81..84, when the render time has passed it
  const interp = interpolator()
  const samples = play(interp, fs, 0, 4200)
  const live = samples.filter((s) => s.rt >= I && s.rt <= 120 * I)
  let worst = 0
  let prev = -Infinity
  let backwards = 0
  for (const s of live) {
    worst = Math.max(worst, Math.abs((x1(s) as number) - lineX(s.rt)))
    if ((x1(s) as number) < prev) backwards++
    prev = x1(s) as number
  }
  t.ok(worst < 1e-6, `exact across both (worst ${worst})`)
  t.equal(backwards, 0, 'never backwards')
  t.ok(live.some((s) => s.rt > 49 * I && s.rt < 51 * I), 'frames rendered between ticks 49 and 51')
  t.equal((live.at(-1) as Sample).underruns, 0, 'the late frames never ran the buffer dry')
  t.ok(interp.delayMs > 2 * I, `the very late frame widened the margin (${interp.delayMs.toFixed(1)} ms)`)
})

t.test('a skipped tick: interpolates across the gap', async (t) => {
  // Tick 60's frame was never sent, and 61 is the next: a bend at 60 would be
  // invisible, a straight line is exact. Entity 2 makes the gap visible: it is
  // at 0 at even ticks, 100 at odd ones, and 61 follows 59 directly.
  const ticks = range(1, 120).filter((n) => n !== 60)
  const fs = frames(ticks, 40, undefined, (tick, m) => m.set(2, row(tick % 2 === 0 ? 0 : 50)))
  const interp = interpolator()
  const samples = play(interp, fs, 0, 4200)
  const gap = samples.filter((s) => s.rt > 59 * I && s.rt < 61 * I)
  t.ok(gap.length >= 3, `${gap.length} frames inside the 2-interval gap`)
  for (const s of gap) {
    t.ok(Math.abs((x1(s) as number) - lineX(s.rt)) < 1e-6, `x on the line at ${(s.rt / I).toFixed(2)} ticks`)
    t.equal(s.v.get(2)?.[1], 50, 'entity 2 stays at 50 from 59 to 61 (both odd: no detour via tick 60)')
  }
  const normal = samples.filter((s) => s.rt > 70 * I && s.rt < 71 * I).map((s) => s.v.get(2)?.[1] as number)
  t.ok(normal.some((x) => x > 0 && x < 50), 'elsewhere entity 2 slides between 0 and 50')
})

t.test('entities appear at their first position and disappear where last seen', async (t) => {
  // Entity 2 exists for ticks 20..40 at x = 500 + 2 * tick, listed as created in
  // 20, 21 and 22 (deltas against an older acknowledged base list it again).
  const fs = frames(range(1, 60), 40, undefined, (tick, m) => {
    if (tick >= 20 && tick <= 40) m.set(2, row(500 + 2 * tick, 0, 0, 1))
  })
  for (const f of fs) if (f.tick >= 20 && f.tick <= 22) f.created = [2]
  const interp = interpolator()
  const samples = play(interp, fs, 0, 2400)
  const x2 = (s: Sample): number | undefined => s.v.get(2)?.[1]
  const early = samples.filter((s) => s.rt < 20 * I && s.rt > I)
  t.ok(early.length > 0 && early.every((s) => x2(s) === undefined), 'absent before its first snapshot')
  const first = samples.filter((s) => s.rt >= 20 * I && s.rt < 40 * I)
  t.ok(first.length > 30, 'visible while it exists')
  let worst = 0
  for (const s of first) worst = Math.max(worst, Math.abs((x2(s) as number) - (500 + lineX(s.rt))))
  t.ok(worst < 1e-6, `exact from its first position on, including between the repeated "created" frames (worst ${worst})`)
  t.ok(first.every((s) => (x2(s) as number) >= 540), 'never drawn before its first position (540)')
  t.equal(first[0]?.v.get(2)?.[0], 1, 'kind carried (1 = orb)')
  const last = samples.filter((s) => s.rt >= 40 * I && s.rt < 41 * I)
  t.ok(last.length > 0 && last.every((s) => x2(s) === 580), 'held where last seen until the next snapshot')
  const gone = samples.filter((s) => s.rt >= 41 * I)
  t.ok(gone.length > 0 && gone.every((s) => x2(s) === undefined && x1(s) !== undefined), 'gone after, and removed from the reused view')
})

t.test('a teleport snaps; a reused id snaps; ordinary motion slides', async (t) => {
  // Entity 1 jumps by 1000 at tick 50. Entity 3 moves along x = 300 + 2 * tick;
  // at tick 31 its id is reused by a new entity 20 units further (a small jump,
  // under the teleport distance), listed as created in 31 and 32.
  const fs = frames(range(1, 80), 40, undefined, (tick, m) => {
    if (tick >= 50) m.set(1, row(1000 + 2 * tick, 10))
    m.set(3, row(300 + 2 * tick + (tick >= 31 ? 20 : 0)))
  })
  for (const f of fs) if (f.tick === 31 || f.tick === 32) f.created = [3]
  const interp = interpolator()
  const samples = play(interp, fs, 0, 3000)
  const jump = samples.filter((s) => s.rt > 49 * I && s.rt < 50 * I)
  t.ok(jump.length > 0 && jump.every((s) => x1(s) === 98), 'held at 98 (tick 49) instead of sliding towards 1100')
  const after = samples.filter((s) => s.rt >= 50 * I && s.rt < 80 * I)
  t.ok(after.every((s) => Math.abs((x1(s) as number) - 1000 - lineX(s.rt)) < 1e-6), 'on the new line from tick 50 on')
  const x3 = (s: Sample): number => s.v.get(3)?.[1] as number
  const reuse = samples.filter((s) => s.rt > 30 * I && s.rt < 31 * I)
  t.ok(reuse.length > 0 && reuse.every((s) => x3(s) === 360), 'reused id: held at the old entity\'s 360, no 20-unit slide')
  const next = samples.filter((s) => s.rt > 31 * I && s.rt < 33 * I)
  t.ok(next.length > 0 && next.every((s) => Math.abs(x3(s) - 320 - lineX(s.rt)) < 1e-6), 'then slides normally, though 32 lists it as created again')
})

t.test('buffer underrun: extrapolates one interval at most, holds, resumes without going backwards', async (t) => {
  // Frames 61..65 are lost (the server skipped them); 66 on arrive normally.
  const fs = frames(range(1, 120).filter((n) => n <= 60 || n >= 66), 40)
  const interp = interpolator()
  const samples = play(interp, fs, 0, 4200)
  const dry = samples.filter((s) => s.rt > 60 * I && s.now < 66 * I + 40)
  t.ok(dry.length > 3, `${dry.length} frames rendered past the newest snapshot`)
  t.ok(interp.underruns >= dry.length, `underruns counted (${interp.underruns})`)
  const peak = Math.max(...dry.map((s) => x1(s) as number))
  t.ok(Math.abs(peak - 122) < 1e-6, `extrapolated to x(60) + one interval = 122, no further (peak ${peak})`)
  t.ok(dry.some((s) => s.rt > 61.5 * I && Math.abs((x1(s) as number) - 122) < 1e-6), 'then held')
  const ok = dry.filter((s) => s.rt <= 61 * I).every((s) => Math.abs((x1(s) as number) - lineX(s.rt)) < 1e-6)
  t.ok(ok, 'extrapolation is exact for constant velocity while it lasts')
  let backwards = 0
  let prev = -Infinity
  for (const s of samples.filter((s) => s.rt >= I && s.rt <= 120 * I)) {
    if ((x1(s) as number) < prev - EPS) backwards++
    prev = x1(s) as number
  }
  t.equal(backwards, 0, 'never backwards, through the gap and after')
  const resumed = samples.filter((s) => s.rt > 67 * I && s.rt < 120 * I)
  t.ok(resumed.every((s) => Math.abs((x1(s) as number) - lineX(s.rt)) < 1e-6), 'exact again after the gap')

  const hold = interpolator({ maxExtrapolateMs: 0 })
  const held = play(hold, fs, 0, 2400).filter((s) => s.rt > 60 * I && s.now < 66 * I + 40)
  t.ok(held.length > 0 && held.every((s) => x1(s) === 120), 'maxExtrapolateMs 0: holds at the newest snapshot')
})

t.test('a stall longer than maxGapMs: no slide across it, drawn as an underrun, then snaps', async (t) => {
  // No frames for ticks 61..74 (467 ms); 75 arrives when it should.
  const fs = frames(range(1, 120).filter((n) => n <= 60 || n >= 75), 40)
  const interp = interpolator()
  const samples = play(interp, fs, 0, 4200)
  const across = samples.filter((s) => s.rt > 61 * I && s.rt < 75 * I && s.now >= 75 * I + 40)
  t.ok(across.length > 0 && across.every((s) => Math.abs((x1(s) as number) - 122) < 1e-6), 'held at x(60) + one interval once both ends are known, as during the underrun')
  const after = samples.filter((s) => s.rt >= 75 * I && s.rt < 120 * I)
  t.ok(after.length > 0 && after.every((s) => Math.abs((x1(s) as number) - lineX(s.rt)) < 1e-6), 'on the line from 75')
  let backwards = 0
  let prev = -Infinity
  for (const s of samples.filter((s) => s.rt >= I && s.rt <= 120 * I)) {
    if ((x1(s) as number) < prev - EPS) backwards++
    prev = x1(s) as number
  }
  t.equal(backwards, 0, 'never backwards')
})

t.test('non-interpolated fields switch at snapshot times; values are dequantized', async (t) => {
  const interp = interpolator({ delayMs: 0 })
  interp.push(9, 9 * I, new Map([[1, Int32Array.of(1, 401, -8, 0)]]))
  interp.push(10, 10 * I, new Map([[1, Int32Array.of(1, 405, -4, 7)]]))
  const v = interp.sample(9.5 * I).get(1) as Float64Array
  t.same(Array.from(v), [1, 100.75, -1.5, 0], 'x, y halfway (401 -> 405 quarters; -8 -> -4), score still 0')
  t.same(Array.from(interp.sample(10 * I).get(1) as Float64Array), [1, 101.25, -1, 7], 'at tick 10: score 7')
  t.same(Array.from(interp.sample(5 * I).get(1) as Float64Array), [1, 101.25, -1, 7], 'the render clock does not run backwards with the caller\'s clock')
  const early = interpolator({ delayMs: 0 })
  early.push(9, 9 * I, new Map([[1, Int32Array.of(1, 401, -8, 0)]]))
  early.push(10, 10 * I, new Map([[1, Int32Array.of(1, 405, -4, 7)]]))
  t.same(Array.from(early.sample(5 * I).get(1) as Float64Array), [1, 100.25, -2, 0], 'before the oldest snapshot: held at it')
})

t.test('bounded memory, ordering rules, restarts, validation', async (t) => {
  const interp = interpolator()
  const view = new Map<number, Float64Array>()
  let largest = 0
  for (let tick = 1; tick <= 5000; tick++) {
    const m = new Map<number, Int32Array>([[tick % 50, row(tick)]])
    interp.push(tick, tick * I + 40, m)
    if (tick % 7 === 0) interp.sample(tick * I + 40, view)
    largest = Math.max(largest, interp.size)
  }
  t.equal(largest, 30, 'ring never holds more than one second of ticks at 30 Hz')
  t.equal(view.size, 1, 'the reused view holds only the visible entity (ids change every tick)')
  t.equal(interp.push(4990, 0, new Map()), false, 'a tick already buffered is dropped')
  t.equal(interp.push(4970, 0, new Map()), false, 'a tick older than the whole (full) ring is dropped')
  t.equal(interp.push(10, 5000, new Map([[1, row(1)]])), true, 'ticks far in the past: a restart')
  t.equal(interp.size, 1, 'buffer restarted from it')
  t.equal(interp.newestTick, 10)
  interp.reset()
  t.equal(interp.size, 0)
  t.equal(interp.sample(0, view).size, 0, 'empty buffer: empty view')
  t.equal(new SnapshotInterpolator({ tickHz: 240, fields: FIELDS, interpolate: ['x'] }).delayMs, (2 * 1000) / 240, 'delay scales with the tick rate')
  t.equal(new SnapshotInterpolator({ tickHz: 1, fields: FIELDS, interpolate: [] }).delayMs, 2000)
  t.throws(() => interpolator({ tickHz: 0 }), /tickHz must be a finite number > 0, got 0/)
  t.throws(() => interpolator({ interpolate: ['z'] }), /no field named "z"/)
  t.throws(() => interpolator({ fields: [] }), /fields must be a non-empty array/)
  t.throws(() => interpolator({ fields: [{ name: 'x', quantum: -1 }] }), /fields\[0\]\.quantum must be/)
  t.throws(() => interpolator({ delayMs: -1 }), /delayMs must be a number >= 0/)
  t.throws(() => interpolator({ bufferSize: 1 }), /bufferSize must be an integer >= 2/)
  t.throws(() => interp.push(Number.NaN, 0, new Map()), /tick must be a finite number/)
  t.throws(() => interp.push(1, Number.POSITIVE_INFINITY, new Map()), /arrivalMs must be a finite number/)
  t.equal(INTERPOLATOR_DEFAULTS.delayTicks, 2, 'documented default: two intervals')
})

t.test('a fixed delay and a clock resync', async (t) => {
  const interp = interpolator({ delayMs: 150 })
  const s0 = play(interp, frames(range(1, 30), 20), 0, 1000).at(-1) as Sample
  t.equal(interp.delayMs, 150)
  t.ok(Math.abs(interp.offsetMs - 20) < EPS, 'offset = latency')
  t.ok(Math.abs(s0.rt - (s0.now - 20 - 150)) < 1e-6, `render time = now - 20 - 150 (${s0.rt})`)
  // The server's ticks jump 2 s ahead of the clock (a paused room): after three outliers the offset follows, the clock snaps.
  const later = frames(range(31, 60), 20 + 2000)
  const view = new Map<number, Float64Array>()
  let now = 1000
  for (const f of later) {
    now = f.arrival
    interp.push(f.tick, f.arrival, f.entities)
    interp.sample(now, view)
  }
  t.ok(Math.abs(interp.offsetMs - 2020) < EPS, `offset resynchronised (${interp.offsetMs})`)
  t.ok(Math.abs(interp.renderTime - (now - 2020 - 150)) < EPS, 'render clock jumped to its new target')
  t.ok(Math.abs((view.get(1)?.[1] as number) - lineX(interp.renderTime)) < 1e-6, 'positions exact again')
  // One outlier alone is ignored.
  const one = interpolator()
  one.push(1, I + 10, new Map())
  one.push(2, 2 * I + 10, new Map())
  one.push(3, 3 * I + 900, new Map())
  t.equal(one.offsetMs, 10, 'a single 900 ms straggler does not move the offset')
  t.equal(one.jitterMs, 0, 'nor the jitter')
})

t.test('custom created order and unsorted lists are accepted', async (t) => {
  const interp = interpolator({ delayMs: 0 })
  interp.push(1, I, new Map([[5, row(0)], [7, row(10)]]), [7, 5]) // unsorted: sorted internally
  interp.push(2, 2 * I, new Map([[5, row(2)], [7, row(30)]]), [5, 7])
  const v = interp.sample(1.5 * I)
  t.ok(Math.abs((v.get(5)?.[1] as number) - 1) < EPS, 'created in both: treated as the same entity, interpolated')
  t.ok(Math.abs((v.get(7)?.[1] as number) - 20) < EPS, 'same')
  interp.push(3, 3 * I, new Map([[5, row(4)], [7, row(50)]]), [7])
  interp.sample(2.5 * I, v)
  t.equal(v.get(7)?.[1], 40, 'created in 2 and 3: interpolated')
  interp.push(4, 4 * I, new Map([[5, row(6)], [7, row(70)]]), [5])
  interp.sample(3.5 * I, v)
  t.equal(v.get(5)?.[1], 4, 'established in 3, created in 4: a reused id, held')
  t.equal(v.get(7)?.[1], 60, 'others interpolate')
})

t.test('a server sending every third tick (--send-hz 10 at 30 Hz): the delay becomes two send intervals, no underruns', async (t) => {
  const interp = interpolator()
  const latency = 40
  const ticks = range(1, 300).filter((n) => n % 3 === 0)
  const samples = play(interp, frames(ticks, latency), 0, 10_000)
  t.ok(Math.abs(interp.delayMs - 6 * I) < EPS, `delay = 2 x 3 ticks (${interp.delayMs.toFixed(2)} ms)`)
  const live = samples.filter((s) => s.now > 2000 && s.rt <= 297 * I)
  t.ok(live.length > 100, `${live.length} frames inside the stream`)
  let worstX = 0
  for (const s of live) {
    const x = x1(s)
    if (x === undefined) continue
    worstX = Math.max(worstX, Math.abs(x - lineX(s.rt)))
  }
  t.ok(worstX < 0.26, `positions exact between snapshots 3 ticks apart (worst ${worstX.toFixed(3)} u)`)
  t.equal(live.at(-1)?.underruns ?? -1, live[0]?.underruns ?? -2, 'no underrun once the send period is learnt')

  // Back to every tick, with one skipped frame: one long gap does not raise the delay.
  const every = interpolator()
  play(every, frames(range(1, 120).filter((n) => n !== 60), latency), 0, 5000)
  t.ok(Math.abs(every.delayMs - 2 * I) < EPS, `one skipped frame leaves the delay at 2 intervals (${every.delayMs.toFixed(2)} ms)`)
})
