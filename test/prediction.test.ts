/**
 * InputPredictor: exact replays on hand-made tick streams, then whole
 * sessions against the real arena rules (`Room` + `arena`, as the server runs
 * them: newest input applied at the start of a tick, held until the next)
 * over a simulated network with latency, jitter and quantization.
 */
import t from 'tap'
import { InputPredictor, PREDICTOR_DEFAULTS, type StepFn } from '../src/client/prediction.js'
import { AVATAR_RADIUS, AVATAR_SPEED, arena, arenaLayout } from '../src/games/arena.js'
import { mulberry32 } from '../src/sim/random.js'
import { Room } from '../src/sim/room.js'

const EPS = 1e-9

/** 1-D: x += v * dt, with v the input; at 10 Hz an input of 10 moves 1 per tick. */
const line: StepFn = (s, input, dt, out) => {
  out[0] = (s[0] as number) + (input[0] as number) * dt
}

function linePredictor(extra: Partial<ConstructorParameters<typeof InputPredictor>[0]> = {}): InputPredictor {
  return new InputPredictor({ tickHz: 10, step: line, state: [0], input: [0], ...extra })
}

const x = (p: InputPredictor): number => p.state[0] as number

t.test('acknowledged inputs are dropped, the others replayed from the server state', async (t) => {
  const p = linePredictor()
  // One input per local tick (100 ms apart): 10, 20, 30, 40 -> +1, +2, +3, +4.
  for (let j = 1; j <= 4; j++) {
    p.record(j, [10 * j])
    t.equal(p.advance((j - 1) * 100), 1, `local tick ${j}`)
  }
  t.equal(x(p), 10, 'predicted 1 + 2 + 3 + 4')
  t.equal(p.unackedInputs, 4)
  t.equal(p.pendingTicks, 4)
  t.equal(p.reconcile([1], 1, 500), 0, 'server at tick 500 applied seq 1: x = 1, prediction confirmed')
  t.equal(x(p), 10, 'replayed inputs 2, 3, 4 from 1')
  t.equal(p.unackedInputs, 3, 'seq 1 dropped')
  t.equal(p.pendingTicks, 3)
  t.equal(p.reconcile([3], 2, 501), 0)
  t.equal(p.unackedInputs, 2)
  // The server disagrees: after seq 3 it has 5 instead of 6 (something blocked it).
  t.equal(p.reconcile([5], 3, 502), 1, 'correction of 1')
  t.equal(x(p), 9, 'the new prediction: 5 + input 4 replayed')
  t.equal(p.unackedInputs, 1)
  t.equal(p.pendingTicks, 1)
  t.equal(p.reconcile([9], 4, 503), 0, 'everything acknowledged: prediction = server')
  t.equal(p.pendingTicks, 0)
  t.equal(p.unackedInputs, 0)
  t.equal(p.reconcile([100], 4, 503), 0, 'a stale tick is ignored')
  t.equal(x(p), 9)
})

t.test('a held input is replayed once per tick, not once per input', async (t) => {
  const p = linePredictor()
  p.record(1, [10]) // pressed, then held: one input for many ticks
  for (let j = 1; j <= 6; j++) p.advance((j - 1) * 100)
  t.equal(x(p), 6, 'six local ticks of +1')
  t.equal(p.unackedInputs, 1, 'one input, six ticks')
  // The server applied seq 1 at tick 100 (= local tick 1) and reports after each tick.
  t.equal(p.reconcile([1], 1, 100), 0)
  t.equal(p.pendingTicks, 5, 'server did local tick 1: 5 to replay')
  t.equal(p.reconcile([2], 1, 101), 0, 'server holds seq 1: tick 101 = local tick 2')
  t.equal(p.pendingTicks, 4)
  t.equal(x(p), 6)
  p.advance(600) // local tick 7
  t.equal(x(p), 7)
  t.equal(p.reconcile([3], 1, 102), 0)
  p.record(2, [0]) // released
  p.advance(700)
  p.advance(800)
  t.equal(x(p), 7, 'stopped at once, locally')
  t.equal(p.reconcile([4], 1, 103), 0, 'server still holding seq 1: its ticks 104..106 are the pending +1s')
  t.equal(p.reconcile([5], 1, 104), 0)
  t.equal(p.reconcile([7], 2, 107), 0, 'seq 2 applied at 107 (= local tick 8): nothing left to predict')
  t.equal(x(p), 7)
  t.equal(p.pendingTicks, 1, 'local tick 9, done by the server at 108')
  t.equal(p.reconcile([7], 2, 108), 0)
  t.equal(p.pendingTicks, 0)
  // A reconcile with nothing to replay keeps the current tick's motion for display.
  t.equal(p.lastCorrection, 0)
})

