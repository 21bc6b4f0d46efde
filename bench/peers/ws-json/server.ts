/**
 * The plain peer: what a developer writes by hand. A `ws` server, JSON text
 * frames, and every tick the full state of each room stringified once and
 * sent to each of its players, with no backpressure handling at all (that is
 * the point of the comparison). The game is tickwire's own (src/sim rooms and
 * placement, src/games/arena rules), so only the networking differs.
 *
 *   node dist/bench/peers/ws-json/server.js --port 9101 --tick-hz 20 --metrics-port 9102
 *
 * Wire format: ./protocol.ts. Command line: ../cli.ts.
 */
import { createServer, type Server } from 'node:http'
import { randomInt } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import { arena, arenaLayout } from '../../../src/games/arena.js'
import { Rooms, type Room, type Seat } from '../../../src/sim/room.js'
import { parsePeerArgs, runPeer, type PeerOptions } from '../cli.js'
import { PeerMetrics, serveMetrics } from '../metrics.js'
import { CLOSE_GOING_AWAY, CLOSE_REFUSED, MAX_CLIENT_MESSAGE, MAX_NAME, MAX_ROOM_ID, type EntityState, type Input, type Welcome } from './protocol.js'

const MAX_PLAYERS_PER_ROOM = 64
/** Grid cell size, world units: tickwire's default --aoi-radius (the arena's collisions use the grid). */
const CELL_SIZE = 300
/** Rooms per process: effectively unbounded, as a hand-written server would be. */
const MAX_ROOMS = 100_000
/** x and y go out rounded to the arena's quantum (0.25), the precision tickwire sends. */
const POSITION_STEPS = 4

export interface WsJsonServer {
  readonly port: number
  readonly metricsPort: number
  /** Closes every player (1001) and both ports. */
  close(): Promise<void>
}

interface Counters {
  ticks: number
  overruns: number
  connections: number
  sentBytes: number
  sentMessages: number
  inputs: number
  inputsIgnored: number
}

