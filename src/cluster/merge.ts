/**
 * Merges the workers' prom-client snapshots (`registry.getMetricsAsJSON()`,
 * sent over IPC) into one Prometheus text exposition for the supervisor's
 * /metrics.
 *
 * - `process_*` and `nodejs_*`, and the tick loop's series (WORKER_SERIES in
 *   src/metrics/registry.ts), describe one process: each sample gets a
 *   `worker="<slot>"` label (replacing the worker's own) instead of being
 *   summed, so `rate(tickwire_ticks_total)` is ticks per second per worker.
 * - Everything else is combined across slots per series, with the metric's
 *   own `aggregator` ('sum' unless the metric says otherwise).
 * - Cumulative series (counters, histogram buckets/_sum/_count, summary
 *   _sum/_count) never go backwards for a slot: when a slot's process dies or
 *   is replaced, its last values become that slot's base, added to every later
 *   value, so `rate()` sees no reset and sums never dip.
 * - Gauges come from each slot's latest snapshot; a retired slot has none.
 *
 * The text is rendered here rather than through a prom-client Registry: the
 * merged values are plain numbers, and prom-client would need a fake metric
 * object per family to print them.
 */
import client from 'prom-client'
import { WORKER_SERIES } from '../metrics/registry.js'

/** What a worker's `registry.getMetricsAsJSON()` returns (after a JSON round trip over IPC). */
export type Snapshot = client.MetricObjectWithValues<client.MetricValue<string>>[]

/** Metric name prefixes that describe one process: labelled by worker, never summed. */
export const PER_WORKER_PREFIXES: readonly string[] = Object.freeze(['process_', 'nodejs_'])

/** Worker metric families that describe one worker's tick loop: labelled by worker, never summed. */
const PER_WORKER_FAMILIES: ReadonlySet<string> = new Set(WORKER_SERIES)

/** Whether family `name` is labelled by worker slot rather than combined across slots. */
export function isPerWorker(name: string): boolean {
  return PER_WORKER_FAMILIES.has(name) || PER_WORKER_PREFIXES.some((p) => name.startsWith(p))
}

type Labels = Record<string, string | number>

interface Family {
  help: string
  type: string
  aggregator: string
  perWorker: boolean
}

interface Series {
  readonly family: string
  /** The sample's name: the family name, or `<family>_bucket|_sum|_count`. */
  readonly metricName: string
  readonly labels: Labels
  value: number
}

interface Slot {
  /** The process whose snapshot we hold; undefined once retired. */
  pid: number | undefined
  /** The process folded into `base` last: its late replies must not count twice. */
  previousPid: number | undefined
  /** Cumulative series of the current process, never lower than they were. */
  counters: Map<string, Series>
  /** Non-cumulative series of the current process's latest snapshot. */
  gauges: Map<string, Series>
  /** Cumulative totals of the slot's previous processes. */
  base: Map<string, Series>
}

const AGGREGATE: Record<string, (values: readonly number[]) => number> = {
  sum: (v) => v.reduce((a, b) => a + b, 0),
  max: (v) => v.reduce((a, b) => Math.max(a, b), -Infinity),
  min: (v) => v.reduce((a, b) => Math.min(a, b), Infinity),
  first: (v) => v[0] ?? NaN,
  average: (v) => v.reduce((a, b) => a + b, 0) / v.length,
}

const PROMETHEUS_TYPES = new Set(['counter', 'gauge', 'histogram', 'summary'])

/**
 * Keeps the latest snapshot of each worker slot and renders them as one exposition.
 *
 * @example
 * const merger = new MetricsMerger()
 * merger.update(0, child.pid, snapshotFromWorker0)
 * merger.retire(1)                      // worker 1 exited; a new one will take slot 1
 * res.end(await merger.render(supervisorRegistry))
 */
export class MetricsMerger {
  readonly #slots = new Map<number, Slot>()
  /** Every family seen, in first-seen order (the output order). */
  readonly #families = new Map<string, Family>()

  /**
   * Records the freshest snapshot of worker `slot`, taken from process `pid`.
   * A pid different from the slot's previous one means the process was
   * replaced: the old process's cumulative values move into the slot's base.
   * A late snapshot from the process replaced last is ignored.
   */
  update(slot: number, pid: number, snapshot: Snapshot): void {
    let s = this.#slots.get(slot)
    if (!s) {
      s = { pid: undefined, previousPid: undefined, counters: new Map(), gauges: new Map(), base: new Map() }
      this.#slots.set(slot, s)
    }
    if (pid === s.previousPid) return
    const { counters, gauges } = this.#normalize(slot, snapshot)
    if (pid === s.pid) {
      // Same process: a lower or missing cumulative value would read as a reset, so keep the old one.
      for (const [key, old] of s.counters) {
        const next = counters.get(key)
        if (!next) counters.set(key, old)
        else if (next.value < old.value) next.value = old.value
      }
    } else if (s.pid !== undefined) {
      fold(s)
    }
    s.pid = pid
    s.counters = counters
    s.gauges = gauges
  }

  /** A slot's process died (it will be replaced): its gauges stop counting; its cumulative values are kept as that slot's base. */
  retire(slot: number): void {
    const s = this.#slots.get(slot)
    if (!s || s.pid === undefined) return
    fold(s)
    s.pid = undefined
    s.gauges = new Map()
  }

