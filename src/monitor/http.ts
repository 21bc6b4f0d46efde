/**
 * The monitor on the metrics port (`--monitor`, off by default):
 *
 *   GET  /monitor                                   the page (page.ts: one HTML file, inline JS/CSS under a strict CSP)
 *   GET  /monitor/api/state                         rooms, workers' tick figures, recent disconnects (JSON)
 *   POST /monitor/api/rooms/<room>/close            close a room's players (CLOSED_BY_OPERATOR, 4017)
 *   POST /monitor/api/players/<worker>/<id>/close   close one player (player ids are per worker)
 *
 * The API needs `Authorization: Bearer <--monitor-token>` when a token is set
 * (config.ts refuses a metrics host beyond loopback without one); without a
 * token (loopback only) it answers only requests whose Host is a loopback
 * name, so a page on another site cannot reach it through DNS rebinding.
 * A POST whose Origin is not this page's is refused (403): a cross-site form
 * cannot close rooms. Every request takes a token from the metrics port's
 * per-address bucket. Refusals are counted in
 * `tickwire_monitor_refused_total{reason}`, closes in
 * `tickwire_monitor_actions_total{action,outcome}`, and each close is logged
 * (worker, room, player, action, address; never a token).
 */
import client from 'prom-client'
import { ROOM_ID_PATTERN } from '../../proto/index.js'
import type { Logger } from '../log.js'
import { bearerCheck, type AddressBuckets } from '../net/metrics-http.js'
import { isLoopback } from '../net/loopback.js'
import type { HttpRequest, HttpResponse, TemplatedApp } from '../net/uws.js'
import type { MonitorDisconnect, MonitorPlayer, SecondFigures, TickFigures } from './local.js'
import { PAGE, PAGE_CSP } from './page.js'

/** A room as the API lists it. */
export interface ListedMonitorRoom {
  readonly id: string
  /** The machine's --node-id. */
  readonly machine: string
  /** The worker's index on its machine; null for a room another machine runs (known by name only). */
  readonly worker: number | null
  /** The worker's cluster-wide name (`<node-id>-<index>`). */
  readonly workerName: string
  readonly players: number
  readonly capacity: number
  readonly age: number | null
  readonly list: readonly MonitorPlayer[]
  /** Listed from the room directory (another machine): read-only here. */
  readonly remote: boolean
}

export interface MonitorWorker {
  readonly worker: number
  readonly name: string
  /** False: it did not answer this time (busy, dead or restarting); its figures are its last ones, or zeros. */
  readonly up: boolean
  readonly players: number
  readonly rooms: number
  readonly tick: TickFigures
  /** Per-second figures of the last two minutes, oldest first (the charts). */
  readonly history: readonly SecondFigures[]
}

/** GET /monitor/api/state. */
export interface MonitorState {
  readonly machine: string
  /** Unix ms. */
  readonly at: number
  readonly workers: readonly MonitorWorker[]
  readonly rooms: readonly ListedMonitorRoom[]
  readonly disconnects: readonly (MonitorDisconnect & { readonly worker: number })[]
}

/** What a close did: players closed and on which worker; not found; or the owner did not answer. */
export type CloseOutcome = { readonly found: true; readonly worker: number; readonly room: string; readonly closed: number } | { readonly found: false } | { readonly unavailable: true }

/** Where the monitor's figures come from: this process, or the supervisor's workers. */
export interface MonitorSource {
  state(): Promise<MonitorState>
  closeRoom(id: string): Promise<CloseOutcome>
  closePlayer(worker: number, id: number): Promise<CloseOutcome>
}

export const MonitorRefusal = { TOKEN: 'token', RATE: 'rate', HOST: 'host', ORIGIN: 'origin' } as const
export const MonitorAction = { CLOSE_ROOM: 'close_room', CLOSE_PLAYER: 'close_player' } as const
export const MonitorOutcome = { OK: 'ok', NOT_FOUND: 'not_found', UNAVAILABLE: 'unavailable' } as const

export interface MonitorCounters {
  readonly refused: client.Counter<'reason'>
  readonly actions: client.Counter<'action' | 'outcome'>
}

/** The monitor's counters in `registry` (always registered, so the series exist with --monitor off too; once per registry). */
export function monitorCounters(registry: client.Registry): MonitorCounters {
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make()
  const refused = get('tickwire_monitor_refused_total', () => {
    const c = new client.Counter({
      name: 'tickwire_monitor_refused_total',
      help: 'Monitor requests refused: token (401), rate (429), host (403: no token and a Host that is not loopback), origin (403: a POST from another site)',
      labelNames: ['reason'],
      registers: [registry],
    })
    for (const reason of Object.values(MonitorRefusal)) c.inc({ reason }, 0)
    return c
  })
  const actions = get('tickwire_monitor_actions_total', () => {
    const c = new client.Counter({
      name: 'tickwire_monitor_actions_total',
      help: 'Operator closes from the monitor page, by action (close_room, close_player) and outcome (ok, not_found, unavailable)',
      labelNames: ['action', 'outcome'],
      registers: [registry],
    })
    for (const action of Object.values(MonitorAction)) for (const outcome of Object.values(MonitorOutcome)) c.inc({ action, outcome }, 0)
    return c
  })
  return { refused, actions }
}

export interface MonitorRoutesOptions {
  readonly source: MonitorSource
  /** --monitor-token; '' : none (loopback only, see config.ts). */
  readonly token: string
  readonly registry: client.Registry
  readonly log: Logger
}

/** What the metrics listener shares with routes mounted on it. */
export interface SharedLimits {
  readonly limiter: AddressBuckets
  readonly now: () => number
}

const PLAYER_ID = /^[0-9]{1,10}$/

