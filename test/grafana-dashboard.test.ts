/**
 * deploy/grafana/tickwire.json, checked two ways. As JSON: it parses, every panel and target reads
 * from the `${datasource}` variable, ids are unique, panels have a place on the grid and do not
 * overlap, and the queries name only series tickwire serves or the recording rules record. For
 * real: Debian's Prometheus (the `prometheus` package, as test/prometheus-rules.test.ts uses
 * promtool) scrapes a real two-worker supervisor every second while a few players play, join
 * named rooms and leave (some by closing, some by sending garbage), loads
 * deploy/prometheus/rules/, and then every panel's query, every template variable's query and
 * every recording rule's expression is run through the HTTP API: an error or an empty result
 * fails the test, naming the panel.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { startCluster, type Cluster } from './helpers/cluster.js'
import { freePort, sleep } from './helpers/server.js'

const file = fileURLToPath(new URL('../deploy/grafana/tickwire.json', import.meta.url))
const rulesDir = fileURLToPath(new URL('../deploy/prometheus/rules/', import.meta.url))
const DS = '${datasource}'

interface Target {
  readonly refId?: string
  readonly expr?: string
  readonly datasource?: { type?: string; uid?: string }
}
interface Panel {
  readonly id?: number
  readonly type?: string
  readonly title?: string
  readonly description?: string
  readonly datasource?: { type?: string; uid?: string }
  readonly gridPos?: { x?: number; y?: number; w?: number; h?: number }
  readonly targets?: Target[]
  readonly panels?: Panel[]
}
interface Variable {
  readonly name: string
  readonly type: string
  readonly query?: string | { query?: string }
  readonly datasource?: { type?: string; uid?: string }
  readonly multi?: boolean
  readonly includeAll?: boolean
}
interface Dashboard {
  readonly uid?: string
  readonly title?: string
  readonly schemaVersion?: number
  readonly __inputs?: { name: string; type: string; pluginId: string }[]
  readonly panels: Panel[]
  readonly templating: { list: Variable[] }
}

const dashboard = JSON.parse(readFileSync(file, 'utf8')) as Dashboard

/** Every panel, those inside collapsed rows too. */
function allPanels(): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])])
}

/** Panels that query (rows only group). */
function queryPanels(): Panel[] {
  return allPanels().filter((p) => p.type !== 'row')
}

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? '')
}

/** Recording rules of deploy/prometheus/rules/recording.yml: name and expression (one line, or a `|` block). */
function recordingRules(): { record: string; expr: string }[] {
  const lines = readFileSync(join(rulesDir, 'recording.yml'), 'utf8').split('\n')
  const out: { record: string; expr: string }[] = []
  for (let i = 0; i < lines.length; i++) {
    const m = /^ {6}- record: (\S+)$/.exec(lines[i] as string)
    if (!m) continue
    const e = /^ {8}expr: (.*)$/.exec(lines[i + 1] ?? '')
    if (!e) throw new Error(`recording.yml: no expr line after record ${m[1]}`)
    let expr = e[1] as string
    if (expr === '|') {
      const block: string[] = []
      for (let j = i + 2; j < lines.length && /^ {10}/.test(lines[j] as string); j++) block.push((lines[j] as string).trim())
      expr = block.join(' ')
    }
    out.push({ record: m[1] as string, expr })
  }
  return out
}

