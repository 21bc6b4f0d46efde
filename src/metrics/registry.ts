/**
 * The Prometheus registry. Counters are read from `Stats` and the tick loop
 * at scrape time (prom-client `collect`), so the hot path never calls into
 * prom-client; only the tick-duration histogram is observed per tick (once
 * per process, not per player). No per-player or per-room labels.
 */
import client from 'prom-client'
import type { DirectoryStats } from '../directory/directory.js'
import type { Stats } from './stats.js'

/** What the registry reads at scrape time. */
export interface MetricsSources {
  readonly stats: Stats
  readonly loop: { readonly tick: number; readonly overruns: number; readonly catchUpTicks: number; readonly skippedSlots: number; readonly stalls: number }
  readonly rooms: () => number
  readonly players: () => number
  /** Bytes buffered in user space toward all sockets, and toward the worst one. */
  readonly buffered: () => { total: number; max: number }
  /** Tick budget in seconds (1 / tick rate), exported as a gauge for dashboards. */
  readonly tickBudgetSeconds: number
  /** Seats held for a resume (their player's connection dropped). */
  readonly held: () => number
  /** The room directory's counters, when this process is one worker of several. */
  readonly directory?: DirectoryStats | undefined
  /**
   * The `worker` label of the per-loop series (WORKER_SERIES); default 0, a
   * single process. A supervisor sets it to the slot when it merges anyway.
   */
  readonly worker?: number
}

/**
 * Series that describe one process's tick loop: they carry a `worker` label
 * (the slot, bounded by --workers; 0 for a single process), so the supervisor
 * never sums them and `rate(tickwire_ticks_total)` reads ticks per second per
 * worker (src/cluster/merge.ts). Named with the default prefix, the only one
 * a supervisor's workers use.
 */
export const WORKER_SERIES = Object.freeze([
  'tickwire_tick_duration_seconds',
  'tickwire_tick_lateness_seconds',
  'tickwire_ticks_total',
  'tickwire_tick_overruns_total',
  'tickwire_tick_catchup_total',
  'tickwire_ticks_skipped_total',
  'tickwire_tick_stalls_total',
] as const)

/** Metric names prom-client's default metrics export as gauges ending in _total (see README: promtool allowlist). */
export const DEFAULT_TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const

/** Resolution of the nodejs_eventloop_lag_* figures, ms (see collectDefaultMetrics below). */
export const EVENT_LOOP_PRECISION_MS = 100

export class Metrics {
  readonly registry = new client.Registry()
  /** The tick histograms' children for this worker's label, bound once: observe() then hashes no labels per tick. */
  readonly #tickDuration: client.Histogram.Internal<string>
  readonly #tickLateness: client.Histogram.Internal<string>