t.test('corrections fade over smoothMs; large ones snap', async (t) => {
  const p = linePredictor()
  p.record(1, [10])
  p.advance(0)
  t.equal(p.reconcile([0], 0, 50), 0, 'the first reconcile snaps to the server without counting a correction')
  for (let j = 2; j <= 5; j++) p.advance((j - 1) * 100)
  const before = p.sample(450)[0] as number
  t.ok(Math.abs(before - 4.5) < EPS, `display halfway through local tick 5: ${before}`)
  t.equal(p.reconcile([3], 1, 51), 2, 'the server applied seq 1 at tick 51 and has x 3 where we had 1: correction 2')
  t.equal(x(p), 7, 'prediction: 3 + four more ticks')
  t.ok(Math.abs((p.sample(450)[0] as number) - before) < EPS, 'no visible jump at the correction')
  t.ok(Math.abs((p.sample(550)[0] as number) - (7.5 - 2 * Math.exp(-3))) < 1e-6, '100 ms later: on the new prediction, 5% of the correction left')
  const q = linePredictor({ smoothMs: 100 })
  q.record(1, [0])
  q.advance(0)
  q.reconcile([0], 0, 1)
  t.equal(q.reconcile([10], 1, 2), 10, 'a standing entity corrected by 10')
  t.ok(Math.abs((q.sample(0)[0] as number) - 0) < EPS, 'shown where it was')
  t.ok(Math.abs((q.sample(50)[0] as number) - (10 - 10 * Math.exp(-1.5))) < 1e-6, 'half-way through smoothMs: e^-1.5 of it left')
  t.ok(Math.abs((q.sample(99)[0] as number) - (10 - 10 * Math.exp(-(99 / 100) * 3))) < 1e-6, 'after ~100 ms: 5% left')
  t.ok(Math.abs((q.sample(99)[0] as number) - 10) < 0.55, 'within 5.5% of the correction')
  t.ok(Math.abs((q.sample(400)[0] as number) - 10) < 1e-3, 'gone after 400 ms')
  t.equal(q.reconcile([500], 1, 3), 490, 'a 490-unit correction')
  t.equal(q.sample(400)[0], 500, 'snapped: shown at once')
  t.equal(q.snaps, 1)
  const r = linePredictor({ smoothMs: 0 })
  r.advance(0)
  r.reconcile([0], 0, 1)
  r.reconcile([5], 0, 2)
  t.equal(r.sample(0)[0], 5, 'smoothMs 0: corrections shown at once')
})

t.test('display interpolates within a local tick; only the smooth components', async (t) => {
  // State [x, counter]: counter is discrete (not smoothed), x moves 1 per tick.
  const step: StepFn = (s, input, dt) => [(s[0] as number) + (input[0] as number) * dt, (s[1] as number) + 1]
  const p = new InputPredictor({ tickHz: 10, step, state: [0, 0], input: [10], smooth: [0] })
  t.same(Array.from(p.sample(0)), [0, 1], 'tick 1 starts: x at its start, counter as predicted')
  t.same(Array.from(p.sample(25)), [0.25, 1], 'a quarter through')
  t.same(Array.from(p.sample(100)), [1, 2], 'tick 2 starts where tick 1 ended')
  const out = new Float64Array(2)
  t.equal(p.sample(150, out), out, 'writes into out')
  t.same(Array.from(out), [1.5, 2])
  t.equal(p.tick, 2)
})

