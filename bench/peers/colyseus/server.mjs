/**
 * The Colyseus peer: Colyseus 0.17 (@colyseus/core + @colyseus/ws-transport)
 * with @colyseus/schema state, default settings except the patch rate, which
 * is set to the tick rate. The game is tickwire's own (its Room and arena
 * rules, from the root build in dist/), copied into the schema state after
 * every simulation step, so only the networking differs.
 *
 *   npm run build                          # root: dist/src/sim, dist/src/games, dist/bench/peers
 *   npm --prefix bench/peers/colyseus ci   # this folder's own dependencies
 *   node bench/peers/colyseus/server.mjs --port 9201 --tick-hz 20 --metrics-port 9202
 *
 * Matchmaking: one room type, "arena", maxClients 64, `filterBy(['room'])`
 * and `sortBy({ clients: -1 })`. Quick play is `joinOrCreate('arena', { room: '' })`
 * (the fullest quick-play room with a free seat); a named room is
 * `joinOrCreate('arena', { room: '<id>' })`. Unlike tickwire, a full named
 * room does not refuse: joinOrCreate opens a second room under the same name.
 *
 * Timing (Colyseus's model, kept): the simulation runs on
 * `setSimulationInterval` and patches go out on the room's own patch
 * interval (`this.patchRate`, what the deprecated `setPatchRate` sets), both
 * every 1000 / tick-hz ms and both `setInterval`s, per room.
 *
 * Metrics on --metrics-port (see ../metrics.ts):
 *   peer_tick_duration_seconds   per room: the simulation steps since the
 *                                room's last patch (step + copy into the
 *                                schema) plus that patch (encode + send)
 *   peer_period_busy_seconds     all rooms: that same work summed over each
 *                                tick period of wall time (what one
 *                                process-wide tick of tickwire or ws-json
 *                                would cost)
 */
import { randomInt } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { Room, Server } from '@colyseus/core'
import { WebSocketTransport } from '@colyseus/ws-transport'
import { Room as SimRoom } from '../../../dist/src/sim/room.js'
import { arena, arenaLayout } from '../../../dist/src/games/arena.js'
import { parsePeerArgs } from '../../../dist/bench/peers/cli.js'
import { PeerMetrics, serveMetrics } from '../../../dist/bench/peers/metrics.js'
import { ArenaState, Entity, Player, ROOM_TYPE } from './schema.mjs'

const MAX_PLAYERS_PER_ROOM = 64
/** Grid cell size, world units: tickwire's default --aoi-radius (the arena's collisions use the grid). */
const CELL_SIZE = 300
/** x and y are stored rounded to the arena's quantum (0.25). */
const POSITION_STEPS = 4
const LAYOUT = arenaLayout(MAX_PLAYERS_PER_ROOM)

/** Process-wide state the rooms report into (one game server per process). */
const peer = {
  hz: 20,
  seed: randomInt(1, 0xffffffff),
  /** Rooms created so far: room n is seeded with seed + n, as tickwire's rooms are. */
  roomsCreated: 0,
  ticks: 0,
  patches: 0,
  inputs: 0,
  inputsIgnored: 0,
  /** Seconds of room work (steps and patches) since the last period flush. */
  busy: 0,
  /** @type {PeerMetrics} */
  metrics: new PeerMetrics('Per room: wall time of the simulation steps since its last patch (step + copy into the schema state) plus that patch (encode + send to its clients)'),
}
const periodBusy = peer.metrics.histogram('peer_period_busy_seconds', 'Game work of all rooms (simulation steps and patches) within each tick period of wall time')
let playerIds = 0

export class ArenaRoom extends Room {
  maxClients = MAX_PLAYERS_PER_ROOM
  state = new ArenaState()
  /** @type {SimRoom} */ sim
  /** @type {Map<string, import('../../../dist/src/sim/room.js').Seat>} */ seats = new Map()
  tick = 0
  /** Seconds spent in simulation steps since the last patch. */
  simSeconds = 0
  /** Entity ids currently in `state.entities`. */
  present = new Uint8Array(LAYOUT.capacity)

