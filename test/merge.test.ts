/**
 * MetricsMerger against real prom-client registries: snapshots go through
 * getMetricsAsJSON and a JSON round trip, as they do over IPC, and the merged
 * text is checked by value and by the real Prometheus parser (promtool).
 */
import { spawnSync } from 'node:child_process'
import client from 'prom-client'
import t, { type Test } from 'tap'
import { MetricsMerger, PER_WORKER_PREFIXES, isPerWorker, type Snapshot } from '../src/cluster/merge.js'
import { DEFAULT_TOTAL_GAUGES, Metrics, WORKER_SERIES } from '../src/metrics/registry.js'
import { Stats } from '../src/metrics/stats.js'

/** A worker-like registry whose instruments the test drives directly. */
function worker(opts: { defaults?: boolean } = {}) {
  const registry = new client.Registry()
  if (opts.defaults) client.collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    conns: new client.Counter({ name: 'tickwire_connections_total', help: 'WebSocket connections opened', registers }),
    disconnects: new client.Counter({ name: 'tickwire_disconnects_total', help: 'Sockets closed, by reason', labelNames: ['reason'], registers }),
    opSeconds: new client.Histogram({ name: 'tickwire_directory_operation_seconds', help: 'Directory round trip', buckets: [0.001, 0.01, 0.1], registers }),
    players: new client.Gauge({ name: 'tickwire_players', help: 'Players seated in rooms', registers }),
    bufferedMax: new client.Gauge({ name: 'tickwire_socket_buffered_bytes_max', help: 'Worst socket backlog', aggregator: 'max', registers }),
    secret: new client.Gauge({ name: 'tickwire_internal_seed', help: 'Not for the supervisor', aggregator: 'omit', registers }),
  }
}

/** What the supervisor receives: getMetricsAsJSON after a JSON round trip. */
async function snap(registry: client.Registry): Promise<Snapshot> {
  return JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as Snapshot
}

