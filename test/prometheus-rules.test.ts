/**
 * deploy/prometheus/ checked by the real Prometheus tools (Debian's prometheus package, which
 * .ci/run installs): `promtool check config` on both scrape configurations (and the DNS variant
 * documented in prometheus-many.yml), `promtool check rules`, and `promtool test rules`, the unit
 * tests of every alert. Plus what promtool cannot know: every alert is tested firing and not
 * firing, has a runbook, and names only series tickwire serves (the README table, which
 * test/metrics-table.test.ts keeps equal to /metrics).
 */
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

const dir = fileURLToPath(new URL('../deploy/prometheus/', import.meta.url))
const read = (path: string) => readFileSync(join(dir, path), 'utf8')

/** Runs promtool; null when it is not installed (and TICKWIRE_SKIP_PROMTOOL=1 allows that). */
function promtool(t: Test, args: string[], cwd = dir): { status: number | null; out: string } | null {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' })
  if (r.error) {
    if (process.env.TICKWIRE_SKIP_PROMTOOL === '1') t.comment(`SKIPPED promtool ${args.join(' ')}: not installed and TICKWIRE_SKIP_PROMTOOL=1`)
    else t.fail('promtool not found: install Debian\'s "prometheus" package (bash .ci/run does), or set TICKWIRE_SKIP_PROMTOOL=1')
    return null
  }
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` }
}

/**
 * A copy of deploy/prometheus/ whose credentials_file points at a token that exists (promtool
 * checks that the file is there), so the configurations are checked as Prometheus would load them.
 */
function copy(t: Test): string {
  const tmp = mkdtempSync(join(tmpdir(), 'tickwire-prom-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  cpSync(dir, tmp, { recursive: true })
  writeFileSync(join(tmp, 'token'), 'a-metrics-token\n', { mode: 0o600 })
  const many = readFileSync(join(tmp, 'prometheus-many.yml'), 'utf8')
  t.match(many, '/etc/prometheus/tickwire-metrics-token')
  writeFileSync(join(tmp, 'prometheus-many.yml'), many.replaceAll('/etc/prometheus/tickwire-metrics-token', join(tmp, 'token')))
  return tmp
}

/** Alert names in alerts.yml, in order. */
function alertNames(): string[] {
  return [...read('rules/alerts.yml').matchAll(/^ {6}- alert: (\w+)$/gm)].map((m) => m[1] as string)
}

t.test('promtool check config: one machine, many machines (file SD), and the documented DNS SD job', async (t) => {
  const tmp = copy(t)
  for (const file of ['prometheus.yml', 'prometheus-many.yml']) {
    const r = promtool(t, ['check', 'config', file], tmp)
    if (!r) return
    t.equal(r.status, 0, `${file}: ${r.out}`)
    t.match(r.out, /SUCCESS: 2 rule files found/, `${file} loads the recording rules and the alerts`)
  }
  // The DNS alternative is a commented-out job: uncommented, it must be a valid configuration too.
  const many = readFileSync(join(tmp, 'prometheus-many.yml'), 'utf8')
  const lines = many.split('\n')
  const start = lines.findIndex((l) => l === '  # - job_name: tickwire')
  t.ok(start > 0, 'prometheus-many.yml documents a dns_sd_configs job')
  const dnsJob = lines.slice(start).filter((l) => l.startsWith('  #')).map((l) => `  ${l.slice(4)}`)
  t.match(dnsJob.join('\n'), /dns_sd_configs:\n\s+- names: \['_metrics\._tcp\./)
  const head = many.slice(0, many.indexOf('scrape_configs:'))
  writeFileSync(join(tmp, 'prometheus-dns.yml'), `${head}scrape_configs:\n${dnsJob.join('\n')}\n`)
  const r = promtool(t, ['check', 'config', 'prometheus-dns.yml'], tmp)
  if (r) t.equal(r.status, 0, `the DNS SD job: ${r.out}`)
  // And the check is real: a broken target file fails it.
  writeFileSync(join(tmp, 'targets', 'tickwire.yml'), '- targets: [\n')
  const broken = promtool(t, ['check', 'config', 'prometheus-many.yml'], tmp)
  if (broken) t.not(broken.status, 0, 'an unreadable target file fails promtool check config')
})

t.test('promtool check rules and promtool test rules pass', async (t) => {
  const check = promtool(t, ['check', 'rules', 'rules/recording.yml', 'rules/alerts.yml'])
  if (!check) return
  t.equal(check.status, 0, check.out)
  t.match(check.out, `SUCCESS: ${alertNames().length} rules found`)
  const test = promtool(t, ['test', 'rules', 'rules/tests.yml'])
  if (!test) return
  t.equal(test.status, 0, test.out)
  t.match(test.out, 'SUCCESS')
})

t.test('the unit tests would catch a broken alert', async (t) => {
  // One mutation per alert family: a threshold that can never be met must fail `promtool test rules`.
  const tmp = copy(t)
  const alerts = readFileSync(join(tmp, 'rules', 'alerts.yml'), 'utf8')
  const mutated = alerts.replace('tickwire_draining == 1', 'tickwire_draining == 2')
  t.not(mutated, alerts)
  writeFileSync(join(tmp, 'rules', 'alerts.yml'), mutated)
  const r = promtool(t, ['test', 'rules', 'rules/tests.yml'], tmp)
  if (!r) return
  t.not(r.status, 0, 'TickwireDrainStuck that cannot fire fails its test')
  t.match(r.out, /TickwireDrainStuck/)
})

t.test('every alert: tested firing and not firing, with a severity, a summary, a description and a runbook', async (t) => {
  const names = alertNames()
  t.ok(names.length >= 10, `${names.length} alerts`)
  for (const want of ['TickwireTickOverruns', 'TickwireWorkerDown', 'TickwireWorkerCrashLooping', 'TickwireMachineDown', 'TickwireMachineGone', 'TickwireMachinesAbsent', 'TickwireBackpressureCloses', 'TickwireDirectoryDown', 'TickwireDirectoryErrors', 'TickwireDrainStuck']) {
    t.ok(names.includes(want), `${want} is defined`)
  }
  const alerts = read('rules/alerts.yml')
  const blocks = alerts.split(/^ {6}- alert: /m).slice(1)
  for (const block of blocks) {
    const name = block.slice(0, block.indexOf('\n'))
    t.match(block, /\n {10}severity: (critical|warning)\n/, `${name}: severity`)
    for (const a of ['summary', 'description']) t.match(block, new RegExp(`\\n {10}${a}: '[^\\n]{10,}'\\n`), `${name}: ${a}`)
    t.match(block, /\n {10}runbook: \|\n( {12}\S[^\n]*\n){3,}/, `${name}: a runbook of several lines`)
  }
  const tests = read('rules/tests.yml')
  const cases = [...tests.matchAll(/^ {6}- eval_time: (\w+)\n {8}alertname: (\w+)\n {8}exp_alerts:( \[\])?$/gm)].map((m) => ({ name: m[2] as string, quiet: m[3] !== undefined }))
  for (const name of names) {
    t.ok(cases.some((c) => c.name === name && !c.quiet), `${name} is tested firing`)
    t.ok(cases.some((c) => c.name === name && c.quiet), `${name} is tested not firing`)
  }
  const unknown = cases.filter((c) => !names.includes(c.name)).map((c) => c.name)
  t.same(unknown, [], 'tests.yml tests no alert that does not exist')
})

t.test('recording rules: named level:metric:operation, each checked by a unit test', async (t) => {
  const records = [...read('rules/recording.yml').matchAll(/^ {6}- record: (\S+)$/gm)].map((m) => m[1] as string)
  t.ok(records.length >= 15, `${records.length} recording rules`)
  for (const want of [
    'tickwire:tick_duration_seconds:p99_by_worker',
    'tickwire:players:sum',
    'tickwire:sent_bytes_per_player:rate5m',
    'tickwire:deltas_skipped:rate5m_by_reason',
    'tickwire:resyncs:rate5m',
    'tickwire:disconnects:rate5m_by_reason',
    'tickwire:redirects:rate5m_by_kind',
    'tickwire:directory_errors:rate5m_by_op',
  ]) {
    t.ok(records.includes(want), `${want} is recorded`)
  }
  const tests = read('rules/tests.yml')
  for (const r of records) {
    t.match(r, /^tickwire:[a-z0-9_]+:[a-z0-9_]+$/, `${r}: level:metric:operation`)
    t.ok(tests.includes(`expr: round((${r}`), `${r} has a promql_expr_test`)
  }
})

t.test('the rules name only series tickwire serves (the README metrics table)', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Metrics\n'), readme.indexOf('\n## ', readme.indexOf('\n## Metrics\n') + 5))
  const documented = new Set([...section.matchAll(/^\| `(tickwire_\w+)`/gm)].map((m) => m[1] as string))
  t.ok(documented.size > 40, `${documented.size} series in the README table`)
  const rules = read('rules/recording.yml') + read('rules/alerts.yml')
  const used = new Set([...rules.matchAll(/\b(tickwire_[a-z_]+?)(?:_bucket)?\b/g)].map((m) => m[1] as string))
  t.ok(used.size >= 15, `${used.size} series used`)
  for (const name of used) t.ok(documented.has(name), `${name} is served (documented)`)
})