  onCreate(options) {
    const room = typeof options?.room === 'string' ? options.room : ''
    this.sim = new SimRoom(this.roomId, room === '', arena, MAX_PLAYERS_PER_ROOM, CELL_SIZE, (peer.seed + peer.roomsCreated++) >>> 0)
    this.state.width = LAYOUT.width
    this.state.height = LAYOUT.height
    this.copyWorld()
    // Same period, simulation first: Node runs equal timers in the order they
    // were set, so each patch goes out right after a step (the best phase for
    // Colyseus; set the other way round, every patch would leave just before
    // the step and states would lag a whole tick).
    this.setSimulationInterval(() => this.step(), 1000 / peer.hz)
    this.patchRate = 1000 / peer.hz
    this.onMessage('input', (client, m) => this.input(client, m))
  }

  onJoin(client, options) {
    const name = typeof options?.name === 'string' ? options.name.slice(0, 32) : ''
    const seat = this.sim.join(++playerIds, name)
    if (seat === null) throw new Error('room full')
    this.seats.set(client.sessionId, seat)
    this.state.players.set(client.sessionId, new Player({ entity: seat.entity, seq: 0 }))
    this.copyWorld() // the new avatar goes out with its player, not a step later
  }

  onLeave(client) {
    const seat = this.seats.get(client.sessionId)
    if (seat === undefined) return
    this.seats.delete(client.sessionId)
    this.sim.leave(seat)
    this.state.players.delete(client.sessionId)
  }

  /** `{ seq, mx, my }`: seq increasing from 1, mx and my integers in [-100, 100]; anything else is ignored. */
  input(client, m) {
    const seat = this.seats.get(client.sessionId)
    if (seat === undefined || typeof m !== 'object' || m === null || !isInt(m.seq, 1, 2 ** 31 - 1) || !isInt(m.mx, -100, 100) || !isInt(m.my, -100, 100) || m.seq <= seat.inputSeq) {
      peer.inputsIgnored++
      return
    }
    seat.input[0] = m.mx
    seat.input[1] = m.my
    seat.inputSeq = m.seq
    peer.inputs++
  }

  step() {
    const t0 = performance.now()
    try {
      this.sim.step(1 / peer.hz, ++this.tick)
    } catch (err) {
      process.stderr.write(`colyseus peer: room ${this.roomId} failed: ${err?.stack ?? err}\n`)
      this.setSimulationInterval(undefined)
      this.disconnect(4002)
      return
    }
    this.copyWorld()
    for (const [sessionId, seat] of this.seats) {
      const p = this.state.players.get(sessionId)
      if (p !== undefined) p.seq = seat.appliedSeq
    }
    peer.ticks++
    const s = (performance.now() - t0) / 1000
    this.simSeconds += s
    peer.busy += s
  }

  /** The world into `state.entities`: changed fields only (schema skips equal values), removed entities deleted. */
  copyWorld() {
    const world = this.sim.world
    const { alive, capacity } = world
    const kind = world.column('kind')
    const xs = world.column('x')
    const ys = world.column('y')
    const score = world.column('score')
    const entities = this.state.entities
    const present = this.present
    for (let id = 0; id < capacity; id++) {
      if (alive[id] !== 1) {
        if (present[id] === 1) {
          entities.delete(String(id))
          present[id] = 0
        }
        continue
      }
      let e
      if (present[id] === 1) e = entities.get(String(id))
      else {
        e = new Entity()
        entities.set(String(id), e)
        present[id] = 1
      }
      e.kind = kind[id]
      e.x = Math.round(xs[id] * POSITION_STEPS) / POSITION_STEPS
      e.y = Math.round(ys[id] * POSITION_STEPS) / POSITION_STEPS
      e.score = score[id]
    }
  }