  /**
   * Renders the merged exposition (Prometheus text format 0.0.4): every slot's
   * latest snapshot (answered now or last known) merged, then `own` (the
   * supervisor's own registry) rendered as-is and appended. Throws if `own`
   * has a metric named like a worker metric, which would repeat a family.
   */
  async render(own?: client.Registry): Promise<string> {
    // family -> series key -> the series' value in each slot that has it
    const merged = new Map<string, Map<string, { series: Series; values: number[] }>>()
    const add = (key: string, series: Series, value: number) => {
      let family = merged.get(series.family)
      if (!family) merged.set(series.family, (family = new Map()))
      const entry = family.get(key)
      if (entry) entry.values.push(value)
      else family.set(key, { series, values: [value] })
    }
    for (const slot of [...this.#slots.keys()].sort((a, b) => a - b)) {
      const s = this.#slots.get(slot) as Slot
      for (const [key, b] of s.base) add(key, b, b.value + (s.counters.get(key)?.value ?? 0))
      for (const [key, c] of s.counters) if (!s.base.has(key)) add(key, c, c.value)
      for (const [key, g] of s.gauges) add(key, g, g.value)
    }

    const blocks: string[] = []
    for (const [name, family] of this.#families) {
      // Per-worker series are unique to their slot, so there is nothing to combine (or omit).
      const aggregator = family.perWorker ? 'first' : family.aggregator
      if (aggregator === 'omit') continue
      const aggregate = AGGREGATE[aggregator] ?? AGGREGATE.sum!
      const lines = [`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.type}`]
      const entries = [...(merged.get(name)?.values() ?? [])]
      const ordered = family.type === 'histogram' || family.type === 'summary' ? sortSeries(name, entries) : entries
      for (const { series, values } of ordered) {
        lines.push(`${series.metricName}${formatLabels(series.labels)} ${formatValue(aggregate(values))}`)
      }
      blocks.push(lines.join('\n'))
    }

    if (own) {
      if (own.contentType !== client.Registry.PROMETHEUS_CONTENT_TYPE) throw new TypeError('MetricsMerger: the supervisor registry must use the Prometheus text format')
      const clash = own.getMetricsAsArray().find((m) => this.#families.has(m.name))
      if (clash) throw new Error(`MetricsMerger: supervisor metric ${clash.name} has the name of a worker metric; give it another name or prefix`)
      const text = (await own.metrics()).trimEnd()
      if (text !== '') blocks.push(text)
    }
    return blocks.length === 0 ? '' : `${blocks.join('\n\n')}\n`
  }

  /** Splits a snapshot into cumulative and other series, keyed by series identity, and records its families. */
  #normalize(slot: number, snapshot: Snapshot): { counters: Map<string, Series>; gauges: Map<string, Series> } {
    const counters = new Map<string, Series>()
    const gauges = new Map<string, Series>()
    for (const m of snapshot) {
      const name = m.name
      // The .d.ts calls `type` an enum; at runtime (and over IPC) it is the string.
      const type = PROMETHEUS_TYPES.has(String(m.type)) ? String(m.type) : 'untyped'
      const perWorker = isPerWorker(name)
      this.#families.set(name, { help: m.help, type, aggregator: m.aggregator ?? 'sum', perWorker })
      for (const v of m.values as client.MetricValueWithName<string>[]) {
        const metricName = v.metricName ?? name
        // Worker first, so a worker's series read together; any worker label of its own is replaced.
        const labels: Labels = perWorker ? { worker: String(slot) } : {}
        for (const [k, lv] of Object.entries(v.labels)) if (k !== 'worker' || !perWorker) labels[k] = lv as string | number
        // JSON carries NaN and +-Infinity as null; NaN is the honest reading.
        const value = typeof v.value === 'number' ? v.value : NaN
        const series: Series = { family: name, metricName, labels, value }
        const key = seriesKey(metricName, labels)
        if (isCumulative(type, name, metricName)) counters.set(key, series)
        else gauges.set(key, series)
      }
    }
    return { counters, gauges }
  }
}

/** Moves the slot's cumulative values into its base (its process died or was replaced). */
function fold(s: Slot): void {
  for (const [key, c] of s.counters) {
    // A NaN would poison the base for good; skip it.
    if (!Number.isFinite(c.value)) continue
    const b = s.base.get(key)
    if (b) b.value += c.value
    else s.base.set(key, { ...c })
  }
  s.previousPid = s.pid
  s.counters = new Map()
}

/** Counters, histograms, and a summary's _sum and _count (its quantiles come and go). */
function isCumulative(type: string, family: string, metricName: string): boolean {
  if (type === 'counter' || type === 'histogram') return true
  return type === 'summary' && (metricName === `${family}_sum` || metricName === `${family}_count`)
}

function seriesKey(metricName: string, labels: Labels): string {
  const names = Object.keys(labels).sort()
  return `${metricName}{${names.map((n) => `${n}=${JSON.stringify(String(labels[n]))}`).join(',')}}`
}

/**
 * Orders a family's series as Prometheus expects: each label set's
 * histogram buckets in ascending `le` (`+Inf` last) or summary quantiles
 * ascending, then its _sum, then its _count; label sets in first-seen order.
 */
function sortSeries<T extends { series: Series }>(family: string, entries: T[]): T[] {
  const groups = new Map<string, number>()
  const keyed = entries.map((e) => {
    const { le, quantile, ...rest } = e.series.labels
    const group = seriesKey('', rest)
    if (!groups.has(group)) groups.set(group, groups.size)
    const n = e.series.metricName
    const rank = n === `${family}_sum` ? 1 : n === `${family}_count` ? 2 : 0
    const bound = le ?? quantile
    const order = bound === undefined ? 0 : bound === '+Inf' ? Infinity : Number(bound)
    return { e, group: groups.get(group) as number, rank, order: Number.isNaN(order) ? 0 : order }
  })
  keyed.sort((a, b) => a.group - b.group || a.rank - b.rank || a.order - b.order)
  return keyed.map((k) => k.e)
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function escapeLabel(s: string): string {
  return escapeHelp(s).replace(/"/g, '\\"')
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}