t.test('bounded: at most maxTicks pending, and per advance', async (t) => {
  const p = linePredictor({ maxTicks: 8 })
  p.record(1, [10])
  t.equal(p.advance(0), 1)
  t.equal(p.advance(9900), 8, 'a 10 s pause steps 8 ticks, not 99')
  t.equal(p.tick, 100, 'the tick count keeps to the clock')
  t.equal(p.pendingTicks, 8)
  for (let j = 101; j <= 300; j++) p.advance((j - 1) * 100)
  t.equal(p.pendingTicks, 8, 'the ring never holds more')
  t.equal(p.reconcile([0], 0, 7), 0, 'first reconcile: seq 1 not applied yet')
  t.equal(x(p), 8, 'replays only the 8 newest ticks')
  t.equal(PREDICTOR_DEFAULTS.maxSeconds, 2)
  t.equal(new InputPredictor({ tickHz: 30, step: line, state: [0], input: [0] }).pendingTicks, 0)
})

t.test('validation, step styles, reset', async (t) => {
  t.throws(() => linePredictor({ tickHz: -1 }), /tickHz must be a finite number > 0, got -1/)
  t.throws(() => linePredictor({ step: 3 as unknown as StepFn }), /step must be a function/)
  t.throws(() => linePredictor({ state: [] }), /state must be a non-empty array/)
  t.throws(() => linePredictor({ smooth: [1] }), /smooth: 1 is not a state index in \[0, 0\]/)
  t.throws(() => linePredictor({ smoothMs: -5 }), /smoothMs must be a number >= 0/)
  t.throws(() => linePredictor({ maxTicks: 0 }), /maxTicks must be an integer >= 1/)
  const p = linePredictor()
  p.record(5, [1])
  t.throws(() => p.record(5, [1]), /seq must be an integer greater than the last recorded \(5\), got 5/)
  t.throws(() => p.record(6, [1, 2]), /input must have 1 values, got 2/)
  t.throws(() => p.reconcile([1, 2], 1, 1), /serverState must have 1 values/)
  t.throws(() => p.advance(Number.NaN), /nowMs must be a finite number/)
  const bad = linePredictor({ step: () => [1, 2] })
  t.throws(() => bad.advance(0), /step returned 2 values, expected 1/)
  const fresh = linePredictor({ step: (s, i, dt) => [(s[0] as number) + (i[0] as number) * dt] })
  fresh.record(1, [10])
  fresh.advance(0)
  fresh.advance(100)
  t.equal(x(fresh), 2, 'a step that returns a new array')
  fresh.reset([50])
  t.equal(x(fresh), 50, 'reset to a given state')
  t.equal(fresh.tick, 0)
  t.equal(fresh.pendingTicks, 0)
  fresh.record(1, [10]) // seqs restart after a reset
  fresh.advance(1000)
  t.equal(x(fresh), 51, 'the clock restarts at the next advance')
  fresh.reset()
  t.equal(x(fresh), 0, 'reset to the initial state')
  t.throws(() => fresh.reset([1, 2]), /state must have 1 values/)
})

// ---------------------------------------------------------------------------
// Sessions against the real arena rules over a simulated network.

const HZ = 30
const I = 1000 / HZ
const PER_TICK = AVATAR_SPEED / HZ // 7.33 units per tick at full stick
const MAX_PLAYERS = 8
const SIDE = arenaLayout(MAX_PLAYERS).width
const SEED = 7

/** Where the avatar starts (the room is seeded), and the direction with the most room to move. */
const START = (() => {
  const r = new Room('r', false, arena, MAX_PLAYERS, 300, SEED)
  const seat = r.join(1, 'p')
  if (!seat) throw new Error('no seat')
  return r.world.column('x')[seat.entity] as number
})()
const DIR = START < SIDE / 2 ? 100 : -100
const WALL = DIR > 0 ? SIDE - AVATAR_RADIUS : AVATAR_RADIUS

