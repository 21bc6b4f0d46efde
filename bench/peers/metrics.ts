/**
 * A tiny Prometheus endpoint for the benchmark's peers (plain `node:http`, no
 * prom-client: the peers stay what a developer would write by hand). Every
 * peer exports the same names, so the load generator reads them alike:
 *
 *   peer_tick_duration_seconds   histogram: wall time of one tick (the load
 *                                generator reads any `*tick_duration_seconds`)
 *   peer_ticks_total             counter
 *   peer_players                 gauge
 *   process_cpu_*_seconds_total, process_resident_memory_bytes  (prom-client's names)
 *
 * plus whatever extra counters, gauges and histograms a peer registers.
 */
import { createServer, type Server } from 'node:http'

/** Bucket bounds of every tick histogram, seconds (the same as tickwire's `tick_duration_seconds`). */
export const TICK_BUCKETS = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.012, 0.016, 0.025, 0.033, 0.05, 0.1, 0.25] as const

/** A cumulative Prometheus histogram with fixed bounds. `observe` is a short linear scan, no allocation. */
export class Histogram {
  readonly name: string
  readonly help: string
  readonly bounds: readonly number[]
  /** counts[i]: observations <= bounds[i] and > bounds[i - 1]; the last slot is +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(name: string, help: string, bounds: readonly number[] = TICK_BUCKETS) {
    for (let i = 1; i < bounds.length; i++) {
      if (!((bounds[i] as number) > (bounds[i - 1] as number))) throw new RangeError(`histogram ${name}: bounds must increase, got ${bounds.join(', ')}`)
    }
    this.name = name
    this.help = help
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(seconds: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && seconds > (b[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += seconds
    this.count++
  }

  text(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`
    let acc = 0
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i] as number
      out += `${this.name}_bucket{le="${this.bounds[i]}"} ${acc}\n`
    }
    acc += this.counts[this.bounds.length] as number
    out += `${this.name}_bucket{le="+Inf"} ${acc}\n${this.name}_sum ${this.sum}\n${this.name}_count ${this.count}\n`
    return out
  }
}

/** A sample read at scrape time. */
export interface Reading {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge'
  readonly read: () => number
}

/** The registry of one peer process: its histograms and scrape-time readings, rendered as Prometheus text. */
export class PeerMetrics {
  readonly tickDuration: Histogram
  readonly #histograms: Histogram[]
  readonly #readings: Reading[] = []

  constructor(tickHelp: string) {
    this.tickDuration = new Histogram('peer_tick_duration_seconds', tickHelp)
    this.#histograms = [this.tickDuration]
    this.add({ name: 'process_cpu_user_seconds_total', help: 'User CPU time spent, seconds', type: 'counter', read: () => process.cpuUsage().user / 1e6 })
    this.add({ name: 'process_cpu_system_seconds_total', help: 'System CPU time spent, seconds', type: 'counter', read: () => process.cpuUsage().system / 1e6 })
    this.add({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time spent, seconds',
      type: 'counter',
      read: () => {
        const u = process.cpuUsage()
        return (u.user + u.system) / 1e6
      },
    })
    this.add({ name: 'process_resident_memory_bytes', help: 'Resident memory size, bytes', type: 'gauge', read: () => process.memoryUsage.rss() })
  }

  add(r: Reading): void {
    this.#readings.push(r)
  }

  histogram(name: string, help: string, bounds: readonly number[] = TICK_BUCKETS): Histogram {
    const h = new Histogram(name, help, bounds)
    this.#histograms.push(h)
    return h
  }

  text(): string {
    let out = ''
    for (const h of this.#histograms) out += h.text()
    for (const r of this.#readings) out += `# HELP ${r.name} ${r.help}\n# TYPE ${r.name} ${r.type}\n${r.name} ${r.read()}\n`
    return out
  }
}

/** Serves `metrics.text()` on GET /metrics (any other path: 404). Resolves once listening. */
export function serveMetrics(metrics: PeerMetrics, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metrics.text())
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve(server)
    })
  })
}
