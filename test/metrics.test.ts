/**
 * /metrics over HTTP, checked by the real Prometheus parser (`promtool check
 * metrics`, from Debian's prometheus package, which .ci/run installs), and by
 * watching counters move when their events happen.
 */
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { encodeInput } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { DEFAULT_TOTAL_GAUGES } from '../src/metrics/registry.js'
import { startCluster } from './helpers/cluster.js'
import { freePort, parseSamples, sample, sleep, startTest, waitFor } from './helpers/server.js'

function promtool(text: string): { available: boolean; problems: string[] } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (r.error) return { available: false, problems: [] }
  // promtool lints to stdout or stderr depending on the version.
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.trim() !== '')
  // The documented allowlist: prom-client's default metrics name three gauges *_total.
  const problems = lines.filter((l) => !DEFAULT_TOTAL_GAUGES.some((name) => l.startsWith(`${name} `)))
  return { available: true, problems }
}

t.test('GET /metrics passes promtool (with the documented allowlist) and lists every series', async (t) => {
  const metricsPort = await freePort()
  const tw = await startTest({ metricsPort, metricsHost: '127.0.0.1' })
  t.teardown(() => tw.stop())
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/)
  const text = await res.text()
  const check = promtool(text)
  if (!check.available) {
    if (process.env.TICKWIRE_SKIP_PROMTOOL === '1') t.comment('SKIPPED promtool check: not installed and TICKWIRE_SKIP_PROMTOOL=1')
    else t.fail('promtool not found: install Debian\'s "prometheus" package (bash .ci/run does), or set TICKWIRE_SKIP_PROMTOOL=1')
  } else t.same(check.problems, [], 'promtool check metrics: no problems beyond the allowlist')
  const samples = parseSamples(text)
  for (const name of [
    'tickwire_tick_duration_seconds_count{worker="0"}',
    'tickwire_tick_overruns_total{worker="0"}',
    'tickwire_ticks_skipped_total{worker="0"}',
    'tickwire_players',
    'tickwire_rooms',
    'tickwire_sent_bytes_total',
    'tickwire_state_frames_sent_total',
    'tickwire_deltas_skipped_total{reason="ack_window"}',
    'tickwire_deltas_skipped_total{reason="buffered"}',
    'tickwire_full_states_total{reason="baseline_expired"}',
    'tickwire_disconnects_total{reason="too_slow"}',
    'tickwire_inputs_rejected_total{reason="range"}',
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
  ]) {
    t.ok(samples.has(name), name)
  }
  for (const key of samples.keys()) {
    if (/(player|room|socket|conn)_?id=/.test(key)) t.fail(`per-player or per-room label: ${key}`)
  }
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status, 404)
})

t.test('counters move when their events happen', async (t) => {
  const tw = await startTest({ tickHz: 30 })
  t.teardown(() => tw.stop())
  const m0 = await tw.metrics.text()
  t.equal(sample(m0, 'tickwire_players'), 0)
  const a = await TickwireClient.connect(tw.url, { reconnect: false, room: 'm' })
  const b = await TickwireClient.connect(tw.url, { reconnect: false, room: 'm' })
  await waitFor(() => a.table.tick > 5 && b.table.tick > 5, 2000, 'frames')
  a.sendInput([50, 50])
  await sleep(300)
  const m1 = await tw.metrics.text()
  t.equal(sample(m1, 'tickwire_players'), 2)
  t.equal(sample(m1, 'tickwire_rooms'), 1)
  t.equal(sample(m1, 'tickwire_connections_total'), 2)
  t.equal(sample(m1, 'tickwire_full_states_total{reason="join"}') >= 2, true)
  t.ok(sample(m1, 'tickwire_ticks_total{worker="0"}') > sample(m0, 'tickwire_ticks_total{worker="0"}'), 'ticks')
  t.ok(sample(m1, 'tickwire_tick_duration_seconds_count{worker="0"}') > 5, 'tick durations observed')
  t.equal(sample(m1, 'tickwire_tick_lateness_seconds_count{worker="0"}'), sample(m1, 'tickwire_tick_duration_seconds_count{worker="0"}'), 'and how late each started')
  t.ok(sample(m1, 'tickwire_state_frames_sent_total') >= a.framesReceived - 1, 'frames sent')
  t.ok(sample(m1, 'tickwire_sent_bytes_total') >= a.bytesReceived, 'bytes sent')
  t.ok(sample(m1, 'tickwire_sent_messages_total') >= sample(m1, 'tickwire_state_frames_sent_total') + 2, 'messages sent: frames plus two WELCOMEs')
  t.equal(sample(m1, 'tickwire_inputs_total'), 1)
  t.ok(sample(m1, 'tickwire_received_messages_total') > 5, 'acks received')

  const closed = new Promise<number>((r) => b.on('close', (c) => r(c)))
  b.sendRaw(encodeInput(1, b.table.tick, [1000, 0]))
  await closed
  a.close()
  await waitFor(() => tw.rooms.players === 0, 2000, 'both gone')
  const m2 = await tw.metrics.text()
  t.equal(sample(m2, 'tickwire_inputs_rejected_total{reason="range"}'), 1)
  t.equal(sample(m2, 'tickwire_disconnects_total{reason="bad_input"}'), 1)
  t.equal(sample(m2, 'tickwire_disconnects_total{reason="client_closed"}'), 1)
  t.equal(sample(m2, 'tickwire_players'), 0)
  t.equal(sample(m2, 'tickwire_rooms'), 0, 'the empty room was disposed')
  // Counters never go backwards between scrapes.
  for (const [k, v] of parseSamples(m1)) {
    if (k.endsWith('_total') && !k.startsWith('nodejs_active')) t.ok((parseSamples(m2).get(k) ?? -1) >= v, `${k} monotonic`)
  }
})