t.test('the dashboard JSON: importable, every panel and target on the datasource variable, unique ids, a grid place each', async (t) => {
  t.equal(dashboard.uid, 'tickwire')
  t.equal(dashboard.title, 'tickwire')
  t.ok((dashboard.schemaVersion ?? 0) >= 36 && (dashboard.schemaVersion ?? 0) <= 41, `schemaVersion ${dashboard.schemaVersion}`)
  t.same(dashboard.__inputs?.map((i) => [i.type, i.pluginId]), [['datasource', 'prometheus']], 'one input: a Prometheus data source, asked for on import')

  const vars = dashboard.templating.list
  const ds = vars.find((v) => v.name === 'datasource')
  t.equal(ds?.type, 'datasource', 'a datasource variable')
  t.equal(ds?.query, 'prometheus', 'of Prometheus data sources')
  for (const name of ['job', 'instance']) {
    const v = vars.find((x) => x.name === name)
    t.equal(v?.type, 'query', `a ${name} query variable`)
    t.same(v?.datasource, { type: 'prometheus', uid: DS }, `${name} is queried from the datasource variable`)
    t.ok(v?.multi && v.includeAll, `${name}: several values and All (so panels match it with =~)`)
    t.match(variableQuery(v as Variable), /^label_values\(.+, \w+\)$/, `${name}: label_values(selector, label)`)
  }

  const panels = allPanels()
  t.ok(queryPanels().length >= 25, `${queryPanels().length} panels`)
  const ids = panels.map((p) => p.id)
  t.same(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'panel ids are unique')
  for (const p of panels) {
    const name = `panel ${p.id} "${p.title}"`
    t.ok(Number.isInteger(p.id) && (p.id as number) > 0, `${name}: an id`)
    t.ok(p.title, `${name}: a title`)
    t.same(p.datasource, { type: 'prometheus', uid: DS }, `${name}: datasource is the variable`)
    const g = p.gridPos ?? {}
    t.ok([g.x, g.y, g.w, g.h].every((n) => Number.isInteger(n) && (n as number) >= 0) && (g.w as number) > 0 && (g.h as number) > 0 && (g.x as number) + (g.w as number) <= 24, `${name}: gridPos ${JSON.stringify(g)} within 24 columns`)
    if (p.type === 'row') continue
    t.ok((p.description ?? '').length > 20, `${name}: a description`)
    const targets = p.targets ?? []
    t.ok(targets.length > 0, `${name}: a query`)
    const refs = targets.map((x) => x.refId)
    t.same(refs.filter((r, i) => refs.indexOf(r) !== i), [], `${name}: refIds unique`)
    for (const x of targets) {
      t.same(x.datasource, { type: 'prometheus', uid: DS }, `${name} ${x.refId}: datasource is the variable`)
      t.ok(x.expr, `${name} ${x.refId}: an expression`)
      t.match(x.expr ?? '', /job=~"\$job", instance=~"\$instance"/, `${name} ${x.refId}: filtered by the job and instance variables`)
    }
  }
  // Panels in the same row of the grid must not cover one another.
  const boxes = panels.map((p) => ({ p, ...(p.gridPos as { x: number; y: number; w: number; h: number }) }))
  for (const [i, a] of boxes.entries()) {
    for (const b of boxes.slice(i + 1)) {
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
      if (overlap) t.fail(`"${a.p.title}" and "${b.p.title}" overlap`)
    }
  }

  // The queries name only series tickwire serves (the README table, which test/metrics-table.test.ts
  // keeps equal to /metrics), prom-client's process series, `up`, or what the recording rules record.
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const from = readme.indexOf('\n## Metrics\n')
  const documented = new Set([...readme.slice(from, readme.indexOf('\n## ', from + 5)).matchAll(/^\| `(tickwire_\w+)`/gm)].map((m) => m[1] as string))
  const recorded = new Set(recordingRules().map((r) => r.record))
  const exprs = [...queryPanels().flatMap((p) => (p.targets ?? []).map((x) => x.expr ?? '')), ...vars.map(variableQuery)]
  for (const name of new Set(exprs.flatMap((e) => [...e.matchAll(/\b(tickwire_[a-z_]+?)(?:_bucket)?\b/g)].map((m) => m[1] as string)))) t.ok(documented.has(name), `${name} is served (the README table)`)
  for (const name of new Set(exprs.flatMap((e) => [...e.matchAll(/\b(tickwire:[a-z0-9_]+:[a-z0-9_]+)\b/g)].map((m) => m[1] as string)))) t.ok(recorded.has(name), `${name} is a recording rule`)
  for (const name of new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:process|nodejs)_[a-z_]+)\b/g)].map((m) => m[1] as string)))) t.match(name, /^(process_cpu_seconds_total|process_resident_memory_bytes)$/, `${name}: a default series every version of prom-client serves`)
})

