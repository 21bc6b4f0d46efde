/**
 * Slow clients over real sockets: a client whose socket stops reading (its
 * TCP receive side is paused, exactly as a frozen or overloaded client) while
 * a normal client shares its room.
 */
import { execFileSync } from 'node:child_process'
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { CloseCode, MsgType, decodeServerMessage, encodeAck } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { EntityTable } from '../src/client/table.js'
import { sample, sleep, startTest, waitFor } from './helpers/server.js'

/** A client on a bare `ws` socket that applies and acks frames, and can stop reading. */
class PausableClient {
  /** Set false to read without acking (the server then only ever sends full states). */
  acking = true
  readonly ws: WebSocket
  table: EntityTable | null = null
  frames = 0
  fullFrames = 0
  closeCode = 0
  error: Error | null = null
  constructor(url: string) {
    this.ws = new WebSocket(url)
    this.ws.binaryType = 'arraybuffer'
    this.ws.on('message', (data: ArrayBuffer) => {
      try {
        const msg = decodeServerMessage(new Uint8Array(data))
        if (msg.type === MsgType.WELCOME) this.table = new EntityTable(msg.fields, msg.historyTicks + 2)
        else if (msg.type === MsgType.STATE && this.table) {
          this.table.apply(msg)
          this.frames++
          if (msg.baseTick === 0) this.fullFrames++
          if (this.acking) this.ws.send(encodeAck(msg.tick))
        }
      } catch (err) {
        this.error = err as Error
      }
    })
    this.ws.on('close', (code) => (this.closeCode = code))
    this.ws.on('error', () => {})
  }
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket
  }
  pause(): void {
    this.socket.pause()
  }
  resume(): void {
    this.socket.resume()
  }
  close(): void {
    this.ws.terminate()
  }
}

/** Send-Q in bytes of the server's side of the TCP connection to `clientPort` (`ss`). */
function queued(serverPort: number, clientPort: number): { sendQ: number } {
  const line = execFileSync('ss', ['-tnH', 'state', 'established', `( sport = :${serverPort} and dport = :${clientPort} )`], { encoding: 'utf8' })
  const cols = line.trim().split(/\s+/)
  if (cols.length < 4) throw new Error(`ss found no connection ${serverPort} -> ${clientPort}: ${JSON.stringify(line)}`)
  return { sendQ: Number(cols[1]) }
}

/** A normal SDK client and a pausable one in room `room`, both closed at teardown. */
async function pair(t: Test, url: string, room: string): Promise<{ normal: TickwireClient; slow: PausableClient }> {
  const normal = await TickwireClient.connect(url, { reconnect: false, room })
  const slow = new PausableClient(`${url}?room=${room}`)
  t.teardown(() => {
    normal.close()
    slow.close()
  })
  return { normal, slow }
}

async function frameRate(c: TickwireClient, ms: number): Promise<number> {
  let n = 0
  const on = () => n++
  c.on('state', on)
  await sleep(ms)
  c.off('state', on)
  return (n * 1000) / ms
}

t.test('ack window: a client that stops reading for 15 s has only a few KiB queued, then resyncs', async (t) => {
  const tw = await startTest({ tickHz: 30 })
  t.teardown(() => tw.stop())
  const { normal, slow } = await pair(t, tw.url, 'bp')
  await waitFor(() => slow.frames > 10, 3000, 'the slow client to get going')
  let m = await tw.metrics.text()
  const sent0 = sample(m, 'tickwire_state_frames_sent_total')
  const normal0 = normal.framesReceived
  slow.pause()
  const rate = await frameRate(normal, 15000)
  const q = queued(tw.port, slow.socket.localPort as number)
  t.ok(q.sendQ < 4 * 1024, `after 15 s the kernel holds ${q.sendQ} B toward it (Send-Q)`)
  m = await tw.metrics.text()
  // Frames sent to the paused client = all frames sent - those the other client got (+-1 in flight).
  const toSlow = sample(m, 'tickwire_state_frames_sent_total') - sent0 - (normal.framesReceived - normal0)
  t.ok(toSlow <= tw.config.ackWindow + 2, `at most an ack window of frames went to it in 15 s: ${toSlow}`)
  t.ok(rate > 27, `the other player kept its tick rate: ${rate.toFixed(1)} frames/s`)
  const skipped = sample(m, 'tickwire_deltas_skipped_total{reason="ack_window"}')
  t.ok(skipped > 400, `ack-window skips counted: ${skipped}`)
  t.equal(sample(m, 'tickwire_full_states_total{reason="baseline_expired"}'), 0)

  const before = slow.frames
  slow.resume()
  await waitFor(() => slow.frames > before + 30, 5000, 'the slow client to catch up and receive again')
  t.equal(slow.error, null, 'every frame applied cleanly')
  t.ok(slow.fullFrames >= 2, 'it was resynced with a full state')
  m = await tw.metrics.text()
  t.ok(sample(m, 'tickwire_full_states_total{reason="baseline_expired"}') >= 1, 'the resync is counted')
  t.ok(slow.table?.entities.size, 'its table is populated')
  t.equal(slow.closeCode, 0, 'and it was never closed')
})