/** The arena's avatar rules, as a client would write them (mirrors src/games/arena.ts). */
const arenaStep: StepFn = (s, input, dt, out) => {
  let mx = input[0] as number
  let my = input[1] as number
  const len = Math.sqrt(mx * mx + my * my)
  if (len > 100) {
    mx = (mx * 100) / len
    my = (my * 100) / len
  }
  const clamp = (v: number): number => Math.min(SIDE - AVATAR_RADIUS, Math.max(AVATAR_RADIUS, v))
  out[0] = clamp((s[0] as number) + (mx / 100) * AVATAR_SPEED * dt)
  out[1] = clamp((s[1] as number) + (my / 100) * AVATAR_SPEED * dt)
}

interface SessionOptions {
  /** Player's stick at local time ms. */
  stick: (ms: number) => readonly [number, number]
  /** When the client sends: when the stick changes, once per local tick, or every frame. */
  send: 'change' | 'tick' | 'frame'
  durationMs: number
  upMs?: number
  downMs?: number
  /** +- uniform jitter on each message, both ways (delivery stays in order, as on a WebSocket). */
  jitterMs?: number
  /** Server tick n happens at phaseMs + n * I. */
  phaseMs?: number
  /** Positions sent quantized to 0.25 units, as on the wire. */
  quantize?: boolean
  frameMs?: number
  seed?: number
}

interface Reconciled {
  at: number
  tick: number
  acked: number
  server: number
  predicted: number
  correction: number
  unacked: number
  pending: number
}

interface Session {
  recs: Reconciled[]
  frames: { at: number; x: number; serverTick: number }[]
  serverX: Map<number, number>
  finalServer: [number, number]
  predictor: InputPredictor
}

function session(o: SessionOptions): Session {
  const up = o.upMs ?? 50
  const down = o.downMs ?? 50
  const jitter = o.jitterMs ?? 0
  const frameMs = o.frameMs ?? 1000 / 60
  const rnd = mulberry32(o.seed ?? 1)
  const room = new Room('r', false, arena, MAX_PLAYERS, 300, SEED)
  const seat = room.join(1, 'p')
  if (!seat) throw new Error('no seat')
  const xs = room.world.column('x')
  const ys = room.world.column('y')
  const e = seat.entity
  const predictor = new InputPredictor({ tickHz: HZ, step: arenaStep, state: [0, 0], input: [0, 0] })
  type Ev = { at: number; order: number; run: () => void }
  const queue: Ev[] = []
  let order = 0
  const at = (time: number, run: () => void): void => {
    const ev = { at: time, order: order++, run }
    let i = queue.length
    while (i > 0 && ((queue[i - 1] as Ev).at > time || ((queue[i - 1] as Ev).at === time && (queue[i - 1] as Ev).order > ev.order))) i--
    queue.splice(i, 0, ev)
  }
  const noise = (): number => (jitter === 0 ? 0 : (rnd() * 2 - 1) * jitter)
  let lastUp = -Infinity
  let lastDown = -Infinity
  const recs: Reconciled[] = []
  const frames: Session['frames'] = []
  const serverX = new Map<number, number>()
  const q = (v: number): number => (o.quantize ? Math.round(v / 0.25) * 0.25 : v)
  let serverTick = 0

  // Server: ticks 1000, 1001, ... (absolute numbers do not matter).
  const firstTick = 1000
  const tickAt = (n: number): number => (o.phaseMs ?? 5) + (n - firstTick + 1) * I
  const serverStep = (n: number): void => {
    if (tickAt(n) > o.durationMs) return
    at(tickAt(n), () => {
      room.step(1 / HZ, n)
      serverTick = n
      serverX.set(n, xs[e] as number)
      const state: [number, number] = [q(xs[e] as number), q(ys[e] as number)]
      const acked = seat.appliedSeq
      lastDown = Math.max(lastDown, tickAt(n) + down + noise())
      at(lastDown, () => {
        const c = predictor.reconcile(state, acked, n)
        recs.push({ at: lastDown, tick: n, acked, server: state[0], predicted: predictor.state[0] as number, correction: c, unacked: predictor.unackedInputs, pending: predictor.pendingTicks })
      })
      serverStep(n + 1)
    })
  }
  serverStep(firstTick)

  // Client: frames; inputs go up with latency and land in the seat as the network layer puts them there.
  let seq = 0
  let sent: readonly number[] | null = null
  const send = (now: number, stick: readonly [number, number]): void => {
    const s = ++seq
    const values = [stick[0], stick[1]]
    lastUp = Math.max(lastUp, now + up + noise())
    at(lastUp, () => {
      seat.input.set(values)
      seat.inputSeq = s
    })
    predictor.record(s, values)
    sent = values
  }
  for (let n = 0; n * frameMs <= o.durationMs; n++) {
    const now = n * frameMs
    at(now, () => {
      const stick = o.stick(now)
      if (o.send === 'tick') {
        if (predictor.advance(now) > 0) send(now, stick)
      } else if (o.send === 'frame' || sent === null || sent[0] !== stick[0] || sent[1] !== stick[1]) send(now, stick)
      frames.push({ at: now, x: predictor.sample(now)[0] as number, serverTick })
    })
  }
  while (queue.length > 0) (queue.shift() as Ev).run()
  return { recs, frames, serverX, finalServer: [xs[e] as number, ys[e] as number], predictor }
}

