/**
 * The floor: what any server on uWebSockets.js pays per player-tick before it
 * does anything a game server does. Every tick it sends each socket one frame
 * of `--frame-bytes` (the mean size tickwire sent in the same benchmark run),
 * corked as tickwire sends, and it reads and discards what the bots send but
 * the input `seq` it echoes back. No game, no rooms, no encoding: the frame is
 * one buffer whose tick and seq fields are patched in place per socket.
 *
 * It speaks enough of proto/PROTOCOL.md that tickwire's own bots drive it
 * unchanged: a protocol 3 WELCOME (with tickwire's default ack window, so the
 * bots ack exactly as often as they ack tickwire), then STATE frames whose
 * header `[2, tick, baseAge, inputSeq, removed, changed, created]` is real and
 * whose `created` list is padding (zeros), so bots must not decode-and-check
 * its frames (the benchmark runs it with checks off).
 *
 *   node dist/bench/peers/floor/server.js --port 9101 --tick-hz 30 --metrics-port 9102 [--frame-bytes 180]
 */
import { pathToFileURL } from 'node:url'
import { PROTOCOL_VERSION, MsgType, encodeWelcome } from '../../../proto/index.js'
import { arena } from '../../../src/games/arena.js'
import uWS, { assertNativeUws, type WebSocket } from '../../../src/net/uws.js'
import { parsePeerArgs, runPeer, type PeerOptions } from '../cli.js'
import { PeerMetrics, serveMetrics } from '../metrics.js'

/** tickwire's default --ack-window and --history-ticks: the bots ack the floor as they ack tickwire. */
const ACK_WINDOW = 12
const HISTORY_TICKS = 32
/** Smallest frame: the header with both uint32 fields, two empty lists and an empty array16. */
export const MIN_FRAME_BYTES = 18
export const MAX_FRAME_BYTES = 65_536
/** Per-socket user-space queue before the floor stops sending to it for a tick (tickwire's default --max-buffered-bytes). */
const MAX_BUFFERED = 256 * 1024

interface Player {
  seq: number
}

export interface FloorOptions extends PeerOptions {
  readonly frameBytes: number
}

/** Byte offsets of the patched fields in the frame (see `stateFrame`). */
const TICK_AT = 3
const SEQ_AT = 9

/**
 * A STATE frame of exactly `bytes` bytes: fixarray(7), 2, tick as uint32 at
 * TICK_AT, baseAge 0 (a full state), inputSeq as uint32 at SEQ_AT, two empty
 * lists, then `created` as an array16 of zeros filling the rest.
 */
export function stateFrame(bytes: number): Uint8Array {
  if (!Number.isInteger(bytes) || bytes < MIN_FRAME_BYTES || bytes > MAX_FRAME_BYTES) throw new RangeError(`frame bytes must be an integer in ${MIN_FRAME_BYTES}..${MAX_FRAME_BYTES}, got ${bytes}`)
  const f = new Uint8Array(bytes)
  let o = 0
  f[o++] = 0x97
  f[o++] = MsgType.STATE
  f[o++] = 0xce // tick: uint32 at TICK_AT
  o += 4
  f[o++] = 0 // baseAge
  f[o++] = 0xce // inputSeq: uint32 at SEQ_AT
  o += 4
  f[o++] = 0x90 // removed
  f[o++] = 0x90 // changed
  const pad = bytes - o - 3
  f[o++] = 0xdc // created: array16 of `pad` zeros
  f[o++] = pad >> 8
  f[o++] = pad & 0xff
  return f
}

/** The `seq` of an INPUT `[1, seq, ...]` (any msgpack int width), or -1 for anything else. */
export function inputSeq(b: Uint8Array): number {
  const h = b[0]
  if (h === undefined || h < 0x93 || h > 0x9f || b[1] !== MsgType.INPUT) return -1
  const x = b[2]
  if (x === undefined) return -1
  if (x <= 0x7f) return x
  if (x === 0xcc && b.length > 3) return b[3] as number
  if (x === 0xcd && b.length > 4) return ((b[3] as number) << 8) | (b[4] as number)
  if (x === 0xce && b.length > 6) return (b[3] as number) * 2 ** 24 + (((b[4] as number) << 16) | ((b[5] as number) << 8) | (b[6] as number))
  return -1
}

function put32(f: Uint8Array, at: number, v: number): void {
  f[at] = v >>> 24
  f[at + 1] = (v >>> 16) & 0xff
  f[at + 2] = (v >>> 8) & 0xff
  f[at + 3] = v & 0xff
}

export interface FloorServer {
  readonly port: number
  close(): Promise<void>
}

