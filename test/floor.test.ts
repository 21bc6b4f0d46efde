/**
 * The benchmark's floor peer (bench/peers/floor): a real uWS process driven
 * through the raw bot socket, as `npm run bench` drives it.
 */
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { unpack } from 'msgpackr'
import t from 'tap'
import { MsgType, PROTOCOL_VERSION, decodeServerMessage, encodeInput } from '../proto/index.js'
import { inputSeq, stateFrame } from '../bench/peers/floor/server.js'
import { openSocket } from '../bench/load/rawws.js'
import { parseMetrics, total } from '../bench/load/scrape.js'
import { stateHeader } from '../bench/load/tickwire.js'
import { freePort, waitFor } from './helpers/server.js'

const script = fileURLToPath(new URL('../dist/bench/peers/floor/server.js', import.meta.url))

t.test('stateFrame: exactly the asked size, MessagePack with a STATE header the bots read; inputSeq reads every int width', async (t) => {
  for (const n of [18, 19, 180, 1000]) {
    const f = stateFrame(n)
    t.equal(f.length, n)
    const v = unpack(f) as unknown[]
    t.equal(v.length, 7, `${n} B: a 7-element array`)
    t.equal(v[0], MsgType.STATE)
  }
  t.throws(() => stateFrame(17), RangeError)
  t.same(stateHeader(stateFrame(100)), { tick: 0, inputSeq: 0 })
  for (const seq of [1, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1]) t.equal(inputSeq(encodeInput(seq, 5, [1, 2])), seq, `seq ${seq}`)
  t.equal(inputSeq(new Uint8Array([0x92, MsgType.ACK, 5])), -1, 'an ACK is not an input')
  t.equal(inputSeq(new Uint8Array([])), -1)
})

t.test('the floor server: WELCOME v3 with the ack window, frames of --frame-bytes every tick, input seq echoed, counters on /metrics', async (t) => {
  const port = await freePort()
  const metricsPort = await freePort()
  const child = spawn(process.execPath, [script, '--port', String(port), '--metrics-port', String(metricsPort), '--tick-hz', '30', '--host', '127.0.0.1', '--frame-bytes', '200'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => child.kill('SIGKILL'))
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await waitFor(() => out.includes(`listening ${port}`), 10000, 'listening')
  const got: Uint8Array[] = []
  let closed = 0
  const ws = await openSocket(`ws://127.0.0.1:${port}/?v=${PROTOCOL_VERSION}`, {}, { message: (d) => got.push(Uint8Array.from(d)), close: (c) => (closed = c) })
  await waitFor(() => got.length >= 10, 5000, 'ten frames')
  const welcome = decodeServerMessage(got[0] as Uint8Array)
  t.equal(welcome.type, MsgType.WELCOME)
  if (welcome.type === MsgType.WELCOME) {
    t.equal(welcome.version, PROTOCOL_VERSION)
    t.equal(welcome.ackWindow, 12, "tickwire's default ack window, so bots ack the floor as often as tickwire")
    t.equal(welcome.tickHz, 30)
  }
  const states = got.slice(1)
  t.ok(states.every((s) => s.length === 200), 'every STATE is --frame-bytes long')
  const ticks = states.map((s) => stateHeader(s)?.tick ?? -1)
  t.ok(ticks.every((x, i) => i === 0 || x > (ticks[i - 1] as number)), `ticks increase: ${ticks.join(',')}`)
  ws.send(encodeInput(777, ticks.at(-1) as number, [10, -10]))
  await waitFor(() => got.some((s) => stateHeader(s)?.inputSeq === 777), 3000, 'the input seq echoed')
  const m = parseMetrics(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())
  t.equal(total(m, 'peer_received_messages_total'), 1)
  t.ok(total(m, 'peer_state_frames_sent_total') >= states.length)
  t.equal(total(m, 'peer_players'), 1)
  t.ok(total(m, 'peer_tick_duration_seconds_count') >= 10)
  child.kill('SIGTERM')
  await waitFor(() => closed !== 0, 5000, 'closed on SIGTERM')
  t.equal(closed, 1001)
})

t.test('a bad --frame-bytes exits 2 naming the range', async (t) => {
  const r = spawnSync(process.execPath, [script, '--port', '0', '--tick-hz', '30', '--frame-bytes', '3'], { encoding: 'utf8' })
  t.equal(r.status, 2)
  t.match(r.stderr, /--frame-bytes must be an integer in 18\.\.65536, got "3"/)
})