/** Full stick towards the far wall between `from` and `to` ms. */
const go = (from: number, to = Infinity) => (ms: number): readonly [number, number] => (ms >= from && ms < to ? [DIR, 0] : [0, 0])

t.test('arena, one input per tick, steady 100 ms RTT: the prediction leads the server by the unacknowledged inputs, exactly', async (t) => {
  const s = session({ stick: go(300), send: 'tick', durationMs: 3000 })
  const moving = s.recs.filter((r) => r.at > 600 && Math.abs(r.predicted - WALL) > 1)
  t.ok(moving.length > 50, `${moving.length} STATEs while moving`)
  let worstLead = 0
  let worstCorr = 0
  for (const r of moving) {
    worstLead = Math.max(worstLead, Math.abs(Math.abs(r.predicted - r.server) - r.pending * PER_TICK))
    worstCorr = Math.max(worstCorr, r.correction)
  }
  t.ok(worstLead < 1e-6, `|predicted - server| = pending ticks x ${PER_TICK.toFixed(3)} (worst error ${worstLead})`)
  t.ok(worstCorr < 1e-6, `no correction at all (worst ${worstCorr})`)
  const pending = new Set(moving.map((r) => r.pending))
  t.ok([...pending].every((n) => n >= 2 && n <= 3), `2 or 3 ticks in flight over 100 ms RTT at 30 Hz (${[...pending].join(', ')})`)
  // Each input is sent as a local tick starts and is in effect from the next one:
  // the unacknowledged inputs are the pending ticks' plus the one just sent.
  t.ok(moving.every((r) => r.unacked === r.pending + 1), 'unacknowledged inputs = pending ticks + the newest')
  // The avatar answers at once: the display moves within a few local ticks of the key press, the server ~100 ms later.
  const x0 = (s.frames.filter((f) => f.at < 300).at(-1) as { x: number }).x
  const pressed = s.frames.filter((f) => f.at >= 300 && f.at <= 300 + 3 * I)
  t.ok(pressed.some((f) => Math.abs(f.x - x0) > 1), `display moved within 3 ticks (${pressed.map((f) => (f.x - x0).toFixed(2)).join(', ')})`)
  const serverMoved = s.recs.find((r) => Math.abs(r.server - START) > 0.5) as Reconciled
  t.ok(serverMoved.at > 300 + 3 * I, `while the server's first move reached the client at ${serverMoved.at.toFixed(0)} ms`)
})