/** Prometheus text -> `name{labels}` -> value, labels as written. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?) (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    out.set(m[1] as string, Number(m[2]))
  }
  return out
}

function value(text: string, key: string): number {
  const v = parse(text).get(key)
  if (v === undefined) throw new Error(`no sample ${key} in\n${text}`)
  return v
}

function promtool(t: Test, text: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (r.error) {
    t.pass('promtool check metrics', { skip: 'promtool is not installed (apt-get install prometheus)' })
    return
  }
  // promtool lints to stdout or stderr depending on the version; prom-client's three *_total gauges are allowlisted.
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.trim() !== '')
  const problems = lines.filter((l) => !DEFAULT_TOTAL_GAUGES.some((name) => l.startsWith(`${name} `)))
  t.same(problems, [], 'promtool check metrics: no problems beyond the allowlist')
}

t.test('sums counters, histograms and gauges across slots; honours max and omit', async (t) => {
  const a = worker()
  const b = worker()
  a.conns.inc(100)
  b.conns.inc(50)
  a.disconnects.inc({ reason: 'too_slow' }, 2)
  b.disconnects.inc({ reason: 'too_slow' }, 3)
  b.disconnects.inc({ reason: 'bad_input' }, 1)
  for (const s of [0.0005, 0.005, 0.05]) a.opSeconds.observe(s)
  for (const s of [0.005, 0.5]) b.opSeconds.observe(s)
  a.players.set(7)
  b.players.set(5)
  a.bufferedMax.set(1000)
  b.bufferedMax.set(4000)
  a.secret.set(42)

  const m = new MetricsMerger()
  m.update(0, 1000, await snap(a.registry))
  m.update(1, 1001, await snap(b.registry))
  const text = await m.render()
  t.equal(value(text, 'tickwire_connections_total'), 150)
  t.equal(value(text, 'tickwire_disconnects_total{reason="too_slow"}'), 5)
  t.equal(value(text, 'tickwire_disconnects_total{reason="bad_input"}'), 1, 'a series only one slot has')
  t.equal(value(text, 'tickwire_players'), 12)
  t.equal(value(text, 'tickwire_socket_buffered_bytes_max'), 4000, "aggregator 'max'")
  t.notMatch(text, /tickwire_internal_seed/, "aggregator 'omit' drops the family, HELP and TYPE included")
  t.equal(value(text, 'tickwire_directory_operation_seconds_bucket{le="0.001"}'), 1)
  t.equal(value(text, 'tickwire_directory_operation_seconds_bucket{le="0.01"}'), 3)
  t.equal(value(text, 'tickwire_directory_operation_seconds_bucket{le="0.1"}'), 4)
  t.equal(value(text, 'tickwire_directory_operation_seconds_bucket{le="+Inf"}'), 5)
  t.equal(value(text, 'tickwire_directory_operation_seconds_count'), 5)
  t.ok(Math.abs(value(text, 'tickwire_directory_operation_seconds_sum') - 0.5605) < 1e-9)
  const histogram = text.split('\n').filter((l) => l.startsWith('tickwire_directory_operation_seconds'))
  t.same(
    histogram.map((l) => l.replace(/ .*/, '')),
    [
      'tickwire_directory_operation_seconds_bucket{le="0.001"}',
      'tickwire_directory_operation_seconds_bucket{le="0.01"}',
      'tickwire_directory_operation_seconds_bucket{le="0.1"}',
      'tickwire_directory_operation_seconds_bucket{le="+Inf"}',
      'tickwire_directory_operation_seconds_sum',
      'tickwire_directory_operation_seconds_count',
    ],
    'buckets ascending, +Inf last, then _sum and _count',
  )
  t.equal(text.match(/^# TYPE tickwire_connections_total counter$/gm)?.length, 1, 'one TYPE per family')
  t.equal(text.match(/^# HELP tickwire_connections_total /gm)?.length, 1, 'one HELP per family')
  promtool(t, text)
})

t.test("aggregators 'min', 'average' and 'first' combine gauges across slots", async (t) => {
  const m = new MetricsMerger()
  for (const [slot, v] of [[0, 4], [1, 2], [2, 9]] as const) {
    const r = new client.Registry()
    for (const aggregator of ['min', 'average', 'first'] as const) {
      new client.Gauge({ name: `tickwire_lag_${aggregator}`, help: aggregator, aggregator, registers: [r] }).set(v)
    }
    m.update(slot, 9000 + slot, await snap(r))
  }
  const text = await m.render()
  t.equal(value(text, 'tickwire_lag_min'), 2)
  t.equal(value(text, 'tickwire_lag_average'), 5)
  t.equal(value(text, 'tickwire_lag_first'), 4, 'first = lowest slot')
})

t.test('process_ and nodejs_ metrics are per worker; own registry is appended; promtool passes', async (t) => {
  t.same(PER_WORKER_PREFIXES, ['process_', 'nodejs_'])
  const a = worker({ defaults: true })
  const b = worker({ defaults: true })
  a.conns.inc(3)
  b.conns.inc(4)
  const own = new client.Registry()
  new client.Gauge({ name: 'tickwire_cluster_workers', help: 'Worker processes running', registers: [own] }).set(2)

  const m = new MetricsMerger()
  m.update(0, 2000, await snap(a.registry))
  m.update(1, 2001, await snap(b.registry))
  const text = await m.render(own)
  const samples = parse(text)
  for (const w of ['0', '1']) {
    t.ok(samples.has(`process_cpu_seconds_total{worker="${w}"}`), `process_cpu_seconds_total for worker ${w}`)
    t.ok(samples.has(`process_resident_memory_bytes{worker="${w}"}`), `process_resident_memory_bytes for worker ${w}`)
    t.ok(samples.has(`process_start_time_seconds{worker="${w}"}`), "per-worker metrics ignore 'omit': each start time is meaningful")
  }
  const unlabelled = [...samples.keys()].filter((k) => PER_WORKER_PREFIXES.some((p) => k.startsWith(p)) && !/[{,]worker="[01]"/.test(k))
  t.same(unlabelled, [], 'every process_/nodejs_ sample carries a worker label')
  t.equal(value(text, 'tickwire_connections_total'), 7)
  t.equal(value(text, 'tickwire_cluster_workers'), 2, "the supervisor's own metrics are appended")
  const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1])
  t.equal(new Set(families).size, families.length, 'no family repeated')
  promtool(t, text)
})

/** A real worker registry (src/metrics/registry.ts) over a loop the test advances by hand. */
function tickingWorker() {
  const loop = { tick: 0, overruns: 0, catchUpTicks: 0, skippedSlots: 0, stalls: 0 }
  const metrics = new Metrics({ stats: new Stats(), loop, rooms: () => 1, players: () => 3, buffered: () => ({ total: 0, max: 0 }), tickBudgetSeconds: 1 / 30, held: () => 0 })
  /** `n` ticks of `seconds` each, `over` of them overruns. */
  const run = (n: number, seconds: number, over = 0) => {
    loop.tick += n
    loop.overruns += over
    for (let i = 0; i < n; i++) metrics.observeTick(seconds, 0.0001)
  }
  return { metrics, loop, run }
}

t.test('the tick loop series carry worker="<slot>" and are never summed; a replaced worker keeps its base', async (t) => {
  for (const name of WORKER_SERIES) t.ok(isPerWorker(name), `${name} is per worker`)
  t.notOk(isPerWorker('tickwire_players'), 'players are summed')
  t.notOk(isPerWorker('tickwire_tick_budget_seconds'), 'the budget is one figure (max)')

  const a = tickingWorker()
  const b = tickingWorker()
  // Alone, a worker says worker="0", as a single process does.
  t.equal(value(await a.metrics.text(), 'tickwire_ticks_total{worker="0"}'), 0, 'a single process: worker="0", present from the start')
  // 30 Hz each: one second of ticks on both workers.
  a.run(30, 0.002)
  b.run(30, 0.02, 2)
  const m = new MetricsMerger()
  m.update(0, 11000, await snap(a.metrics.registry))
  m.update(1, 11001, await snap(b.metrics.registry))
  let text = await m.render()
  t.equal(value(text, 'tickwire_ticks_total{worker="0"}'), 30, 'ticks of worker 0, not 60: rate() is per worker')
  t.equal(value(text, 'tickwire_ticks_total{worker="1"}'), 30)
  t.notOk(parse(text).has('tickwire_ticks_total'), 'no unlabelled sum')
  t.equal(value(text, 'tickwire_tick_overruns_total{worker="1"}'), 2)
  t.equal(value(text, 'tickwire_tick_overruns_total{worker="0"}'), 0)
  t.equal(value(text, 'tickwire_tick_duration_seconds_bucket{worker="0",le="0.002"}'), 30, 'each worker its own histogram')
  t.equal(value(text, 'tickwire_tick_duration_seconds_bucket{worker="1",le="0.002"}'), 0)
  t.equal(value(text, 'tickwire_tick_duration_seconds_bucket{worker="1",le="0.025"}'), 30)
  t.equal(value(text, 'tickwire_tick_duration_seconds_count{worker="1"}'), 30)
  t.equal(value(text, 'tickwire_tick_lateness_seconds_count{worker="0"}'), 30)
  t.equal(value(text, 'tickwire_players'), 6, 'gauges still sum')
  for (const name of WORKER_SERIES) {
    for (const [k] of parse(text)) if (k.startsWith(`${name}`) && (k[name.length] === '{' || k.length === name.length)) t.match(k, /[{,]worker="[01]"/, `${k} labelled`)
  }
  promtool(t, text)

  // Worker 1 crashes; its replacement starts from zero: worker 1's counters and buckets go on from its base.
  m.retire(1)
  const c = tickingWorker()
  c.run(3, 0.02)
  m.update(1, 11002, await snap(c.metrics.registry))
  text = await m.render()
  t.equal(value(text, 'tickwire_ticks_total{worker="1"}'), 33, 'monotonic across the replacement')
  t.equal(value(text, 'tickwire_tick_overruns_total{worker="1"}'), 2)
  t.equal(value(text, 'tickwire_tick_duration_seconds_count{worker="1"}'), 33)
  t.equal(value(text, 'tickwire_ticks_total{worker="0"}'), 30, 'worker 0 untouched')
  promtool(t, text)
})

t.test('a new pid in a slot carries the old cumulative values as base; gauges are replaced', async (t) => {
  const perWorker = () => {
    const r = new client.Registry()
    return { r, cpu: new client.Counter({ name: 'process_cpu_seconds_total', help: 'CPU time', registers: [r] }) }
  }
  const m = new MetricsMerger()
  const old = worker()
  const oldProc = perWorker()
  old.conns.inc(100)
  old.disconnects.inc({ reason: 'too_slow' }, 4)
  old.opSeconds.observe(0.005)
  old.opSeconds.observe(0.5)
  old.players.set(9)
  oldProc.cpu.inc(12.5)
  m.update(0, 3000, [...(await snap(old.registry)), ...(await snap(oldProc.r))])
  const before = parse(await m.render())

  // The worker in slot 0 restarted: a fresh process starts its counters from zero.
  const fresh = worker()
  const freshProc = perWorker()
  fresh.conns.inc(10)
  fresh.opSeconds.observe(0.0005)
  fresh.players.set(2)
  freshProc.cpu.inc(0.5)
  m.update(0, 3001, [...(await snap(fresh.registry)), ...(await snap(freshProc.r))])
  const text = await m.render()
  t.equal(value(text, 'tickwire_connections_total'), 110)
  t.equal(value(text, 'tickwire_disconnects_total{reason="too_slow"}'), 4, 'a series the new process has not produced yet keeps its base')
  t.equal(value(text, 'tickwire_directory_operation_seconds_bucket{le="0.001"}'), 1)
  t.equal(value(text, 'tickwire_directory_operation_seconds_bucket{le="0.01"}'), 2)
  t.equal(value(text, 'tickwire_directory_operation_seconds_bucket{le="+Inf"}'), 3)
  t.equal(value(text, 'tickwire_directory_operation_seconds_count'), 3)
  t.equal(value(text, 'process_cpu_seconds_total{worker="0"}'), 13, 'per-worker counters carry their base too')
  t.equal(value(text, 'tickwire_players'), 2, 'gauges come from the new process only')
  for (const [k, v] of before) {
    if (k === 'tickwire_players') continue
    t.ok((parse(text).get(k) ?? -1) >= v, `${k} did not decrease`)
  }

  // A late reply from the replaced process must not be counted a second time.
  m.update(0, 3000, await snap(old.registry))
  t.equal(value(await m.render(), 'tickwire_connections_total'), 110, 'late snapshot from the old pid ignored')
})

t.test('same pid: a lower cumulative value keeps the higher old one', async (t) => {
  const w = worker()
  const m = new MetricsMerger()
  w.conns.inc(50)
  w.players.set(5)
  m.update(0, 4000, await snap(w.registry))
  w.registry.resetMetrics()
  w.conns.inc(20)
  w.players.set(3)
  m.update(0, 4000, await snap(w.registry))
  const text = await m.render()
  t.equal(value(text, 'tickwire_connections_total'), 50, 'counter held at its high-water mark')
  t.equal(value(text, 'tickwire_players'), 3, 'gauges may go down')
  w.conns.inc(40)
  m.update(0, 4000, await snap(w.registry))
  t.equal(value(await m.render(), 'tickwire_connections_total'), 60, 'and follows again once past it')
})

t.test('retire() drops gauges but keeps cumulative series; a replacement adds on top', async (t) => {
  const a = worker({ defaults: true })
  const b = worker()
  a.conns.inc(30)
  a.players.set(4)
  a.opSeconds.observe(0.05)
  b.conns.inc(20)
  b.players.set(6)
  const m = new MetricsMerger()
  m.update(0, 5000, await snap(a.registry))
  m.update(1, 5001, await snap(b.registry))
  const cpu = value(await m.render(), 'process_cpu_seconds_total{worker="0"}')

  m.retire(0)
  m.retire(0) // twice is harmless: nothing is folded twice
  m.retire(7) // a slot never seen
  let text = await m.render()
  t.equal(value(text, 'tickwire_connections_total'), 50, 'the dead worker still counts in the sum')
  t.equal(value(text, 'tickwire_players'), 6, 'but not in gauges')
  t.equal(value(text, 'tickwire_directory_operation_seconds_count'), 1)
  t.equal(value(text, 'process_cpu_seconds_total{worker="0"}'), cpu, 'its per-worker counters stay')
  t.notOk(parse(text).has('process_resident_memory_bytes{worker="0"}'), 'its per-worker gauges go')
  promtool(t, text)

  // Slot 1 misses this scrape (busy): its last snapshot still counts, gauges included.
  const c = worker()
  c.conns.inc(5)
  c.players.set(1)
  m.update(0, 5002, await snap(c.registry))
  text = await m.render()
  t.equal(value(text, 'tickwire_connections_total'), 55)
  t.equal(value(text, 'tickwire_players'), 7)
  m.update(0, 5000, await snap(a.registry))
  t.equal(value(await m.render(), 'tickwire_connections_total'), 55, 'a late snapshot from the retired pid is ignored')
})

t.test('escapes label values and help; renders NaN and infinities', async (t) => {
  const r = new client.Registry()
  new client.Counter({ name: 'tickwire_odd_total', help: 'Back\\slash and\nnewline', labelNames: ['reason'], registers: [r] }).inc(
    { reason: 'a "quoted" \\ path\nnext' },
    2,
  )
  const g = new client.Gauge({ name: 'tickwire_ratio', help: 'A ratio', labelNames: ['kind'], registers: [r] })
  g.set({ kind: 'nan' }, NaN)
  g.set({ kind: 'inf' }, Infinity)
  g.set({ kind: 'neg' }, -Infinity)
  const m = new MetricsMerger()
  // Straight from getMetricsAsJSON (a structured-clone IPC keeps NaN and infinities)...
  m.update(0, 6000, await r.getMetricsAsJSON())
  let text = await m.render()
  t.match(text, '# HELP tickwire_odd_total Back\\\\slash and\\nnewline\n')
  t.match(text, 'tickwire_odd_total{reason="a \\"quoted\\" \\\\ path\\nnext"} 2\n')
  t.match(text, 'tickwire_ratio{kind="nan"} NaN\n')
  t.match(text, 'tickwire_ratio{kind="inf"} +Inf\n')
  t.match(text, 'tickwire_ratio{kind="neg"} -Inf\n')
  promtool(t, text)
  // ...while JSON turns them into null, which can only honestly read as NaN.
  m.update(0, 6000, await snap(r))
  text = await m.render()
  t.match(text, 'tickwire_ratio{kind="inf"} NaN\n')
  t.equal(value(text, 'tickwire_odd_total{reason="a \\"quoted\\" \\\\ path\\nnext"}'), 2)
})

t.test('summaries: _sum and _count are cumulative, quantiles are not', async (t) => {
  const summary = () => {
    const r = new client.Registry()
    return { r, s: new client.Summary({ name: 'tickwire_rtt_seconds', help: 'Round trip', percentiles: [0.5, 0.9], registers: [r] }) }
  }
  const a = summary()
  for (const v of [1, 2, 3]) a.s.observe(v)
  const m = new MetricsMerger()
  m.update(0, 7000, await snap(a.r))
  m.retire(0)
  const text = await m.render()
  t.equal(value(text, 'tickwire_rtt_seconds_count'), 3)
  t.equal(value(text, 'tickwire_rtt_seconds_sum'), 6)
  t.notOk(parse(text).has('tickwire_rtt_seconds{quantile="0.5"}'), 'quantiles of a dead process are gone')

  const b = summary()
  b.s.observe(4)
  m.update(0, 7001, await snap(b.r))
  const after = await m.render()
  t.equal(value(after, 'tickwire_rtt_seconds_count'), 4)
  t.equal(value(after, 'tickwire_rtt_seconds{quantile="0.5"}'), 4)
  const order = after.split('\n').filter((l) => l.startsWith('tickwire_rtt')).map((l) => l.replace(/ .*/, ''))
  t.same(order, ['tickwire_rtt_seconds{quantile="0.5"}', 'tickwire_rtt_seconds{quantile="0.9"}', 'tickwire_rtt_seconds_sum', 'tickwire_rtt_seconds_count'])
  promtool(t, after)
})

t.test('a supervisor metric named like a worker metric is refused', async (t) => {
  const m = new MetricsMerger()
  const w = worker()
  m.update(0, 8000, await snap(w.registry))
  const own = new client.Registry()
  new client.Gauge({ name: 'tickwire_players', help: 'clash', registers: [own] })
  await t.rejects(m.render(own), /tickwire_players/)
  t.equal(await new MetricsMerger().render(), '', 'nothing known, nothing rendered')
})
