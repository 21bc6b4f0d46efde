/**
 * One benchmark scenario: a full room of the reference game ticking as on the
 * server (step, snapshot, one STATE frame per player), clients acking a fixed
 * number of ticks behind, with a sample of clients decoding and checking
 * every frame they get.
 */
import { pack } from 'msgpackr'
import { EntityTable } from '../../src/client/table.js'
import { arena } from '../../src/games/arena.js'
import { AckResult, FullReason, RoomReplicator, type ReplicatorOptions, type Viewer } from '../../src/replicate/replicator.js'
import { mulberry32 } from '../../src/sim/random.js'
import type { Seat } from '../../src/sim/room.js'
import { MsgType, decodeServerMessage, type StateFrame } from '../../proto/index.js'
import { checkTable, frameSections } from './frame.js'
import { plainDelta, plainFullState } from './plain.js'
import { fullRoom, neighborhood, playTick } from './room.js'
import { summarize, type Summary } from './stats.js'

export interface ScenarioSpec {
  readonly name: string
  readonly players: number
  /** Clients ack tick `t - ackLag` before tick t is encoded, so frames are deltas against it. */
  readonly ackLag: number
  readonly cellSize: number
}

export interface RunOptions {
  readonly replicator: ReplicatorOptions
  readonly tickHz: number
  readonly firstTick: number
  readonly warmupTicks: number
  readonly measuredTicks: number
  /** Players whose frames are decoded, checked and broken down (spread evenly over the room). */
  readonly samplePlayers: number
  readonly seed: number
}

/** A naive encoding's average size and time for one player's tick. */
export interface NaiveFigure {
  readonly bytes: number
  readonly nsPerEncode: number
}

export interface ScenarioResult extends ScenarioSpec {
  readonly measuredTicks: number
  /** Entities per frame, averaged over all players and measured ticks. */
  readonly visibleAvg: number
  /** Mean STATE frame size over all players and measured ticks. */
  readonly bytesPerPlayerTick: number
  /** Frames that were full states instead of deltas during the measured ticks. */
  readonly fullFrames: number
  readonly sample: {
    readonly players: number
    readonly frames: number
    /** Mean bytes per frame of each part (each list with its array header). */
    readonly bytesPerFrame: { readonly header: number; readonly removed: number; readonly changed: number; readonly created: number }
    readonly entitiesPerFrame: { readonly changed: number; readonly created: number; readonly removed: number }
  }
  readonly bytesPerChangedEntity: { readonly changedList: number; readonly wholeFrame: number }
  readonly cpu: {
    readonly snapshotUsPerTick: Summary
    readonly snapshotNsPerPlayer: Summary
    readonly encodeNsPerPlayer: Summary
    readonly totalNsPerPlayer: Summary
  }
  readonly json: NaiveFigure
  readonly msgpackr: NaiveFigure
}

interface SampledClient {
  readonly index: number
  readonly table: EntityTable
  /** This player's own output buffer, so its frame survives the encode loop. */
  readonly out: Uint8Array
}

/** Running sums over the measured ticks. */
class Totals {
  frameBytes = 0
  frames = 0
  visible = 0
  fullFrames = 0
  sampleFrames = 0
  header = 0
  removed = 0
  changed = 0
  created = 0
  changedEntities = 0
  createdEntities = 0
  removedEntities = 0
  jsonBytes = 0
  jsonNs = 0
  msgpackBytes = 0
  msgpackNs = 0
  naiveEncodes = 0
}

export function runScenario(spec: ScenarioSpec, opts: RunOptions): ScenarioResult {
  const room = fullRoom(spec.players, spec.cellSize, opts.seed)
  const rep = new RoomReplicator(room.world, room.grid, arena.fields, opts.replicator)
  const seats = room.seats
  const viewers = seats.map((s) => rep.newViewer(s.entity))
  const stride = Math.max(1, Math.floor(spec.players / opts.samplePlayers))
  const clients: SampledClient[] = []
  for (let i = 0; i < seats.length; i += stride) {
    clients.push({ index: i, table: new EntityTable(arena.fields, opts.replicator.historyTicks), out: new Uint8Array(rep.maxFrameBytes) })
  }
  // Everyone else shares one buffer, as on the server.
  const shared = new Uint8Array(rep.maxFrameBytes)
  const outs: Uint8Array[] = seats.map(() => shared)
  for (const c of clients) outs[c.index] = c.out
  const lens = new Int32Array(seats.length)
  const random = mulberry32(opts.seed)
  const snapshotNs = new Float64Array(opts.measuredTicks)
  const encodeNs = new Float64Array(opts.measuredTicks)
  const totals = new Totals()

  for (let k = 0; k < opts.warmupTicks + opts.measuredTicks; k++) {
    const tick = opts.firstTick + k
    playTick(room, tick, opts.tickHz, random)
    prepareViewers(viewers, tick - spec.ackLag, opts.firstTick)

    const t0 = process.hrtime.bigint()
    rep.snapshot(tick)
    const t1 = process.hrtime.bigint()
    for (let i = 0; i < seats.length; i++) lens[i] = rep.encode(viewers[i] as Viewer, (seats[i] as Seat).appliedSeq, outs[i] as Uint8Array)
    const t2 = process.hrtime.bigint()

    const measuring = k >= opts.warmupTicks
    const visible: number[] = []
    const fullStates: object[] = []
    const deltas: object[] = []
    for (const c of clients) {
      const frame = decodeState(c.out.subarray(0, lens[c.index]))
      c.table.apply(frame)
      const seat = seats[c.index] as Seat
      neighborhood(room.grid, seat.entity, visible)
      if (visible.length > opts.replicator.maxVisible) throw new Error(`player ${c.index} sees ${visible.length} entities, over maxVisible: the bench assumes no cap`)
      checkTable(c.table, tick, visible, rep, `player ${c.index}`)
      if (measuring) addSample(totals, c.out.subarray(0, lens[c.index]), frame)
      fullStates.push(plainFullState(c.table))
      deltas.push(plainDelta(frame, c.table))
    }
    const json = timeEach(fullStates, (v) => JSON.stringify(v).length) // ASCII only: length = bytes
    const msgpack = timeEach(deltas, (v) => pack(v).length)
    if (!measuring) continue

    const m = k - opts.warmupTicks
    snapshotNs[m] = Number(t1 - t0)
    encodeNs[m] = Number(t2 - t1)
    for (let i = 0; i < seats.length; i++) {
      totals.frameBytes += lens[i] as number
      totals.visible += neighborhood(room.grid, (seats[i] as Seat).entity, visible).length
      if ((viewers[i] as Viewer).lastFull !== FullReason.NONE) totals.fullFrames++
    }
    totals.frames += seats.length
    totals.jsonBytes += json.bytes
    totals.jsonNs += json.ns
    totals.msgpackBytes += msgpack.bytes
    totals.msgpackNs += msgpack.ns
    totals.naiveEncodes += clients.length
  }
  return result(spec, opts, clients.length, totals, snapshotNs, encodeNs)
}

