/**
 * Property test of delta replication: for random entity churn and movement,
 * frames delayed in flight, acks delayed, ticks skipped and baselines expired,
 * and every ack pattern PROTOCOL.md §6 allows (every frame; sparse, at least
 * every ackEvery frames with inputs carrying acks in between; partial, of an
 * older received tick), a client that applies exactly what was sent always
 * holds the server's visible state for the tick it applied, and a client that
 * acks at least every ackEvery frames never deadlocks the window.
 */
import t, { type Test } from 'tap'
import { MsgType, ackEvery, decodeServerMessage, type FieldSpec } from '../proto/index.js'
import { EntityTable } from '../src/client/table.js'
import { AckResult, FullReason, RoomReplicator, encodeBufferBytes, maxFrameBytes, type Viewer } from '../src/replicate/replicator.js'
import { Grid } from '../src/sim/grid.js'
import { mulberry32 } from '../src/sim/random.js'
import { World } from '../src/sim/world.js'

const FIELDS: FieldSpec[] = [
  { name: 'x', quantum: 0.5 },
  { name: 'y', quantum: 0.5 },
  { name: 'hp', quantum: 1 },
]
const SIZE = 1000

interface Client {
  viewer: Viewer
  table: EntityTable
  inbox: Uint8Array[]
  acks: { at: number; tick: number }[]
  /** What the server's visible state was for each sent tick. */
  expected: Map<number, Map<number, number[]>>
  paused: number
  /** How it acks (PROTOCOL.md §6): every frame, sparse (ackEvery), or partial (sometimes an older received tick). */
  mode: AckMode
  /** Frames applied since its last ack, and the ticks applied since then. */
  sinceAck: number
  unacked: number[]
}

/** Viewers whose id ring grew past its first stride (32) during the runs. */
let grown = 0

type AckMode = 'every' | 'sparse' | 'partial'
const MODES: AckMode[] = ['every', 'sparse', 'partial']

/**
 * What a viewer should see, computed independently of the replicator: its own
 * cell, then the 4 edge neighbours, then the 4 corners, each cell's entities by
 * ascending id, up to `max`; its own entity always in (replacing the last one
 * if the cap is reached).
 */
