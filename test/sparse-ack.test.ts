/**
 * Sparse acks (issue 13, PROTOCOL.md §6): the SDK acks in its inputs and by
 * ACK only every ackEvery(ackWindow) frames, and a real server keeps sending
 * (no ack-window skips, no full-state resyncs) while receiving far fewer
 * client frames than it sends STATE frames.
 */
import t from 'tap'
import { ackEvery } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { parseSamples, sleep, startTest, waitFor } from './helpers/server.js'

async function counters(tw: { metrics: { text(): Promise<string> } }) {
  const m = parseSamples(await tw.metrics.text())
  const get = (k: string) => m.get(k) ?? 0
  return {
    received: get('tickwire_received_messages_total'),
    states: get('tickwire_state_frames_sent_total'),
    windowSkips: get('tickwire_deltas_skipped_total{reason="ack_window"}'),
    resyncs: get('tickwire_full_states_total{reason="baseline_expired"}'),
  }
}

t.test('an idle SDK client acks once per ackEvery frames and is never paused', async (t) => {
  const tw = await startTest({ tickHz: 30 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(`${tw.url}?room=sparse`, { reconnect: false })
  t.teardown(() => c.close())
  const every = ackEvery(c.welcome.ackWindow)
  t.equal(every, 4, 'the default window of 12 frames: an ACK every 4')
  await waitFor(() => c.table.tick > 0, 10_000, 'the first state')
  const before = await counters(tw)
  const tick0 = c.table.tick
  await waitFor(() => c.table.tick - tick0 >= 90, 30_000, '90 more ticks')
  await sleep(100)
  const after = await counters(tw)
  const states = after.states - before.states
  const received = after.received - before.received
  t.ok(states >= 90, `${states} STATE frames sent`)
  // The metrics scrapes are the only other traffic, and they do not reach the WebSocket counter.
  t.ok(received <= states / every + 2, `${received} client frames for ${states} STATE frames (at most 1 per ${every}, plus the edges)`)
  t.ok(received >= states / every - 2, `and it does ack: ${received}`)
  t.equal(after.windowSkips - before.windowSkips, 0, 'never paused by the ack window')
  t.equal(after.resyncs - before.resyncs, 0, 'no baseline expired: deltas all along')
  t.notOk(c.closed)
})

t.test('inputs carry the acks: at 10 inputs/s and 30 Hz, at most 0.5 client frames per STATE', async (t) => {
  const tw = await startTest({ tickHz: 30 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(`${tw.url}?room=sparse2`, { reconnect: false })
  t.teardown(() => c.close())
  await waitFor(() => c.table.tick > 0, 10_000, 'the first state')
  const before = await counters(tw)
  const tick0 = c.table.tick
  let n = 0
  // An input after every third applied frame on average (10 per second at 30 Hz), at irregular moments.
  c.on('state', () => {
    if (Math.random() < 1 / 3) c.sendInput([(n++ % 200) - 100, 0])
  })
  await waitFor(() => c.table.tick - tick0 >= 150, 30_000, '150 more ticks')
  await sleep(100)
  const after = await counters(tw)
  const states = after.states - before.states
  const received = after.received - before.received
  t.ok(n > 20, `${n} inputs sent`)
  t.ok(received / states <= 0.5, `${received} client frames for ${states} STATE frames: ${(received / states).toFixed(2)} per STATE`)
  t.equal(after.windowSkips - before.windowSkips, 0, 'never paused by the ack window')
  const last = c.inputSeq
  await waitFor(() => c.serverInputSeq >= last, 10_000, 'the last input to be applied')
  t.equal(c.serverInputSeq, last, 'every input applied, in order')
})