  constructor(src: MetricsSources, prefix = 'tickwire_') {
    const r = this.registry
    const worker = Object.freeze({ worker: String(src.worker ?? 0) })
    // The event-loop lag monitor samples on a timer: prom-client's default 10 ms wakes an idle
    // process 100 times a second, half of its idle CPU. 100 ms is plenty for a scrape every 15 s.
    client.collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: EVENT_LOOP_PRECISION_MS })
    const tickDuration = new client.Histogram({
      name: `${prefix}tick_duration_seconds`,
      help: 'Wall time of one tick: inputs, simulation, encode and send',
      buckets: [0.0005, 0.001, 0.002, 0.004, 0.008, 0.012, 0.016, 0.025, 0.033, 0.05, 0.1, 0.25],
      labelNames: ['worker'],
      registers: [r],
    })
    const tickLateness = new client.Histogram({
      name: `${prefix}tick_lateness_seconds`,
      help: 'How late a tick started after its scheduled time (timer jitter, event-loop stalls, catch-up)',
      buckets: [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.033, 0.05, 0.1, 0.25, 1],
      labelNames: ['worker'],
      registers: [r],
    })
    // Zero buckets from the start, as an unlabelled histogram has: a rate() over the first ticks has a baseline.
    tickDuration.zero(worker)
    tickLateness.zero(worker)
    this.#tickDuration = tickDuration.labels(worker)
    this.#tickLateness = tickLateness.labels(worker)
    // Aggregators tell the supervisor how to merge a gauge across workers (default: sum).
    gauge(r, `${prefix}tick_budget_seconds`, 'Time available per tick (1 / tick rate)', () => src.tickBudgetSeconds, 'max')
    const { stats, loop } = src
    counter(r, `${prefix}ticks_total`, 'Simulation ticks run by this worker\'s loop', () => loop.tick, worker)
    counter(r, `${prefix}tick_overruns_total`, 'Ticks that took longer than the tick budget', () => loop.overruns, worker)
    counter(r, `${prefix}tick_catchup_total`, 'Ticks run late, back to back, to catch up', () => loop.catchUpTicks, worker)
    counter(r, `${prefix}ticks_skipped_total`, 'Tick slots dropped because the loop fell too far behind', () => loop.skippedSlots, worker)
    counter(r, `${prefix}tick_stalls_total`, 'Event-loop stalls: tick wake-ups later than max(250 ms, 5 tick periods)', () => loop.stalls, worker)
    gauge(r, `${prefix}players`, 'Players seated in rooms', () => src.players())
    gauge(r, `${prefix}rooms`, 'Rooms open', () => src.rooms())
    gauge(r, `${prefix}buffered_bytes`, 'Bytes queued in user space toward all sockets (uWS getBufferedAmount; excludes kernel buffers)', () => src.buffered().total)
    gauge(r, `${prefix}socket_buffered_bytes_max`, 'Bytes queued in user space toward the most backed-up socket', () => src.buffered().max, 'max')
    gauge(r, `${prefix}seats_held`, 'Seats held for a player whose connection dropped, awaiting a resume', () => src.held())
    counter(r, `${prefix}seat_holds_expired_total`, 'Held seats released because no resume came within the resume window', () => stats.holdsExpired)
    labeled(r, `${prefix}redirects_total`, 'Clients redirected to the worker that owns their room, by kind (direct: its direct port; route: the public URL with route=)', 'kind', stats.redirects)
    counter(r, `${prefix}route_misses_total`, 'Upgrades carrying route=R that reached another worker than R (the load balancer breaks its contract)', () => stats.routeMisses)
    labeled(r, `${prefix}resumes_total`, 'Resume attempts, by outcome', 'outcome', stats.resumes)
    counter(r, `${prefix}connections_total`, 'WebSocket connections opened', () => stats.connections)
    counter(r, `${prefix}sent_bytes_total`, 'Bytes of WebSocket payload sent (state frames, welcomes, pongs)', () => stats.bytesSent)
    counter(r, `${prefix}sent_messages_total`, 'WebSocket messages sent (STATE, WELCOME, PONG)', () => stats.messagesSent)
    counter(r, `${prefix}state_frames_sent_total`, 'STATE frames sent', () => stats.framesSent)
    counter(r, `${prefix}received_bytes_total`, 'Bytes of WebSocket payload received', () => stats.bytesReceived)
    counter(r, `${prefix}received_messages_total`, 'WebSocket messages received', () => stats.messagesReceived)
    counter(r, `${prefix}room_errors_total`, 'Rooms closed because their game code (or replication) threw; see the error log', () => stats.roomErrors)
    counter(r, `${prefix}inputs_total`, 'Valid INPUT messages accepted', () => stats.inputsApplied)
    counter(r, `${prefix}game_messages_queued_total`, 'Game message and props frames queued for players (MESSAGE, PROPS; one per player reached)', () => stats.gameMessagesQueued)
    counter(r, `${prefix}game_messages_received_total`, 'CLIENT_MESSAGEs accepted and handed to the game', () => stats.gameMessagesReceived)
    counter(r, `${prefix}outbox_overflows_total`, 'Players whose unacknowledged game messages passed --outbox-bytes or --outbox-frames (closed TOO_SLOW, or their held seat released)', () => stats.outboxOverflows)
    labeled(r, `${prefix}deltas_skipped_total`, 'Frames not sent to a player this tick, by backpressure layer', 'reason', stats.skipped)
    labeled(r, `${prefix}full_states_total`, 'Full states sent instead of deltas (join, or the acked baseline left the history: a resync)', 'reason', stats.fullStates)
    labeled(r, `${prefix}disconnects_total`, 'Sockets closed, by reason', 'reason', stats.disconnects)
    labeled(r, `${prefix}inputs_rejected_total`, 'Client messages rejected (each closes its socket), by reason', 'reason', stats.rejected)
    labeled(r, `${prefix}address_limited_total`, 'Things refused because one client address reached a per-address budget, by budget', 'reason', stats.addressLimited)
    counter(r, `${prefix}accept_pauses_total`, 'Times the public port stopped accepting because file descriptors ran short (--fd-reserve)', () => stats.acceptPauses)
    counter(r, `${prefix}auth_accepted_total`, 'Join tokens that verified at the upgrade (--auth)', () => stats.authAccepted)
    labeled(r, `${prefix}auth_refused_total`, 'Join tokens refused at the upgrade, by reason (401: missing, malformed, algorithm, signature, expired, not_yet_valid, issuer, audience; 403: room; 503: keys_unavailable)', 'reason', stats.authRefused)
    labeled(r, `${prefix}http_rejected_total`, 'HTTP requests and upgrades refused on the public port, by reason', 'reason', stats.upgradesRejected)
    labeled(r, `${prefix}room_list_requests_total`, 'GET /rooms requests on the public port, by outcome (ok; bad_query: 400; method: 405; rate_limited: 429; unavailable: 503)', 'outcome', stats.roomList)
    counter(r, `${prefix}room_meta_invalid_total`, 'Rooms whose game meta() threw or returned a bad value (logged once per room, listed as {})', () => stats.badRoomMeta)
    if (src.directory) directoryMetrics(r, prefix, src.directory)
  }

  /** Records one tick's duration and how late it started. */
  observeTick(seconds: number, latenessSeconds: number): void {
    this.#tickDuration.observe(seconds)
    this.#tickLateness.observe(latenessSeconds)
  }

  get contentType(): string {
    return this.registry.contentType
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }
}