export async function startFloor(opts: FloorOptions): Promise<FloorServer> {
  assertNativeUws()
  const periodMs = 1000 / opts.tickHz
  const frame = stateFrame(opts.frameBytes)
  const sockets = new Set<WebSocket<Player>>()
  const n = { ticks: 0, overruns: 0, connections: 0, frames: 0, skipped: 0, received: 0, sentBytes: 0 }
  let nextPlayer = 1
  const metrics = new PeerMetrics('Wall time of one tick: one corked send of the same frame (tick and seq patched) to every socket')
  metrics.add({ name: 'peer_ticks_total', help: 'Ticks run', type: 'counter', read: () => n.ticks })
  metrics.add({ name: 'peer_tick_overruns_total', help: 'Ticks that took longer than the tick period', type: 'counter', read: () => n.overruns })
  metrics.add({ name: 'peer_players', help: 'Sockets open', type: 'gauge', read: () => sockets.size })
  metrics.add({ name: 'peer_connections_total', help: 'WebSocket connections accepted', type: 'counter', read: () => n.connections })
  metrics.add({ name: 'peer_state_frames_sent_total', help: 'STATE frames sent', type: 'counter', read: () => n.frames })
  metrics.add({ name: 'peer_frames_skipped_total', help: 'Frames not sent because the socket had over 256 KiB queued', type: 'counter', read: () => n.skipped })
  metrics.add({ name: 'peer_received_messages_total', help: 'Client messages received (and discarded but for the input seq)', type: 'counter', read: () => n.received })
  metrics.add({ name: 'peer_sent_bytes_total', help: 'WebSocket payload bytes sent', type: 'counter', read: () => n.sentBytes })
  const metricsServer = opts.metricsPort > 0 ? await serveMetrics(metrics, opts.metricsPort, opts.host) : null

  const app = uWS.App()
  app.ws<Player>('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: 4096,
    maxBackpressure: 2 * MAX_BUFFERED,
    idleTimeout: 60,
    upgrade: (res, req, ctx) => {
      res.upgrade<Player>({ seq: 0 }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), ctx)
    },
    open: (ws) => {
      n.connections++
      sockets.add(ws)
      const id = nextPlayer++
      const welcome = encodeWelcome({
        version: PROTOCOL_VERSION,
        playerId: id,
        roomId: 'floor',
        tickHz: opts.tickHz,
        entityId: id,
        historyTicks: HISTORY_TICKS,
        fields: arena.fields,
        input: arena.input,
        resumeToken: '',
        ackWindow: ACK_WINDOW,
        messageSeq: 0,
        messages: [],
        clientMessages: [],
        props: [],
      })
      ws.send(welcome, true)
    },
    message: (ws, msg) => {
      n.received++
      const seq = inputSeq(new Uint8Array(msg))
      if (seq > 0) ws.getUserData().seq = seq
    },
    close: (ws) => {
      sockets.delete(ws)
    },
  })
  const listen = await new Promise<number>((resolve, reject) =>
    app.listen(opts.host, opts.port, (sock) => {
      if (!sock) return reject(new Error(`cannot listen on ${opts.host}:${opts.port}`))
      resolve(uWS.us_socket_local_port(sock))
    }),
  )

  // Drift-free schedule: tick k is due at start + k * period, as tickwire's loop does.
  const start = performance.now()
  let k = 0
  let timer: NodeJS.Timeout
  // One cork callback for every send, as tickwire's FrameSender has: no closure per socket per tick.
  let corked: WebSocket<Player> | null = null
  const send = (): void => {
    ;(corked as WebSocket<Player>).send(frame, true)
  }
  const tick = (): void => {
    const t0 = performance.now()
    k++
    put32(frame, TICK_AT, k)
    for (const ws of sockets) {
      if (ws.getBufferedAmount() > MAX_BUFFERED) {
        n.skipped++
        continue
      }
      put32(frame, SEQ_AT, ws.getUserData().seq)
      corked = ws
      ws.cork(send)
      n.frames++
      n.sentBytes += frame.length
    }
    n.ticks++
    const took = performance.now() - t0
    metrics.tickDuration.observe(took / 1000)
    if (took > periodMs) n.overruns++
    const now = performance.now()
    let due = start + (k + 1) * periodMs
    if (due < now - 5 * periodMs) k = Math.floor((now - start) / periodMs) // far behind: skip, do not burst
    due = start + (k + 1) * periodMs
    timer = setTimeout(tick, Math.max(0, due - now))
  }
  timer = setTimeout(tick, periodMs)

  return {
    port: listen,
    close() {
      clearTimeout(timer)
      for (const ws of sockets) ws.end(1001, 'shutdown')
      ;(app as unknown as { close(): void }).close() // missing from the typings
      return new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()))
    },
  }
}

/** `--frame-bytes N` apart from the flags every peer takes. */
export function parseFloorArgs(argv: readonly string[]): FloorOptions {
  const rest = [...argv]
  let frameBytes = 180
  const i = rest.indexOf('--frame-bytes')
  if (i >= 0) {
    const raw = rest[i + 1] ?? ''
    frameBytes = Number(raw)
    if (!/^\d+$/.test(raw) || frameBytes < MIN_FRAME_BYTES || frameBytes > MAX_FRAME_BYTES) throw new Error(`--frame-bytes must be an integer in ${MIN_FRAME_BYTES}..${MAX_FRAME_BYTES}, got ${JSON.stringify(raw)}`)
    rest.splice(i, 2)
  }
  return { ...parsePeerArgs(rest), frameBytes }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) runPeer('floor peer', parseFloorArgs, startFloor)