/** The clients' acks of tick `ackTick` arrive (once it was sent), then the server's flow-control check, as before a send. */
function prepareViewers(viewers: readonly Viewer[], ackTick: number, firstTick: number): void {
  for (const v of viewers) {
    if (ackTick >= firstTick && v.ack(ackTick) !== AckResult.OK) throw new Error(`ack of tick ${ackTick} refused`)
    if (!v.canSend()) throw new Error(`viewer of entity ${v.entity} paused by its ack window`)
  }
}

function decodeState(bytes: Uint8Array): StateFrame {
  const msg = decodeServerMessage(bytes)
  if (msg.type !== MsgType.STATE) throw new Error(`expected a STATE frame, got type ${msg.type}`)
  return msg
}

function addSample(totals: Totals, bytes: Uint8Array, frame: StateFrame): void {
  const s = frameSections(bytes)
  totals.sampleFrames++
  totals.header += s.header
  totals.removed += s.removed
  totals.changed += s.changed
  totals.created += s.created
  totals.removedEntities += frame.removed.length
  totals.createdEntities += frame.created.length / (1 + arena.fields.length)
  totals.changedEntities += countChanged(frame.changed)
}

/** Entities in a flat `id, mask, delta...` list. */
function countChanged(changed: readonly number[]): number {
  let n = 0
  for (let i = 0; i < changed.length; n++) {
    const mask = changed[i + 1] as number
    i += 2
    for (let m = mask; m !== 0; m &= m - 1) i++
  }
  return n
}

/** Runs `encode` (which returns a size in bytes) on every value; total bytes and elapsed ns. */
function timeEach<T>(values: readonly T[], encode: (value: T) => number): { bytes: number; ns: number } {
  let bytes = 0
  const t0 = process.hrtime.bigint()
  for (const v of values) bytes += encode(v)
  return { bytes, ns: Number(process.hrtime.bigint() - t0) }
}

function result(
  spec: ScenarioSpec,
  opts: RunOptions,
  samplePlayers: number,
  t: Totals,
  snapshotNs: Float64Array,
  encodeNs: Float64Array,
): ScenarioResult {
  const players = spec.players
  const perFrame = (x: number): number => x / t.sampleFrames
  return {
    ...spec,
    measuredTicks: opts.measuredTicks,
    visibleAvg: t.visible / t.frames,
    bytesPerPlayerTick: t.frameBytes / t.frames,
    fullFrames: t.fullFrames,
    sample: {
      players: samplePlayers,
      frames: t.sampleFrames,
      bytesPerFrame: { header: perFrame(t.header), removed: perFrame(t.removed), changed: perFrame(t.changed), created: perFrame(t.created) },
      entitiesPerFrame: { changed: perFrame(t.changedEntities), created: perFrame(t.createdEntities), removed: perFrame(t.removedEntities) },
    },
    bytesPerChangedEntity: {
      changedList: t.changed / t.changedEntities,
      wholeFrame: (t.header + t.removed + t.changed + t.created) / t.changedEntities,
    },
    cpu: {
      snapshotUsPerTick: summarize(snapshotNs.map((ns) => ns / 1000)),
      snapshotNsPerPlayer: summarize(snapshotNs.map((ns) => ns / players)),
      encodeNsPerPlayer: summarize(encodeNs.map((ns) => ns / players)),
      totalNsPerPlayer: summarize(snapshotNs.map((ns, i) => (ns + (encodeNs[i] as number)) / players)),
    },
    json: { bytes: t.jsonBytes / t.naiveEncodes, nsPerEncode: t.jsonNs / t.naiveEncodes },
    msgpackr: { bytes: t.msgpackBytes / t.naiveEncodes, nsPerEncode: t.msgpackNs / t.naiveEncodes },
  }
}