const scrape = async (port: number): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()

t.test('two workers at 30 Hz: the tick series are per worker, so each rate() reads about 30, not 60', async (t) => {
  const c = await startCluster(2, ['--tick-hz', '30'])
  t.teardown(() => {
    c.child.kill('SIGKILL')
  })
  // One room on each worker (through its direct port): both loops tick at 30 Hz instead of idling at 1 Hz.
  const players = await Promise.all(c.directPorts.map((p, i) => TickwireClient.connect(`ws://127.0.0.1:${p}/play`, { reconnect: false, room: `w${i}` })))
  t.teardown(() => {
    for (const p of players) p.close()
  })
  await waitFor(() => players.every((p) => p.table.tick > 5), 5000, 'frames from both workers')
  const m0 = parseSamples(await scrape(c.metricsPort))
  const t0 = performance.now()
  await sleep(2000)
  const m1 = parseSamples(await scrape(c.metricsPort))
  const seconds = (performance.now() - t0) / 1000
  t.notOk(m1.has('tickwire_ticks_total'), 'no unlabelled sum across workers')
  for (const w of ['0', '1']) {
    const key = `tickwire_ticks_total{worker="${w}"}`
    const perSecond = ((m1.get(key) ?? NaN) - (m0.get(key) ?? NaN)) / seconds
    // 30 on an idle machine; generous bounds for a loaded 2-core VM (a worker that falls behind catches up or skips).
    t.ok(perSecond > 15 && perSecond < 45, `worker ${w}: ${perSecond.toFixed(1)} ticks/s`)
    t.ok((m1.get(`tickwire_tick_duration_seconds_count{worker="${w}"}`) ?? 0) > 30, `worker ${w} has its own tick histogram`)
    t.ok(m1.has(`tickwire_tick_duration_seconds_bucket{worker="${w}",le="+Inf"}`), `worker ${w}: buckets by (worker, le)`)
  }
  t.equal(m1.get('tickwire_draining'), 0, 'not draining')
  t.equal(m1.get('tickwire_players'), 2, 'gauges still sum over the workers')
})

t.test('tickwire_draining is 1 while a supervisor drains; a worker that cannot drain keeps it there', async (t) => {
  const c = await startCluster(2, ['--drain-timeout', '6'])
  t.teardown(() => {
    c.child.kill('SIGKILL')
    for (const pid of c.pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  })
  t.equal(parseSamples(await scrape(c.metricsPort)).get('tickwire_draining'), 0)
  // A frozen worker cannot exit: the drain lasts until --drain-timeout, when the supervisor kills it.
  process.kill(c.pids[1] as number, 'SIGSTOP')
  c.child.kill('SIGTERM')
  await sleep(300)
  const m = parseSamples(await scrape(c.metricsPort))
  t.equal(m.get('tickwire_draining'), 1, 'draining')
  t.equal(m.get('tickwire_worker_up{worker="1"}'), 0, 'the frozen worker did not answer')
  t.equal(await c.exited, 1, 'exit 1: the drain timed out and the rest was killed')
})
