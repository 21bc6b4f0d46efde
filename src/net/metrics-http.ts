/**
 * The metrics listener: `GET /metrics` in Prometheus text format on its own
 * port, so it can stay private while the game port is public, plus
 * `/healthz` and `/readyz`, so probes keep answering while the public port
 * has stopped accepting (fd pressure, see fdguard.ts).
 *
 * Scrapes run in the game process, so they are kept cheap and bounded:
 * - one render is reused for `cacheSeconds` (and shared by scrapes that
 *   overlap it), so a flood from many addresses renders at most once a period;
 * - each client address has a token bucket (`rate`/s, `burst`); past it the
 *   answer is 429 with `retry-after`, before any work; the table is bounded;
 * - with a `token`, `/metrics` needs `Authorization: Bearer <token>` (401
 *   otherwise, compared in constant time); the probes stay open.
 * Refusals are counted in `tickwire_metrics_refused_total{reason}` in the
 * registry this endpoint renders.
 *
 * `extend` mounts more routes on the same port with the same per-address
 * buckets: the monitor page (`--monitor`, src/monitor/http.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import client from 'prom-client'
import type { Logger } from '../log.js'
import { isLoopback } from './loopback.js'
import uWS, { listenExclusive, type HttpResponse, type TemplatedApp, type us_listen_socket } from './uws.js'

export interface MetricsEndpoint {
  readonly port: number
  close(): void
}

/** Why a /metrics request was refused: `tickwire_metrics_refused_total{reason}`. */
export const MetricsRefusal = { TOKEN: 'token', RATE: 'rate' } as const
export type MetricsRefusal = (typeof MetricsRefusal)[keyof typeof MetricsRefusal]

export interface MetricsOptions {
  readonly host: string
  /** 0 picks a free port. */
  readonly port: number
  /** The registry rendered (its content type is served); the refusal counter is registered in it. */
  readonly registry: client.Registry
  /** Renders the page; default: `registry.metrics()`. The supervisor passes its merged render. */
  readonly render?: () => Promise<string>
  readonly log: Logger
  /** Bearer token /metrics requires; empty or absent: none. */
  readonly token?: string
  /** How long one render is reused, in seconds; 0: render every scrape (overlapping scrapes still share one). Default 1. */
  readonly cacheSeconds?: number
  /** Whether `/readyz` answers 200; default: always (once listening). */
  readonly ready?: () => boolean
  /** Sustained /metrics requests per second per client address. Default 10. */
  readonly ratePerAddress?: number
  /** Requests per address allowed in a burst above the rate. Default 60. */
  readonly burstPerAddress?: number
  /** Addresses tracked at once (oldest dropped past it). Default 4096. */
  readonly maxAddresses?: number
  /** Clock in ms (tests). */
  readonly now?: () => number
  /** Mounts more routes (the monitor, src/monitor/http.ts), sharing the per-address buckets. */
  readonly extend?: (app: TemplatedApp, shared: { readonly limiter: AddressBuckets; readonly now: () => number }) => void
}

export const METRICS_DEFAULTS = Object.freeze({
  cacheSeconds: 1,
  ratePerAddress: 10, // requests/s: Prometheus scrapes every 10-60 s; dashboards and curl loops fit too
  burstPerAddress: 60, // requests: a watch loop or a test polling through a restart
  maxAddresses: 4096, // entries of about 100 bytes: well under 1 MiB
})

const REFUSED_NAME = 'tickwire_metrics_refused_total'

export { isLoopback }

/**
 * A check of `Authorization: Bearer <token>` headers; with an empty token every header passes.
 * Digests of equal length, so timingSafeEqual neither throws nor leaks the token's length.
 */
export function bearerCheck(token: string): (header: string) => boolean {
  const wanted = token !== '' ? createHash('sha256').update(`Bearer ${token}`).digest() : null
  return (header) => {
    if (!wanted) return true
    // The scheme is case-insensitive (RFC 7235); the token is not.
    const got = /^bearer /i.test(header) ? `Bearer ${header.slice(7)}` : header
    return timingSafeEqual(createHash('sha256').update(got).digest(), wanted)
  }
}