/**
 * Grafana's variables in a query, as Grafana would expand them against this test's Prometheus:
 * - `$__rate_interval` is max(4 x the data source's scrape interval, $__interval + scrape interval),
 *   1 m for the 15 s scrapes of deploy/prometheus; here the scrape interval is 1 s, and 10 s
 *   leaves room for a late or failed scrape on a busy machine while staying well inside the
 *   time the test has been collecting (a rate needs two samples in its window).
 * - `$job` and `$instance` are multi-value variables with All: for Prometheus Grafana writes the
 *   selected values regex-escaped (for a PromQL string, so `.` becomes `\\.`), joined with `|` in
 *   parentheses when there are several. Here they are the values the variables' own queries found.
 * Any other `$` left over fails the test: a new variable needs a rule here.
 */
function expand(expr: string, vars: Record<string, readonly string[]>): string {
  const regex = (values: readonly string[]) => {
    const escaped = values.map((v) => v.replace(/[\\$^*{}[\]'+?.()|]/g, '\\\\$&'))
    return escaped.length === 1 ? (escaped[0] as string) : `(${escaped.join('|')})`
  }
  let out = expr.replaceAll('$__rate_interval', '10s')
  for (const [name, values] of Object.entries(vars)) out = out.replace(new RegExp(`\\$\\{${name}\\}|\\$${name}\\b`, 'g'), () => regex(values))
  if (out.includes('$')) throw new Error(`a Grafana variable the test does not expand: ${out}`)
  return out
}

interface PromResponse {
  status: string
  error?: string
  data?: { resultType?: string; result?: unknown[] } | string[]
}

async function api(base: string, path: string, params: Record<string, string>): Promise<PromResponse> {
  const res = await fetch(`${base}${path}?${new URLSearchParams(params)}`)
  return (await res.json()) as PromResponse
}

/** Starts Debian's prometheus; null when it is not installed and TICKWIRE_SKIP_PROMTOOL=1 allows that. */
async function startPrometheus(t: Test, config: string, dir: string): Promise<{ base: string; log: () => string } | null> {
  const version = spawnSync('prometheus', ['--version'], { encoding: 'utf8' })
  if (version.error) {
    if (process.env.TICKWIRE_SKIP_PROMTOOL === '1') t.comment('SKIPPED: prometheus not installed and TICKWIRE_SKIP_PROMTOOL=1')
    else t.fail('prometheus not found: install Debian\'s "prometheus" package (bash .ci/run does), or set TICKWIRE_SKIP_PROMTOOL=1')
    return null
  }
  const port = await freePort()
  const child: ChildProcess = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20000)))
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000)
      await exited
      clearTimeout(timer)
    }
  })
  const base = `http://127.0.0.1:${port}`
  const end = Date.now() + 30000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${log}`)
    const ready = await fetch(`${base}/-/ready`).then((r) => r.status === 200, () => false)
    if (ready) break
    if (Date.now() > end) throw new Error(`prometheus not ready after 30 s: ${log}`)
    await sleep(200)
  }
  return { base, log: () => log }
}

/** A few players on the cluster: named rooms (so the directory times locates) and quick play, each sending inputs. */
async function play(t: Test, c: Cluster): Promise<TickwireClient[]> {
  const players: TickwireClient[] = []
  t.teardown(() => {
    for (const p of players) p.close()
  })
  const joins = ['g1', 'g1', 'g2', undefined, undefined, 'g3']
  for (const room of joins) players.push(await TickwireClient.connect(c.url, { reconnect: false, ...(room ? { room } : {}) }))
  let n = 0
  const timer = setInterval(() => {
    n++
    for (const p of players) {
      if (p.closed) continue
      const spec = p.welcome.input
      p.sendInput(spec.map((s, i) => Math.max(s.min, Math.min(s.max, Math.round(Math.sin(n / 7 + i) * s.max)))))
    }
  }, 100)
  t.teardown(() => clearInterval(timer))
  return players
}

t.test('every panel, variable and recording rule answers from a real Prometheus scraping a real tickwire', { timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tickwire-grafana-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  const c = await startCluster(2)
  t.teardown(async () => {
    if (c.child.exitCode !== null || c.child.signalCode !== null) return
    c.child.kill('SIGTERM')
    const timer = setTimeout(() => c.child.kill('SIGKILL'), 15000)
    await c.exited
    clearTimeout(timer)
  })

  const config = join(dir, 'prometheus.yml')
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${join(rulesDir, 'recording.yml')}`,
      `  - ${join(rulesDir, 'alerts.yml')}`,
      'scrape_configs:',
      '  - job_name: tickwire',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${c.metricsPort}']`,
      '        labels:',
      '          node: m1',
      '',
    ].join('\n'),
  )
  const prom = await startPrometheus(t, config, dir)
  if (!prom) return

  const query = (q: string) => api(prom.base, '/api/v1/query', { query: q })
  const seen = async (q: string, want = 1) => {
    const r = await query(q)
    const result = r.data && !Array.isArray(r.data) ? r.data.result : undefined
    return r.status === 'success' && (result?.length ?? 0) >= want
  }
  const players = await play(t, c)
  // Prometheus's first scrape can come a few seconds after it is ready: the counters must be in
  // it at their value before the players leave, or the increase is never seen.
  const scraped = Date.now() + 60_000
  while (!(await seen('tickwire_players >= 6'))) {
    if (Date.now() > scraped) {
      t.fail('Prometheus did not scrape the 6 players within 60 s', { prometheus: prom.log(), tickwire: c.stderr().slice(-2000) })
      return
    }
    await sleep(500)
  }
  // Two ways to leave, so disconnects by reason has more than one: a clean close (client_closed)
  // and a malformed frame, which the server closes with BAD_MESSAGE (bad_message).
  const leaver = players[5] as TickwireClient
  leaver.close()
  const rude = await TickwireClient.connect(c.url, { reconnect: false, room: 'g3' })
  players.push(rude)
  rude.sendRaw(new Uint8Array([0xc1, 0x00]))

  const rules = recordingRules()
  t.ok(rules.length >= 15, `${rules.length} recording rules`)

  // Every recorded series has samples (the rules ran on scraped data), and the two disconnects are
  // in the rates, within 90 s.
  const waits = [...rules.map((r) => ({ q: r.record, want: 1 })), { q: 'tickwire:disconnects:rate5m_by_reason{reason=~"client_closed|bad_message"} > 0', want: 2 }]
  const end = Date.now() + 90_000
  for (;;) {
    const missing: string[] = []
    for (const w of waits) if (!(await seen(w.q, w.want))) missing.push(w.q)
    if (missing.length === 0) break
    if (Date.now() > end) {
      t.fail(`no samples after 90 s for: ${missing.join(', ')}`, { prometheus: prom.log(), tickwire: c.stderr().slice(-2000) })
      return
    }
    await sleep(1000)
  }
  t.pass('the recorded series have samples, and disconnects by reason has client_closed and bad_message')

  // The template variables, as Grafana runs label_values(selector, label): the label values API.
  const vars: Record<string, string[]> = {}
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    const m = /^label_values\((.+), (\w+)\)$/.exec(variableQuery(v))
    if (!m) {
      t.fail(`variable ${v.name}: not label_values(selector, label)`)
      continue
    }
    const r = await api(prom.base, `/api/v1/label/${m[2]}/values`, { 'match[]': expand(m[1] as string, vars) })
    const values = Array.isArray(r.data) ? r.data : []
    t.equal(r.status, 'success', `variable ${v.name}: ${r.error ?? 'answers'}`)
    t.ok(values.length > 0, `variable ${v.name} has values: ${values.join(', ')}`)
    vars[v.name] = values
  }
  t.same(vars.job, ['tickwire'])
  t.same(vars.instance, [`127.0.0.1:${c.metricsPort}`])

  // Every panel's query, and every recording rule's own expression.
  const checks = [
    ...queryPanels().flatMap((p) => (p.targets ?? []).map((x) => ({ what: `panel "${p.title}" ${x.refId}`, expr: expand(x.expr ?? '', vars) }))),
    ...rules.map((r) => ({ what: `recording rule ${r.record}`, expr: r.expr })),
  ]
  for (const { what, expr } of checks) {
    const r = await query(expr)
    const result = r.data && !Array.isArray(r.data) ? r.data : undefined
    t.equal(r.status, 'success', `${what}: ${r.error ?? 'answers'}`, { expr })
    const n = result?.resultType === 'scalar' ? 1 : (result?.result?.length ?? 0)
    t.ok(n > 0, `${what}: ${n} series`, { expr })
  }
})