function oracle(world: World, own: number, cellSize: number, max: number): number[] {
  const xs = world.column('x')
  const ys = world.column('y')
  const cols = Math.ceil(SIZE / cellSize)
  const cellOf = (e: number) => {
    const cx = Math.min(cols - 1, Math.max(0, Math.floor((xs[e] as number) / cellSize)))
    const cy = Math.min(cols - 1, Math.max(0, Math.floor((ys[e] as number) / cellSize)))
    return [cx, cy] as const
  }
  const [ox, oy] = cellOf(own)
  const order = [[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [-1, -1], [1, -1], [-1, 1], [1, 1]]
  const out: number[] = []
  for (const [dx, dy] of order) {
    for (let e = 0; e < world.capacity && out.length < max; e++) {
      if (world.alive[e] !== 1) continue
      const [cx, cy] = cellOf(e)
      if (cx === ox + (dx as number) && cy === oy + (dy as number)) out.push(e)
    }
  }
  if (!out.includes(own)) {
    if (out.length === max) out.pop()
    out.push(own)
  }
  return out
}

interface Shape {
  capacity: number
  viewers: number
  initial: number
}

function run(seed: number, ticks: number, t: Test, shape: Shape): { full: Record<number, number>; frames: number; skipped: number; acks: number; reads: number } {
  const rnd = mulberry32(seed)
  const H = 8 + Math.floor(rnd() * 16)
  const W = 2 + Math.floor(rnd() * (H - 3))
  const maxVisible = 8 + Math.floor(rnd() * 40)
  const world = new World(shape.capacity, ['x', 'y', 'hp'])
  const cellSize = 100 + rnd() * 250
  const grid = new Grid(world, 'x', 'y', SIZE, SIZE, cellSize)
  const rep = new RoomReplicator(world, grid, FIELDS, { historyTicks: H, ackWindow: W, maxVisible })
  const xs = world.column('x')
  const ys = world.column('y')
  const hp = world.column('hp')
  const place = (e: number) => {
    xs[e] = rnd() * SIZE
    ys[e] = rnd() * SIZE
    hp[e] = Math.floor(rnd() * 100)
  }
  for (let i = 0; i < shape.initial; i++) place(world.spawn())
  const clients: Client[] = []
  for (let i = 0; i < shape.viewers; i++) {
    const e = world.spawn()
    place(e)
    const mode = MODES[i % MODES.length] as AckMode
    clients.push({ viewer: rep.newViewer(e), table: new EntityTable(FIELDS, H + 2), inbox: [], acks: [], expected: new Map(), paused: 0, mode, sinceAck: 0, unacked: [] })
  }
  const owned = new Set(clients.map((c) => c.viewer.entity))
  const out = new Uint8Array(encodeBufferBytes(maxVisible, FIELDS.length))
  const full: Record<number, number> = { 0: 0, 1: 0, 2: 0 }
  let frames = 0
  let skipped = 0
  let badAcks = 0
  let acksSent = 0
  let applied = 0
  const every = ackEvery(W)

  for (let tick = 1; tick <= ticks; tick++) {
    // Churn: move, change, despawn, spawn (ids get reused with a new generation).
    for (let e = 0; e < world.capacity; e++) {
      if (world.alive[e] !== 1) continue
      const r = rnd()
      if (r < 0.5) {
        xs[e] = Math.min(SIZE - 1, Math.max(0, (xs[e] as number) + (rnd() - 0.5) * 40))
        ys[e] = Math.min(SIZE - 1, Math.max(0, (ys[e] as number) + (rnd() - 0.5) * 40))
      } else if (r < 0.55) hp[e] = Math.floor(rnd() * 100)
      else if (r < 0.57 && !owned.has(e)) world.despawn(e)
      else if (r < 0.58) xs[e] = rnd() * SIZE // teleport: big deltas
    }
    for (let k = 0; k < 2; k++) if (rnd() < 0.5) {
      const e = world.spawn()
      if (e >= 0) place(e)
    }
    grid.rebuild()
    rep.snapshot(tick)

    for (const c of clients) {
      // Acks that reached the server by now.
      while (c.acks.length > 0 && (c.acks[0] as { at: number }).at <= tick) {
        const a = c.acks.shift() as { tick: number }
        if (c.viewer.ack(a.tick) !== AckResult.OK) badAcks++
      }
      // A client that has read and acked per the rule everything it was sent must be sendable again.
      if (c.mode !== 'partial' && c.inbox.length === 0 && c.acks.length === 0 && !c.viewer.canSend()) {
        t.fail(`seed ${seed}: ${c.mode} client deadlocked: ${c.viewer.inFlight} unacked, window ${W}, ackEvery ${every}`)
        return { full, frames, skipped, acks: acksSent, reads: applied }
      }
      if (!c.viewer.canSend() || rnd() < 0.1) {
        skipped++
        continue // flow control, or a skip as under socket backpressure
      }
      const len = rep.encode(c.viewer, 0, out)
      if (len > maxFrameBytes(maxVisible, FIELDS.length)) t.fail(`frame of ${len} bytes over the bound`)
      full[c.viewer.lastFull] = (full[c.viewer.lastFull] ?? 0) + 1
      frames++
      c.inbox.push(out.slice(0, len))
      // The truth for this tick, from the world itself (not from the replicator).
      const truth = new Map<number, number[]>()
      for (const id of oracle(world, c.viewer.entity, cellSize, maxVisible)) {
        truth.set(id, [xs, ys, hp].map((col, f) => Math.round((col[id] as number) / (FIELDS[f] as FieldSpec).quantum)))
      }
      c.expected.set(tick, truth)
    }

    for (const c of clients) {
      // The client sometimes stops reading for a while (longer than the history: baselines expire).
      if (c.paused > 0) {
        c.paused--
        continue
      }
      if (rnd() < 0.02) c.paused = Math.floor(rnd() * 2 * H)
      const reads = Math.floor(rnd() * 3)
      for (let i = 0; i < reads && c.inbox.length > 0; i++) {
        const msg = decodeServerMessage(c.inbox.shift() as Uint8Array)
        if (msg.type !== MsgType.STATE) throw new Error('not a STATE')
        c.table.apply(msg)
        const want = c.expected.get(msg.tick)
        const got = new Map([...c.table.entities].map(([id, v]) => [id, [...v]]))
        if (!want || JSON.stringify([...got].sort()) !== JSON.stringify([...want].sort())) {
          t.fail(`seed ${seed}: client table differs from the server at tick ${msg.tick}`, { got: [...got], want: want && [...want] })
          return { full, frames, skipped, acks: acksSent, reads: applied }
        }
        c.expected.delete(msg.tick)
        applied++
        c.sinceAck++
        c.unacked.push(msg.tick)
        // 'every' acks each frame; 'sparse' when ackEvery frames are unacked, or when an input happens to
        // go (it carries the newest tick); 'partial' like sparse, but an input sometimes carries an older
        // received tick (allowed: any sent tick after the acked one).
        const input = rnd() < 0.2
        let ack = -1
        if (c.mode === 'every' || c.sinceAck >= every || input) ack = msg.tick
        if (c.mode === 'partial' && input && rnd() < 0.5) ack = c.unacked[Math.floor(rnd() * c.unacked.length)] as number
        if (ack >= 0) {
          c.acks.push({ at: tick + Math.floor(rnd() * 4), tick: ack })
          acksSent++
          if (ack === msg.tick) {
            c.sinceAck = 0
            c.unacked.length = 0
          } else c.unacked = c.unacked.filter((x) => x > ack)
        }
      }
    }
  }
  t.equal(badAcks, 0, `seed ${seed}: every ack of an applied tick is accepted`)
  for (const c of clients) if (c.viewer.stride > 32) grown++
  return { full, frames, skipped, acks: acksSent, reads: applied }
}

t.test('clients equal the server visible state under churn, delays, skips and expiry', async (t) => {
  const totals = { frames: 0, skipped: 0, join: 0, expired: 0, delta: 0, acks: 0, reads: 0 }
  // Small rooms, and crowded ones: many viewers in distinct cells (the neighbour-list pool must grow),
  // and cells fuller than max-visible (the cap cuts a viewer's own cell).
  const shapes: Shape[] = [
    { capacity: 64, viewers: 3, initial: 40 },
    { capacity: 400, viewers: 40, initial: 300 },
  ]
  for (let seed = 1; seed <= 30; seed++) {
    const r = run(seed, seed <= 24 ? 400 : 150, t, shapes[seed <= 24 ? 0 : 1] as Shape)
    totals.frames += r.frames
    totals.skipped += r.skipped
    totals.acks += r.acks
    totals.reads += r.reads
    totals.join += r.full[FullReason.JOIN] ?? 0
    totals.expired += r.full[FullReason.BASELINE_EXPIRED] ?? 0
    totals.delta += r.full[FullReason.NONE] ?? 0
  }
  // The scenario must actually exercise every path, or the property proves little.
  t.ok(totals.delta > 1000, `deltas sent: ${totals.delta}`)
  t.ok(totals.expired > 10, `full states after an expired baseline: ${totals.expired}`)
  t.ok(totals.skipped > 100, `frames skipped: ${totals.skipped}`)
  t.ok(grown > 0, `${grown} viewers grew their id ring mid-run (crowded cells)`)
  // A third of the clients ack every frame; the rest far fewer: sparse patterns were exercised.
  t.ok(totals.acks < 0.85 * totals.reads, `acks ${totals.acks} for ${totals.reads} frames applied`)
  // Until its first ack arrives a client gets full states (it has no baseline yet).
  t.ok(totals.join >= 24 * 3 + 6 * 40, `full states before a first ack: ${totals.join}`)
})

t.test('a client table refuses frames it cannot apply', async (t) => {
  const table = new EntityTable(FIELDS, 4)
  t.throws(() => table.apply({ tick: 5, baseTick: 3, inputSeq: 0, removed: [], changed: [], created: [] }), { message: /does not have/ })
  table.apply({ tick: 1, baseTick: 0, inputSeq: 0, removed: [], changed: [], created: [1, 10, 20, 30] })
  t.equal(table.get(1, 'x'), 5)
  t.throws(() => table.apply({ tick: 2, baseTick: 1, inputSeq: 0, removed: [9], changed: [], created: [] }), { message: /removes unknown/ })
  t.throws(() => table.apply({ tick: 2, baseTick: 1, inputSeq: 0, removed: [], changed: [9, 1, 2], created: [] }), { message: /changes unknown/ })
  t.throws(() => table.apply({ tick: 2, baseTick: 1, inputSeq: 0, removed: [], changed: [1, 3, 2], created: [] }), { message: /ends early/ })
  t.throws(() => table.apply({ tick: 2, baseTick: 1, inputSeq: 0, removed: [], changed: [], created: [1, 2] }), { message: /not a multiple/ })
  t.throws(() => table.apply({ tick: 1, baseTick: 1, inputSeq: 0, removed: [], changed: [], created: [] }), { message: /not newer/ })
  t.throws(() => table.apply({ tick: 2, baseTick: 0, inputSeq: 0, removed: [], changed: [], created: [4, 1, 1, 1, 0, 1, 1, 1] }), { message: /must ascend \(gap 0\)/ })
  t.throws(() => table.apply({ tick: 2, baseTick: 0, inputSeq: 0, removed: [], changed: [], created: [-1, 1, 1, 1] }), { message: /must ascend/ })
})

t.test('Viewer.ack validates ticks against what was sent', async (t) => {
  const world = new World(4, ['x', 'y', 'hp'])
  const grid = new Grid(world, 'x', 'y', 100, 100, 50)
  const rep = new RoomReplicator(world, grid, FIELDS, { historyTicks: 8, ackWindow: 2, maxVisible: 4 })
  const e = world.spawn()
  grid.rebuild()
  const v = rep.newViewer(e)
  const out = new Uint8Array(rep.encodeBufferBytes)
  rep.snapshot(1)
  rep.encode(v, 0, out)
  rep.snapshot(2)
  t.equal(v.ack(2), AckResult.UNKNOWN_TICK, 'tick 2 was never sent')
  t.equal(v.ack(1), AckResult.OK)
  t.equal(v.ack(1), AckResult.OK, 'repeating an ack is fine')
  t.equal(v.ack(0), AckResult.REGRESSED)
  t.equal(v.inFlight, 0)
  rep.encode(v, 0, out)
  rep.snapshot(3)
  rep.encode(v, 0, out)
  t.equal(v.inFlight, 2)
  t.equal(v.canSend(), false, 'window of 2 is full')
  t.equal(v.ack(2), AckResult.OK)
  t.equal(v.canSend(), false, 'stays paused until everything sent is acked')
  t.equal(v.ack(3), AckResult.OK)
  t.equal(v.canSend(), true, 'resumes once caught up')
})