  broadcastPatch() {
    const t0 = performance.now()
    const changed = super.broadcastPatch()
    const s = (performance.now() - t0) / 1000
    peer.metrics.tickDuration.observe(this.simSeconds + s)
    this.simSeconds = 0
    peer.busy += s
    peer.patches++
    return changed
  }
}

function isInt(v, min, max) {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
}

/** Colyseus logs through `console` by default; stdout carries only `listening <port>`. */
const stderrLogger = {
  debug() {},
  trace() {},
  info: (...a) => console.error(...a),
  warn: (...a) => console.error(...a),
  error: (...a) => console.error(...a),
}

/**
 * Starts the peer. Resolves with the bound ports and a `close()` that shuts
 * Colyseus down without exiting (SIGTERM and SIGINT are handled by Colyseus's
 * own graceful shutdown, which exits 0).
 */
export async function startColyseus(opts, { exitOnSignal = true } = {}) {
  peer.hz = opts.tickHz
  const metrics = peer.metrics
  metrics.add({ name: 'peer_ticks_total', help: 'Simulation steps run, summed over rooms', type: 'counter', read: () => peer.ticks })
  metrics.add({ name: 'peer_patches_total', help: 'Patch broadcasts, summed over rooms', type: 'counter', read: () => peer.patches })
  metrics.add({ name: 'peer_players', help: 'Players seated in rooms', type: 'gauge', read: () => players() })
  metrics.add({ name: 'peer_rooms', help: 'Rooms open', type: 'gauge', read: () => rooms.size })
  metrics.add({ name: 'peer_inputs_total', help: 'Inputs accepted', type: 'counter', read: () => peer.inputs })
  metrics.add({ name: 'peer_inputs_ignored_total', help: 'Input messages ignored (malformed, out of range, or an old seq)', type: 'counter', read: () => peer.inputsIgnored })

  /** Live rooms, for the gauges. */
  const rooms = new Set()
  const players = () => {
    let n = 0
    for (const r of rooms) n += r.seats.size
    return n
  }
  class CountedRoom extends ArenaRoom {
    onCreate(options) {
      super.onCreate(options)
      rooms.add(this)
    }
    onDispose() {
      rooms.delete(this)
    }
  }

  const transport = new WebSocketTransport()
  const server = new Server({ transport, greet: false, logger: stderrLogger, gracefullyShutdown: exitOnSignal })
  server.define(ROOM_TYPE, CountedRoom).filterBy(['room']).sortBy({ clients: -1 })
  await server.listen(opts.port, opts.host)
  const metricsServer = opts.metricsPort !== 0 ? await serveMetrics(metrics, opts.metricsPort, opts.host) : null
  server.onShutdown(() => new Promise((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve())))

  // Each tick period, the work all rooms did in it (drift-free schedule).
  const periodMs = 1000 / peer.hz
  const epoch = performance.now()
  let slot = 0
  let timer
  const flush = () => {
    slot++
    periodBusy.observe(peer.busy)
    peer.busy = 0
    const behind = Math.floor((performance.now() - epoch) / periodMs) - slot
    if (behind > 0) slot += behind // a stalled loop: the stall's work was all counted in this period
    timer = setTimeout(flush, Math.max(0, epoch + (slot + 1) * periodMs - performance.now()))
  }
  timer = setTimeout(flush, periodMs)
  server.onBeforeShutdown(() => clearTimeout(timer))

  const address = transport.server?.address()
  const mAddress = metricsServer?.address()
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    metricsPort: typeof mAddress === 'object' && mAddress ? mAddress.port : 0,
    close: () => server.gracefullyShutdown(false),
  }
}

async function main() {
  let opts
  try {
    opts = parsePeerArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`colyseus peer: ${err.message}\n`)
    process.exit(2)
  }
  const server = await startColyseus(opts)
  process.stdout.write(`listening ${server.port}\n`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`colyseus peer: ${err?.stack ?? err}\n`)
    process.exit(1)
  })
}