/** Starts the metrics listener; rejects if the port cannot be bound (exclusively). */
export function serveMetrics(opts: MetricsOptions): Promise<MetricsEndpoint> {
  const { registry, log } = opts
  const now = opts.now ?? Date.now
  const render = opts.render ?? (() => registry.metrics())
  const cacheMs = (opts.cacheSeconds ?? METRICS_DEFAULTS.cacheSeconds) * 1000
  const ready = opts.ready ?? (() => true)
  const contentType = registry.contentType
  const refused = refusalCounter(registry)
  const limiter = new AddressBuckets(
    opts.ratePerAddress ?? METRICS_DEFAULTS.ratePerAddress,
    opts.burstPerAddress ?? METRICS_DEFAULTS.burstPerAddress,
    opts.maxAddresses ?? METRICS_DEFAULTS.maxAddresses,
  )
  const token = opts.token ?? ''
  const authorized = bearerCheck(token)

  let cached: { body: string; at: number } | null = null
  let inFlight: Promise<string> | null = null
  const page = (): Promise<string> => {
    if (cached && now() - cached.at < cacheMs) return Promise.resolve(cached.body)
    inFlight ??= render().then(
      (body) => {
        cached = { body, at: now() }
        inFlight = null
        return body
      },
      (err: unknown) => {
        inFlight = null
        throw err
      },
    )
    return inFlight
  }

  const app = uWS.App()
  app.get('/metrics', (res, req) => {
    const address = Buffer.from(res.getRemoteAddressAsText()).toString()
    const wait = limiter.take(address, now())
    if (wait > 0) {
      refused.inc({ reason: MetricsRefusal.RATE })
      res.writeStatus('429 Too Many Requests').writeHeader('retry-after', String(Math.ceil(wait))).writeHeader('content-type', 'text/plain').end('too many scrapes\n')
      return
    }
    if (!authorized(req.getHeader('authorization'))) {
      refused.inc({ reason: MetricsRefusal.TOKEN })
      res.writeStatus('401 Unauthorized').writeHeader('www-authenticate', 'Bearer realm="tickwire metrics"').writeHeader('content-type', 'text/plain').end('bearer token required\n')
      return
    }
    answer(res, page(), contentType, log)
  })
  app.get('/healthz', (res) => {
    res.writeHeader('content-type', 'text/plain').end('ok\n')
  })
  app.get('/readyz', (res) => {
    if (ready()) res.writeHeader('content-type', 'text/plain').end('ready\n')
    else res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').end('not ready\n')
  })
  opts.extend?.(app, { limiter, now })
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain').end('not found: try /metrics, /healthz or /readyz\n')
  })
  return new Promise((resolve, reject) => {
    // Exclusive: a second process on the same metrics port must fail loudly, not share it.
    listenExclusive(app, opts.host, opts.port, (sock: us_listen_socket | false) => {
      if (!sock) return reject(new Error(`cannot listen for metrics on ${opts.host}:${opts.port} (in use, or not permitted)`))
      const port = uWS.us_socket_local_port(sock as never)
      if (!isLoopback(opts.host) && token === '') {
        log.warn('metrics port reachable beyond this machine without a token: set --metrics-token, or bind --metrics-host 127.0.0.1', { host: opts.host, port })
      }
      let open = true
      resolve({
        port,
        // Idempotent: closing a listen socket twice is a use-after-free in uWS (a segfault).
        close: () => {
          if (open) uWS.us_listen_socket_close(sock)
          open = false
        },
      })
    })
  })
}

/** Writes the page once it is rendered, unless the client went away. */
function answer(res: HttpResponse, body: Promise<string>, contentType: string, log: Logger): void {
  let aborted = false
  res.onAborted(() => {
    aborted = true
  })
  body.then(
    (text) => {
      if (!aborted) res.cork(() => res.writeHeader('content-type', contentType).end(text))
    },
    (err: Error) => {
      log.error('metrics render failed', { error: err.message })
      if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end('metrics failed\n'))
    },
  )
}

/** The refusal counter in `registry` (one per registry, even if the endpoint is started twice). */
function refusalCounter(registry: client.Registry): client.Counter<'reason'> {
  const existing = registry.getSingleMetric(REFUSED_NAME)
  if (existing) return existing as client.Counter<'reason'>
  const c = new client.Counter({
    name: REFUSED_NAME,
    help: 'Requests to /metrics refused: a missing or wrong bearer token (401), or too many from one address (429)',
    labelNames: ['reason'],
    registers: [registry],
  })
  for (const reason of Object.values(MetricsRefusal)) c.inc({ reason }, 0)
  return c
}

/**
 * Token buckets keyed by client address, at most `max` of them: when full, the
 * least recently seen address is forgotten (it starts again with a full
 * bucket, which costs at most one burst).
 */
export class AddressBuckets {
  readonly #rate: number
  readonly #burst: number
  readonly #max: number
  /** Insertion order is recency order: an entry is re-inserted on each use. */
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(rate: number, burst: number, max: number) {
    this.#rate = rate
    this.#burst = burst
    this.#max = max
  }

  get size(): number {
    return this.#buckets.size
  }

  /** Takes one token for `key` at time `nowMs`: 0 if allowed, else the seconds until a token is due. */
  take(key: string, nowMs: number): number {
    const b = this.#buckets.get(key)
    let tokens = this.#burst
    if (b) {
      tokens = Math.min(this.#burst, b.tokens + ((nowMs - b.at) / 1000) * this.#rate)
      this.#buckets.delete(key)
    } else if (this.#buckets.size >= this.#max) {
      const oldest = this.#buckets.keys().next().value
      if (oldest !== undefined) this.#buckets.delete(oldest)
    }
    const allowed = tokens >= 1
    this.#buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, at: nowMs })
    return allowed ? 0 : (1 - tokens) / this.#rate
  }
}
