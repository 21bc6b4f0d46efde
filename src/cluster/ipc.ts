/**
 * Messages between the supervisor and its workers (Node's IPC channel, JSON).
 * `t` is the message kind; `id` pairs a request with its reply.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import type { Config } from '../config.js'

/** Env var that makes `main.js` run as worker `slot` instead of parsing the command line. */
export const WORKER_ENV = 'TICKWIRE_WORKER_SLOT'

export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[]

export type ToWorker =
  /** First message: the config (port resolved, metrics off) and what the worker binds. */
  | { readonly t: 'init'; readonly slot: number; readonly config: Config; readonly directPort: number; readonly secret: string }
  /** Reply to `claim`: where the room lives; null: nowhere (only when `create` was false). */
  | { readonly t: 'placed'; readonly id: number; readonly where: { readonly slot: number; readonly port: number; readonly host: string } | null }
  | { readonly t: 'metrics'; readonly id: number }
  /** Stop: not ready, close listen sockets, close players with SHUTDOWN within `drainMs`, exit 0. */
  | { readonly t: 'drain'; readonly drainMs: number }

export type ToSupervisor =
  | { readonly t: 'ready'; readonly port: number; readonly directPort: number }
  | { readonly t: 'failed'; readonly error: string; readonly config: boolean }
  | { readonly t: 'claim'; readonly id: number; readonly room: string; readonly create: boolean }
  | { readonly t: 'room'; readonly room: string; readonly open: boolean }
  | { readonly t: 'load'; readonly players: number; readonly rooms: number }
  | { readonly t: 'metrics'; readonly id: number; readonly snapshot: MetricsSnapshot }