t.test('a client stalled past max-stall-seconds is closed TOO_SLOW; the other keeps going', async (t) => {
  const tw = await startTest({ maxStallSeconds: 1 })
  t.teardown(() => tw.stop())
  const { normal, slow } = await pair(t, tw.url, 'bp2')
  await waitFor(() => slow.frames > 5, 3000, 'the slow client to get going')
  slow.pause()
  const rate = await frameRate(normal, 2000)
  slow.resume()
  await waitFor(() => slow.closeCode !== 0, 3000, 'the close to reach the slow client')
  t.equal(slow.closeCode, CloseCode.TOO_SLOW)
  t.ok(rate > 25, `the other player kept its tick rate: ${rate.toFixed(1)} frames/s`)
  t.notOk(normal.closed)
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_disconnects_total{reason="too_slow"}'), 1)
})

t.test('a client that answers no pings is closed after the idle timeout and counted', async (t) => {
  // idleTimeout 8 s is uWS's minimum useful value (its timer resolution is 4 s).
  const tw = await startTest({ idleTimeout: 8, maxStallSeconds: 60 })
  t.teardown(() => tw.stop())
  const slow = new PausableClient(`${tw.url}?room=idle`)
  t.teardown(() => slow.close())
  await waitFor(() => slow.frames > 3, 3000, 'the client to get going')
  slow.pause()
  await waitFor(() => tw.rooms.players === 0, 20000, 'the server to drop the silent client')
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_disconnects_total{reason="idle_timeout"}'), 1)
  t.equal(sample(m, 'tickwire_disconnects_total{reason="too_slow"}'), 0, 'the idle timeout acted, not the stall limit')
})

t.test('buffered bytes: once the kernel buffers are full, uWS buffers stay bounded and frames are skipped', async (t) => {
  const soft = 64 * 1024
  // About 600 entities all visible, 240 Hz, and an ack window so wide that only the byte layer can act:
  // a client that never acks gets ~8 KB full states until kernel and then uWS buffers fill.
  const tw = await startTest({
    tickHz: 240,
    inputRate: 480,
    ackWindow: 2000,
    historyTicks: 4096,
    maxPlayers: 100,
    aoiRadius: 5000,
    maxVisible: 512,
    maxPlayersPerRoom: 200,
    softBackpressure: soft,
  })
  t.teardown(() => tw.stop())
  const { normal, slow } = await pair(t, tw.url, 'flood')
  slow.acking = false
  await waitFor(() => slow.frames > 5, 3000, 'the slow client to get going')
  slow.pause()
  let m = ''
  const deadline = Date.now() + 30000
  for (;;) {
    m = await tw.metrics.text()
    if (sample(m, 'tickwire_deltas_skipped_total{reason="buffered"}') > 100) break
    if (Date.now() > deadline) break
    await sleep(200)
  }
  const skipped = sample(m, 'tickwire_deltas_skipped_total{reason="buffered"}')
  t.ok(skipped > 100, `buffered-bytes skips counted: ${skipped}`)
  const maxBuffered = sample(m, 'tickwire_socket_buffered_bytes_max')
  t.ok(maxBuffered > soft, `uWS buffered past the soft threshold (${maxBuffered} B)`)
  t.ok(maxBuffered < soft + 16 * 1024, `but never more than one frame past it (${maxBuffered} B)`)
  const rate = await frameRate(normal, 1000)
  // Half the tick rate: the point is that it keeps going while the slow one is skipped (a busy machine costs some frames).
  t.ok(rate > 120, `the other player kept its tick rate: ${rate.toFixed(1)} frames/s at 240 Hz`)

  const before = slow.frames
  slow.acking = true
  slow.resume()
  await waitFor(() => slow.frames > before + 500, 20000, 'the slow client to drain and receive again')
  t.equal(slow.error, null, 'every frame it read applied cleanly: skipped ticks left no gap in its state')
  t.equal(slow.closeCode, 0, 'and it was never closed')
  m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_disconnects_total{reason="desync"}'), 0, 'uWS never dropped a frame')
})