export async function startWsJson(opts: PeerOptions): Promise<WsJsonServer> {
  const hz = opts.tickHz
  const dt = 1 / hz
  const periodMs = 1000 / hz
  const layout = arenaLayout(MAX_PLAYERS_PER_ROOM)
  const rooms = new Rooms(arena, { maxPlayersPerRoom: MAX_PLAYERS_PER_ROOM, maxRooms: MAX_ROOMS, cellSize: CELL_SIZE, seed: randomInt(1, 0xffffffff) })
  const n: Counters = { ticks: 0, overruns: 0, connections: 0, sentBytes: 0, sentMessages: 0, inputs: 0, inputsIgnored: 0 }
  let nextPlayer = 0

  const metrics = new PeerMetrics('Wall time of one tick: simulation of every room, JSON.stringify of each room state, ws.send to every player')
  metrics.add({ name: 'peer_ticks_total', help: 'Ticks run', type: 'counter', read: () => n.ticks })
  metrics.add({ name: 'peer_tick_overruns_total', help: 'Ticks that took longer than the tick period', type: 'counter', read: () => n.overruns })
  metrics.add({ name: 'peer_players', help: 'Players seated in rooms', type: 'gauge', read: () => rooms.players })
  metrics.add({ name: 'peer_rooms', help: 'Rooms open', type: 'gauge', read: () => rooms.list.length })
  metrics.add({ name: 'peer_connections_total', help: 'WebSocket connections accepted', type: 'counter', read: () => n.connections })
  metrics.add({ name: 'peer_sent_bytes_total', help: 'WebSocket payload bytes sent (welcome and state)', type: 'counter', read: () => n.sentBytes })
  metrics.add({ name: 'peer_sent_messages_total', help: 'WebSocket messages sent', type: 'counter', read: () => n.sentMessages })
  metrics.add({ name: 'peer_inputs_total', help: 'Inputs accepted', type: 'counter', read: () => n.inputs })
  metrics.add({ name: 'peer_inputs_ignored_total', help: 'Client messages ignored (malformed, out of range, or an old seq)', type: 'counter', read: () => n.inputsIgnored })
  metrics.add({
    name: 'peer_buffered_bytes',
    help: 'Bytes queued in user space toward all sockets (ws bufferedAmount)',
    type: 'gauge',
    read: () => {
      let b = 0
      for (const ws of wss.clients) b += ws.bufferedAmount
      return b
    },
  })

  rooms.onError = (room) => {
    for (const seat of room.seats) (seat.link as WebSocket).close(1011, 'room failed')
  }

  const http = createServer((_req, res) => res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n'))
  const wss = new WebSocketServer({ server: http, maxPayload: MAX_CLIENT_MESSAGE, perMessageDeflate: false })

  wss.on('connection', (ws, req) => {
    n.connections++
    ws.on('error', () => {}) // ws closes the socket after a protocol error; 'close' cleans up
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://peer')
    } catch {
      ws.close(1008, 'bad url')
      return
    }
    const name = (url.searchParams.get('name') ?? '').slice(0, MAX_NAME)
    const roomId = url.searchParams.get('room')
    if (roomId !== null && (roomId === '' || roomId.length > MAX_ROOM_ID)) {
      ws.close(1008, 'bad room')
      return
    }
    const joined = rooms.join(roomId, ++nextPlayer, name)
    if (typeof joined === 'string' || 'refuse' in joined) {
      ws.close(CLOSE_REFUSED, typeof joined === 'string' ? joined : joined.refuse)
      return
    }
    const seat = joined
    seat.link = ws
    ws.on('message', (data, isBinary) => onMessage(seat, data, isBinary))
    ws.on('close', () => rooms.leave(seat))
    const welcome: Welcome = {
      type: 'welcome',
      player: seat.playerId,
      entity: seat.entity,
      room: seat.room.id,
      width: layout.width,
      height: layout.height,
      tickHz: hz,
    }
    send(ws, JSON.stringify(welcome))
  })

  function onMessage(seat: Seat, data: RawData, isBinary: boolean): void {
    let m: unknown
    try {
      if (isBinary || !Buffer.isBuffer(data)) throw new Error('not text')
      m = JSON.parse(data.toString())
    } catch {
      n.inputsIgnored++
      return
    }
    if (!isInput(m) || m.seq <= seat.inputSeq) {
      n.inputsIgnored++
      return
    }
    seat.input[0] = m.mx
    seat.input[1] = m.my
    seat.inputSeq = m.seq
    n.inputs++
  }

  function send(ws: WebSocket, json: string): void {
    if (ws.readyState !== WebSocket.OPEN) return
    ws.send(json)
    n.sentMessages++
    n.sentBytes += json.length // every frame is ASCII: characters = bytes
  }

  function tick(): void {
    const t0 = performance.now()
    const tickNo = ++n.ticks
    rooms.step(dt, tickNo)
    for (const room of rooms.list) {
      const json = stateJson(room, tickNo)
      for (const seat of room.seats) send(seat.link as WebSocket, json)
    }
    const ms = performance.now() - t0
    if (ms > periodMs) n.overruns++
    metrics.tickDuration.observe(ms / 1000)
  }

  // Drift-free fixed tick: slot k is due at epoch + k * period. A loop that
  // fell more than a period behind re-anchors (drops the missed slots).
  let epoch = performance.now()
  let slot = 0
  let timer: NodeJS.Timeout | undefined
  const arm = (): void => {
    timer = setTimeout(wake, Math.max(0, epoch + (slot + 1) * periodMs - performance.now()))
  }
  const wake = (): void => {
    slot++
    tick()
    const late = performance.now() - (epoch + slot * periodMs)
    if (late > periodMs) epoch += late
    arm()
  }

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(opts.port, opts.host, () => {
      http.off('error', reject)
      resolve()
    })
  })
  let metricsServer: Server | null = null
  if (opts.metricsPort !== 0) {
    try {
      metricsServer = await serveMetrics(metrics, opts.metricsPort, opts.host)
    } catch (err) {
      http.close()
      throw err
    }
  }
  epoch = performance.now()
  arm()

  const address = http.address()
  const mAddress = metricsServer?.address()
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    metricsPort: typeof mAddress === 'object' && mAddress ? mAddress.port : 0,
    close() {
      clearTimeout(timer)
      for (const ws of wss.clients) ws.close(CLOSE_GOING_AWAY, 'shutdown')
      const closing = [new Promise<void>((r) => wss.close(() => r())), new Promise<void>((r) => http.close(() => r()))]
      if (metricsServer) {
        const m = metricsServer
        closing.push(new Promise<void>((r) => m.close(() => r())))
      }
      // Sockets that do not answer the close frame are cut after a second.
      const cut = setTimeout(() => {
        for (const ws of wss.clients) ws.terminate()
        metricsServer?.closeAllConnections()
      }, 1000)
      return Promise.all(closing).then(() => clearTimeout(cut))
    },
  }
}

/** The room's full state as the JSON every player of the room receives this tick. */
function stateJson(room: Room, tick: number): string {
  const world = room.world
  const { alive, capacity } = world
  const kind = world.column('kind')
  const xs = world.column('x')
  const ys = world.column('y')
  const score = world.column('score')
  const entities: EntityState[] = []
  for (let id = 0; id < capacity; id++) {
    if (alive[id] !== 1) continue
    entities.push({
      id,
      kind: kind[id] as number,
      x: Math.round((xs[id] as number) * POSITION_STEPS) / POSITION_STEPS,
      y: Math.round((ys[id] as number) * POSITION_STEPS) / POSITION_STEPS,
      score: score[id] as number,
    })
  }
  const seqs: Record<string, number> = {}
  for (const s of room.seats) seqs[s.playerId] = s.appliedSeq
  return JSON.stringify({ type: 'state', tick, seqs, entities })
}

function isInput(m: unknown): m is Input {
  if (typeof m !== 'object' || m === null) return false
  const o = m as Record<string, unknown>
  return o.type === 'input' && isInt(o.seq, 1, 2 ** 31 - 1) && isInt(o.mx, -100, 100) && isInt(o.my, -100, 100)
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) runPeer('ws-json peer', parsePeerArgs, startWsJson)
