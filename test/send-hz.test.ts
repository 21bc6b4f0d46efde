/**
 * --send-hz (issue 13): STATE every k-th tick, players spread over the ticks
 * in between, deltas still against each player's ack; and the option's
 * refusals.
 */
import t from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { ConfigError, parseConfig } from '../src/config.js'
import { parseSamples, startTest, waitFor } from './helpers/server.js'

t.test('--send-hz 10 at 30 Hz: every third tick per player, staggered, deltas, inputs applied', async (t) => {
  const tw = await startTest({ tickHz: 30, sendHz: 10, historyTicks: 40 })
  t.teardown(() => tw.stop())
  const clients = await Promise.all([0, 1, 2].map(() => TickwireClient.connect(`${tw.url}?room=slow-send`, { reconnect: false })))
  t.teardown(() => clients.forEach((c) => c.close()))
  const seen = clients.map(() => [] as { tick: number; base: number }[])
  clients.forEach((c, i) =>
    c.on('state', (f) => {
      ;(seen[i] as { tick: number; base: number }[]).push({ tick: f.tick, base: f.baseTick })
      if (f.tick % 2 === 0) c.sendInput([50, -50])
    }),
  )
  await waitFor(() => seen.every((s) => s.length >= 30), 30_000, '30 frames per client')
  const phases = new Set<number>()
  for (const [i, s] of seen.entries()) {
    const gaps = s.slice(1).map((f, j) => f.tick - (s[j] as { tick: number }).tick)
    t.ok(gaps.every((g) => g % 3 === 0 && g > 0), `client ${i}: ticks 3 apart (or a multiple, if one was skipped): ${gaps.slice(0, 10).join(',')}`)
    t.ok(gaps.filter((g) => g === 3).length >= 0.9 * gaps.length, `client ${i}: nearly all gaps exactly 3`)
    t.ok(s.slice(5).every((f) => f.base > 0), `client ${i}: deltas against its ack, no full states once going`)
    phases.add((s[0] as { tick: number }).tick % 3)
    const c = clients[i] as TickwireClient
    await waitFor(() => c.serverInputSeq === c.inputSeq, 10_000, 'inputs applied')
    t.ok(c.inputSeq > 5, `client ${i}: ${c.inputSeq} inputs, all applied`)
  }
  t.equal(phases.size, 3, 'three players with consecutive ids land on the three phases: the sends are spread over the ticks')
  const m = parseSamples(await tw.metrics.text())
  t.equal(m.get('tickwire_deltas_skipped_total{reason="ack_window"}') ?? 0, 0, 'never paused by the ack window (acks every 4 frames)')
})

t.test('--send-hz refusals name the rule', async (t) => {
  const bad = (argv: string[], re: RegExp) => t.throws(() => parseConfig(argv), { name: ConfigError.name, message: re }, argv.join(' '))
  bad(['--tick-hz', '30', '--send-hz', '7'], /--send-hz \(7 Hz\) must be --tick-hz \(30 Hz\) divided by a whole number/)
  bad(['--tick-hz', '30', '--send-hz', '60'], /--send-hz \(60 Hz\) must be --tick-hz/)
  bad(['--tick-hz', '30', '--send-hz', '10'], /--ack-window \(12 frames\) spans 36 ticks at --send-hz 10: .*raise --history-ticks to 37/)
  t.doesNotThrow(() => parseConfig(['--tick-hz', '30', '--send-hz', '10', '--history-ticks', '40']))
  t.doesNotThrow(() => parseConfig(['--tick-hz', '30', '--send-hz', '15']))
  t.doesNotThrow(() => parseConfig(['--tick-hz', '30', '--send-hz', '30']))
})