/** Mounts the monitor's routes on the metrics port's app (serveMetrics' `extend`). */
export function mountMonitor(opts: MonitorRoutesOptions): (app: TemplatedApp, shared: SharedLimits) => void {
  const { source, log } = opts
  const counters = monitorCounters(opts.registry)
  const authorized = bearerCheck(opts.token)
  return (app, { limiter, now }) => {
    /** Reads what it needs of `req` (valid only now), applies the checks; null: refused (answered). */
    const admit = (res: HttpResponse, req: HttpRequest, post: boolean): { address: string } | null => {
      const address = Buffer.from(res.getRemoteAddressAsText()).toString()
      const wait = limiter.take(address, now())
      const refuse = (reason: keyof typeof MonitorRefusal, status: string, message: string, extra: Record<string, string> = {}) => {
        counters.refused.inc({ reason: MonitorRefusal[reason] })
        res.writeStatus(status)
        for (const [k, v] of Object.entries(extra)) res.writeHeader(k, v)
        json(res, { error: message })
        return null
      }
      if (wait > 0) return refuse('RATE', '429 Too Many Requests', 'too many requests', { 'retry-after': String(Math.ceil(wait)) })
      const host = req.getHeader('host')
      if (opts.token === '' && !isLoopback(host.replace(/:\d+$/, ''))) return refuse('HOST', '403 Forbidden', 'without --monitor-token the monitor answers loopback names only (e.g. http://127.0.0.1:<port>/monitor)')
      if (post) {
        const origin = req.getHeader('origin')
        if (origin !== '' && originHost(origin) !== host) return refuse('ORIGIN', '403 Forbidden', 'cross-origin request refused')
      }
      if (!authorized(req.getHeader('authorization'))) {
        return refuse('TOKEN', '401 Unauthorized', 'bearer token required (--monitor-token)', { 'www-authenticate': 'Bearer realm="tickwire monitor"' })
      }
      return { address }
    }

    app.get('/monitor', (res) => {
      // The page holds no data: it asks for the token and then polls the API, which checks it.
      res
        .writeHeader('content-type', 'text/html; charset=utf-8')
        .writeHeader('content-security-policy', PAGE_CSP)
        .writeHeader('cache-control', 'no-store')
        .writeHeader('x-content-type-options', 'nosniff')
        .writeHeader('x-frame-options', 'DENY')
        .writeHeader('referrer-policy', 'no-referrer')
        .end(PAGE)
    })
    app.get('/monitor/api/state', (res, req) => {
      if (!admit(res, req, false)) return
      reply(res, source.state(), log, (s) => [200, s])
    })
    app.post('/monitor/api/rooms/:room/close', (res, req) => {
      const room = req.getParameter(0) ?? ''
      const ok = admit(res, req, true)
      if (!ok) return
      if (!ROOM_ID_PATTERN.test(room)) return void json(res.writeStatus('400 Bad Request'), { error: 'room ids are 1-32 of A-Z a-z 0-9 _ -' })
      reply(res, source.closeRoom(room), log, (o) => acted(MonitorAction.CLOSE_ROOM, o, { room }, ok.address))
    })
    app.post('/monitor/api/players/:worker/:player/close', (res, req) => {
      const worker = req.getParameter(0) ?? ''
      const player = req.getParameter(1) ?? ''
      const ok = admit(res, req, true)
      if (!ok) return
      if (!PLAYER_ID.test(worker) || !PLAYER_ID.test(player)) return void json(res.writeStatus('400 Bad Request'), { error: 'worker and player are whole numbers' })
      reply(res, source.closePlayer(Number(worker), Number(player)), log, (o) => acted(MonitorAction.CLOSE_PLAYER, o, { worker: Number(worker), player: Number(player) }, ok.address))
    })

    const acted = (action: string, o: CloseOutcome, what: { room?: string; worker?: number; player?: number }, address: string): [number, unknown] => {
      const outcome = 'unavailable' in o ? MonitorOutcome.UNAVAILABLE : o.found ? MonitorOutcome.OK : MonitorOutcome.NOT_FOUND
      counters.actions.inc({ action, outcome })
      if ('unavailable' in o) {
        log.warn('monitor: close not done, the worker did not answer', { action, ...what, address })
        return [503, { error: 'the worker did not answer; try again' }]
      }
      if (!o.found) return [404, { error: what.room !== undefined ? `no room ${what.room} on this machine` : `no player ${what.player} on worker ${what.worker}` }]
      log.warn('monitor: closed by operator', { action, worker: o.worker, room: o.room, ...(what.player !== undefined ? { player: what.player } : {}), players: o.closed, address })
      return [200, { closed: o.closed, worker: o.worker, room: o.room }]
    }
  }
}

/** `http://h:p` -> `h:p` (as a Host header says it); '' when it is not a URL. */
function originHost(origin: string): string {
  try {
    return new URL(origin).host
  } catch {
    return ''
  }
}

const STATUS: Record<number, string> = { 200: '200 OK', 404: '404 Not Found', 500: '500 Internal Server Error', 503: '503 Service Unavailable' }

function json(res: HttpResponse, body: unknown): void {
  res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(JSON.stringify(body))
}

/** Answers once `p` settles, unless the client went away. */
function reply<T>(res: HttpResponse, p: Promise<T>, log: Logger, answer: (v: T) => [number, unknown]): void {
  let aborted = false
  res.onAborted(() => {
    aborted = true
  })
  p.then(
    (v) => {
      const [status, body] = answer(v)
      if (!aborted) res.cork(() => json(res.writeStatus(STATUS[status] ?? String(status)), body))
    },
    (err: Error) => {
      log.error('monitor request failed', { error: err.message })
      if (!aborted) res.cork(() => json(res.writeStatus(STATUS[500] as string), { error: 'monitor failed' }))
    },
  )
}
