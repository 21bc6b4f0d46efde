/**
 * The README "## Metrics" table is the list of series: this test keeps it equal to what a real
 * single process and a real two-worker supervisor serve on /metrics (names, types, label names),
 * and checks the rows' claims about where a series comes from and their units.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { startCluster } from './helpers/cluster.js'
import { freePort, startTest, waitFor } from './helpers/server.js'

interface Row {
  readonly type: string
  readonly unit: string
  readonly labels: readonly string[]
  readonly meaning: string
}

/** The README's metrics table: series name -> row. */
function readmeTable(): Map<string, Row> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const from = readme.indexOf('\n## Metrics\n')
  const section = readme.slice(from, readme.indexOf('\n## ', from + 5))
  const rows = new Map<string, Row>()
  for (const line of section.split('\n')) {
    const m = /^\| `(tickwire_\w+)` \| (\w+) \| ([^|]+) \| ([^|]+) \| (.+) \|$/.exec(line)
    if (!m) continue
    const labels = m[4]?.trim() === 'none' ? [] : [...(m[4] as string).matchAll(/`(\w+)`/g)].map((l) => l[1] as string)
    if (rows.has(m[1] as string)) throw new Error(`${m[1]} is in the table twice`)
    rows.set(m[1] as string, { type: m[2] as string, unit: (m[3] as string).trim(), labels: labels.sort(), meaning: (m[5] as string).trim() })
  }
  return rows
}

interface Family {
  type: string
  /** Label names over all samples, `le` and `quantile` aside. */
  readonly labels: Set<string>
  /** Values of the `worker` label seen. */
  readonly workers: Set<string>
  samples: number
}

/** Prometheus text -> tickwire_* family -> its TYPE and the label names of its samples. */
function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>()
  for (const m of text.matchAll(/^# TYPE (tickwire_\w+) (\w+)$/gm)) out.set(m[1] as string, { type: m[2] as string, labels: new Set(), workers: new Set(), samples: 0 })
  for (const line of text.split('\n')) {
    const m = /^(tickwire_\w+?)(_bucket|_sum|_count)?(?:\{(.*)\})? \S+$/.exec(line)
    if (!m) continue
    // A counter's samples are named like its family; _sum/_count/_bucket belong to a histogram family.
    const f = out.get(`${m[1]}${m[2] ?? ''}`) ?? out.get(m[1] as string)
    if (!f) throw new Error(`sample without a TYPE line: ${line}`)
    f.samples++
    for (const l of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      const [, name, value] = l as unknown as [string, string, string]
      if (name === 'le' || name === 'quantile') continue
      f.labels.add(name)
      if (name === 'worker') f.workers.add(value)
    }
  }
  return out
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return res.text()
}

t.test('the README metrics table lists exactly the tickwire_* series served, with their types and labels', async (t) => {
  const table = readmeTable()
  t.ok(table.size > 45, `${table.size} rows`)

  // A single process, scraped over HTTP (the endpoint registers its own refusal counter).
  const metricsPort = await freePort()
  const tw = await startTest({ metricsPort, metricsHost: '127.0.0.1' })
  t.teardown(() => tw.stop())
  const single = families(await scrape(metricsPort))

  // A supervisor with two workers; one join through the public port makes the directory time a locate.
  const c = await startCluster(2)
  t.teardown(() => {
    c.child.kill('SIGKILL')
  })
  const player = await TickwireClient.connect(c.url, { reconnect: false, room: 'table' })
  t.teardown(() => player.close())
  await waitFor(() => player.table.tick > 0, 5000, 'a frame')
  let text = await scrape(c.metricsPort)
  // Workers answer every scrape; a busy machine may take a moment to show the locate.
  const end = Date.now() + 5000
  while (!/^tickwire_directory_operation_seconds_count\{/m.test(text) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200))
    text = await scrape(c.metricsPort)
  }
  const cluster = families(text)

  for (const [where, served] of [['single process', single], ['supervisor', cluster]] as const) {
    for (const [name, f] of served) {
      const row = table.get(name)
      if (!row) {
        t.fail(`${where} serves ${name}, which the README table does not list`)
        continue
      }
      t.equal(f.type, row.type, `${name}: type ${row.type} (${where})`)
      t.ok(f.samples > 0, `${name} has samples (${where}), so its labels are checked`)
      t.same([...f.labels].sort(), row.labels, `${name}: labels ${row.labels.join(', ') || 'none'} (${where})`)
      if (f.labels.has('worker')) {
        const want = where === 'single process' ? ['0'] : ['0', '1']
        t.same([...f.workers].sort(), want, `${name}: worker is ${want.join(', ')} (${where}): one value per worker, no more`)
      }
    }
  }
  for (const [name, row] of table) {
    t.ok(single.has(name) || cluster.has(name), `the table's ${name} is served`)
    if (row.meaning.startsWith('supervisor') || row.meaning.startsWith('workers of a supervisor')) {
      t.notOk(single.has(name), `${name} ("${row.meaning.slice(0, 24)}..."): not from a single process`)
      t.ok(cluster.has(name), `${name}: from a supervisor`)
    } else {
      t.ok(single.has(name) && cluster.has(name), `${name}: from a single process and a supervisor`)
    }
    // Units the names promise.
    if (/_seconds$/.test(name)) t.equal(row.unit, 'seconds', `${name}: unit seconds`)
    if (/_bytes(_total|_max)?$/.test(name)) t.equal(row.unit, 'bytes', `${name}: unit bytes`)
    if (row.type === 'counter') t.match(name, /_total$/, `${name}: a counter ends in _total`)
  }
})