/** The room directory's series (src/directory/): operations, their latency, takeovers, lost rooms, reachability. */
function directoryMetrics(r: client.Registry, prefix: string, d: DirectoryStats): void {
  const last: Record<string, number> = {}
  new client.Counter({
    name: `${prefix}directory_operations_total`,
    help: 'Room directory operations (locate, register, renew, release, heartbeat), by outcome (ok; error: failed, timed out or directory unreachable)',
    labelNames: ['op', 'outcome'],
    registers: [r],
    collect() {
      for (const [op, o] of Object.entries(d.ops)) {
        for (const outcome of ['ok', 'error'] as const) {
          const key = `${op}:${outcome}`
          const prev = last[key] ?? 0
          const v = o[outcome]
          if (v > prev) this.inc({ op, outcome }, v - prev)
          else if (prev === 0) this.inc({ op, outcome }, 0)
          last[key] = v
        }
      }
    },
  })
  const latency = new client.Histogram({
    name: `${prefix}directory_operation_seconds`,
    help: 'Time the room directory took to answer an operation (Redis round trip, or the supervisor over IPC)',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [r],
  })
  d.observe = (op, seconds) => latency.observe({ op }, seconds)
  counter(r, `${prefix}directory_takeovers_total`, 'Rooms this process took over from an owner that stopped heartbeating (a new lease epoch)', () => d.takeovers)
  counter(r, `${prefix}directory_rooms_lost_total`, 'Rooms this process ran whose directory registration another worker took (players closed ROOM_MOVED)', () => d.lost)
  gauge(r, `${prefix}directory_up`, 'Whether the room directory answered this process\'s last operation (1) or not (0)', () => (d.up ? 1 : 0), 'min')
}

/** A gauge whose value is read from `read()` at scrape time. */
function gauge(r: client.Registry, name: string, help: string, read: () => number, aggregator: client.Aggregator = 'sum'): void {
  new client.Gauge({
    name,
    help,
    aggregator,
    registers: [r],
    collect() {
      this.set(read())
    },
  })
}

/**
 * A counter whose value is read from `read()` at scrape time (a running total the caller keeps),
 * optionally with one fixed label set (the `worker` of the per-loop series).
 */
export function counter(r: client.Registry, name: string, help: string, read: () => number, labels?: Readonly<Record<string, string>>): void {
  let last = 0
  const c = new client.Counter({
    name,
    help,
    labelNames: labels ? Object.keys(labels) : [],
    registers: [r],
    collect() {
      const v = read()
      if (v > last) {
        if (labels) this.inc(labels, v - last)
        else this.inc(v - last)
      }
      last = v
    },
  })
  if (labels) c.inc(labels, 0)
}

/** A 0/1 gauge read at scrape time, e.g. `tickwire_draining` (the supervisor's stop has begun). */
export function flag(r: client.Registry, name: string, help: string, read: () => boolean): void {
  new client.Gauge({
    name,
    help,
    registers: [r],
    collect() {
      this.set(read() ? 1 : 0)
    },
  })
}

/** A counter with one label whose per-label values are read from `record` at scrape time. */
function labeled(r: client.Registry, name: string, help: string, label: string, record: Record<string, number>): void {
  const last: Record<string, number> = {}
  const c = new client.Counter({
    name,
    help,
    labelNames: [label],
    registers: [r],
    collect() {
      for (const [k, v] of Object.entries(record)) {
        const prev = last[k] ?? 0
        if (v > prev) this.inc({ [label]: k }, v - prev)
        last[k] = v
      }
    },
  })
  for (const k of Object.keys(record)) c.inc({ [label]: k }, 0)
}