t.test('arena, inputs sent on change, steady latency: held inputs predicted without corrections; the wall', async (t) => {
  // Right for 1.2 s, stop, right again until the end: runs into the wall.
  const stick = (ms: number): readonly [number, number] => ((ms >= 200 && ms < 1400) || ms >= 1600 ? [DIR, 0] : [0, 0])
  const s = session({ stick, send: 'change', durationMs: 8000, phaseMs: 11 })
  const corr = s.recs.filter((r) => r.correction > 1e-9)
  t.ok(corr.length <= 3, `corrections only when the input changed (${corr.length}: ${corr.map((r) => r.correction.toFixed(2)).join(', ')})`)
  t.ok(corr.every((r) => r.correction <= PER_TICK + 1e-6), 'each at most one tick of motion (the client cannot know the server\'s tick phase)')
  const held = s.recs.filter((r) => r.at > 600 && r.at < 1300)
  t.ok(held.length > 15 && held.every((r) => r.correction < 1e-9 && r.unacked === 0), 'while held: no unacked input, no correction')
  t.ok(held.every((r) => Math.abs(Math.abs(r.predicted - r.server) - r.pending * PER_TICK) < 1e-6), 'prediction = server + pending ticks of motion')
  t.ok(held.every((r) => r.pending >= 3 && r.pending <= 4), 'leading by the round trip')
  const wall = WALL
  t.equal(s.finalServer[0], wall, 'the server stopped at the wall')
  t.equal(s.predictor.state[0], wall, 'so did the prediction')
  const atWall = s.recs.filter((r) => r.server === wall)
  t.ok(atWall.length > 10 && atWall.every((r) => r.correction < 1e-9 && r.predicted === wall), 'no overshoot, no correction at the wall')
})

t.test('arena, +-15 ms jitter both ways, inputs every frame, quantized positions: bounded corrections, smooth display', async (t) => {
  const s = session({ stick: go(300, 2300), send: 'frame', durationMs: 4000, jitterMs: 15, quantize: true, seed: 9 })
  const during = s.recs.filter((r) => r.at > 600 && r.at < 2300)
  const worst = Math.max(...during.map((r) => r.correction))
  t.ok(worst <= 2 * PER_TICK, `corrections at most two ticks of motion (worst ${worst.toFixed(2)})`)
  const big = during.filter((r) => r.correction > 0.5).length
  t.ok(big < during.length / 2, `most STATEs confirm the prediction up to quantization (${big} of ${during.length} corrected by > 0.5)`)
  // Display while holding right: every frame moves forward, near the constant speed.
  const frames = s.frames.filter((f) => f.at > 700 && f.at < 2250)
  let backwards = 0
  let worstStep = 0
  const ideal = AVATAR_SPEED / 60
  for (let i = 1; i < frames.length; i++) {
    const d = (Math.sign(DIR) * ((frames[i] as { x: number }).x - (frames[i - 1] as { x: number }).x))
    if (d < 0) backwards++
    worstStep = Math.max(worstStep, Math.abs(d - ideal))
  }
  t.equal(backwards, 0, 'the display never moves backwards')
  t.ok(worstStep < ideal, `per-frame step within ${ideal.toFixed(2)} +- ${worstStep.toFixed(2)} units`)
  // After release everything settles on the server's final position.
  const most = Math.max(...during.map((r) => r.pending))
  t.ok(most >= 2 && most <= 5, `pending ticks bounded by the round trip plus jitter (at most ${most})`)
  t.ok(Math.abs((s.predictor.state[0] as number) - s.finalServer[0]) <= 0.125, 'converged on the server (to the quantum)')
  t.ok(Math.abs((s.predictor.sample(4400)[0] as number) - s.finalServer[0]) <= 0.125, 'and so has the display')
})
