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
import type { Room, Seat } from '../../src/sim/room.js'
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
  const run = new ScenarioRun(spec, opts)
  for (let k = 0; k < opts.warmupTicks + opts.measuredTicks; k++) run.tick(k)
  return run.result()
}

class ScenarioRun {
  readonly #spec: ScenarioSpec
  readonly #opts: RunOptions
  readonly #room: Room
  readonly #rep: RoomReplicator
  readonly #viewers: Viewer[]
  readonly #clients: SampledClient[] = []
  /** Output buffer per player: the sampled clients' own, else one shared buffer as on the server. */
  readonly #outs: Uint8Array[]
  readonly #lens: Int32Array
  readonly #random: () => number
  readonly #snapshotNs: Float64Array
  readonly #encodeNs: Float64Array
  readonly #totals = new Totals()
  /** Scratch for one player's area of interest. */
  readonly #visible: number[] = []

  constructor(spec: ScenarioSpec, opts: RunOptions) {
    this.#spec = spec
    this.#opts = opts
    this.#room = fullRoom(spec.players, spec.cellSize, opts.seed)
    this.#rep = new RoomReplicator(this.#room.world, this.#room.grid, arena.fields, opts.replicator)
    this.#viewers = this.#room.seats.map((s) => this.#rep.newViewer(s.entity))
    const shared = new Uint8Array(this.#rep.encodeBufferBytes)
    this.#outs = this.#viewers.map(() => shared)
    const stride = Math.max(1, Math.floor(spec.players / opts.samplePlayers))
    for (let i = 0; i < spec.players; i += stride) {
      const table = new EntityTable(arena.fields, opts.replicator.historyTicks)
      const client = { index: i, table, out: new Uint8Array(this.#rep.encodeBufferBytes) }
      this.#clients.push(client)
      this.#outs[i] = client.out
    }
    this.#lens = new Int32Array(spec.players)
    this.#random = mulberry32(opts.seed)
    this.#snapshotNs = new Float64Array(opts.measuredTicks)
    this.#encodeNs = new Float64Array(opts.measuredTicks)
  }

  /** Runs tick number `k` of the scenario (0-based; the first `warmupTicks` are not recorded). */
  tick(k: number): void {
    const opts = this.#opts
    const tick = opts.firstTick + k
    playTick(this.#room, tick, opts.tickHz, this.#random)
    this.#prepareViewers(tick - this.#spec.ackLag)
    const { snapshotNs, encodeNs } = this.#sendTick(tick)
    const measuring = k >= opts.warmupTicks
    // The naive encoders run during the warm-up too, so they are compiled when measured.
    const { fullStates, deltas } = this.#receiveTick(tick, measuring)
    const json = timeEach(fullStates, (v) => JSON.stringify(v).length) // ASCII only: length = bytes
    const msgpack = timeEach(deltas, (v) => pack(v).length)
    if (!measuring) return
    this.#snapshotNs[k - opts.warmupTicks] = snapshotNs
    this.#encodeNs[k - opts.warmupTicks] = encodeNs
    const t = this.#totals
    t.jsonBytes += json.bytes
    t.jsonNs += json.ns
    t.msgpackBytes += msgpack.bytes
    t.msgpackNs += msgpack.ns
    t.naiveEncodes += this.#clients.length
    this.#recordFrames()
  }

  /** The clients' acks of tick `ackTick` arrive (once it was sent), then the server's flow-control check, as before a send. */
  #prepareViewers(ackTick: number): void {
    for (const v of this.#viewers) {
      if (ackTick >= this.#opts.firstTick && v.ack(ackTick) !== AckResult.OK) throw new Error(`ack of tick ${ackTick} refused`)
      if (!v.canSend()) throw new Error(`viewer of entity ${v.entity} paused by its ack window`)
    }
  }

  /** The timed part, as in the server's sendTick: snapshot, then one frame per player. */
  #sendTick(tick: number): { snapshotNs: number; encodeNs: number } {
    const rep = this.#rep
    const viewers = this.#viewers
    const seats = this.#room.seats
    const outs = this.#outs
    const lens = this.#lens
    const t0 = process.hrtime.bigint()
    rep.snapshot(tick)
    const t1 = process.hrtime.bigint()
    for (let i = 0; i < viewers.length; i++) {
      lens[i] = rep.encode(viewers[i] as Viewer, (seats[i] as Seat).appliedSeq, outs[i] as Uint8Array)
    }
    const t2 = process.hrtime.bigint()
    return { snapshotNs: Number(t1 - t0), encodeNs: Number(t2 - t1) }
  }

  /** Each sampled client applies its frame and is checked against the server; returns the naive encoders' inputs. */
  #receiveTick(tick: number, measuring: boolean): { fullStates: object[]; deltas: object[] } {
    const fullStates: object[] = []
    const deltas: object[] = []
    for (const c of this.#clients) {
      const bytes = c.out.subarray(0, this.#lens[c.index])
      const frame = decodeState(bytes)
      c.table.apply(frame)
      const visible = neighborhood(this.#room.grid, (this.#room.seats[c.index] as Seat).entity, this.#visible)
      if (visible.length > this.#opts.replicator.maxVisible) {
        throw new Error(`player ${c.index} sees ${visible.length} entities, over maxVisible: the bench assumes no cap`)
      }
      checkTable(c.table, tick, visible, this.#rep, `player ${c.index}`)
      if (measuring) addSample(this.#totals, bytes, frame)
      fullStates.push(plainFullState(c.table))
      deltas.push(plainDelta(frame, c.table))
    }
    return { fullStates, deltas }
  }

  /** Frame sizes, visible counts and full states of every player this tick. */
  #recordFrames(): void {
    const t = this.#totals
    const seats = this.#room.seats
    for (let i = 0; i < seats.length; i++) {
      t.frameBytes += this.#lens[i] as number
      t.visible += neighborhood(this.#room.grid, (seats[i] as Seat).entity, this.#visible).length
      if ((this.#viewers[i] as Viewer).lastFull !== FullReason.NONE) t.fullFrames++
    }
    t.frames += seats.length
  }

  result(): ScenarioResult {
    const { players } = this.#spec
    const t = this.#totals
    const perFrame = (x: number): number => x / t.sampleFrames
    const snapshotNs = this.#snapshotNs
    const encodeNs = this.#encodeNs
    return {
      ...this.#spec,
      measuredTicks: this.#opts.measuredTicks,
      visibleAvg: t.visible / t.frames,
      bytesPerPlayerTick: t.frameBytes / t.frames,
      fullFrames: t.fullFrames,
      sample: {
        players: this.#clients.length,
        frames: t.sampleFrames,
        bytesPerFrame: {
          header: perFrame(t.header),
          removed: perFrame(t.removed),
          changed: perFrame(t.changed),
          created: perFrame(t.created),
        },
        entitiesPerFrame: {
          changed: perFrame(t.changedEntities),
          created: perFrame(t.createdEntities),
          removed: perFrame(t.removedEntities),
        },
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
