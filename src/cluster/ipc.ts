/**
 * Messages between the supervisor and its workers (Node's IPC channel, JSON).
 * `t` is the message kind; `id` pairs a request with its reply.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import type { Config } from '../config.js'
import type { ListedRoom, RoomSummary } from '../directory/directory.js'
import type { ProcessState } from '../monitor/local.js'

/** Env var that makes `main.js` run as worker `slot` instead of parsing the command line. */
export const WORKER_ENV = 'TICKWIRE_WORKER_SLOT'

/** Heartbeats are sent (and checked) every fifth of `--worker-stall-timeout`, and never further apart than this (ms). */
export const HEARTBEAT_MAX_MS = 1000

/** The heartbeat period (ms) for a stall timeout in seconds. */
export function heartbeatMs(stallTimeoutSeconds: number): number {
  return Math.min((stallTimeoutSeconds * 1000) / 5, HEARTBEAT_MAX_MS)
}

export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[]

export type ToWorker =
  /**
   * First message: the config (port resolved, metrics off), what the worker binds (its direct port, resolved),
   * and its cluster-wide name (`<node-id>-<slot>`).
   */
  | { readonly t: 'init'; readonly slot: number; readonly name: string; readonly config: Config; readonly directPort: number; readonly secret: string }
  /**
   * Reply to `claim`: where the room lives; null: nowhere (`create` was false, no worker serves, or refused).
   * `refused`: the claim would exceed the directory's budget of pending claims (per address, or in all).
   */
  | { readonly t: 'placed'; readonly id: number; readonly where: { readonly local: true } | { readonly local: false; readonly name: string; readonly port: number; readonly host: string } | null; readonly refused?: 'address_limit' }
  /** A room this worker opened is owned by another worker (an id collision): close its players with ROOM_MOVED. */
  | { readonly t: 'lost'; readonly room: string }
  | { readonly t: 'metrics'; readonly id: number }
  /** Reply to `list`: every worker's published rooms (the supervisor's directory). */
  | { readonly t: 'listed'; readonly id: number; readonly rooms: readonly ListedRoom[] }
  /** The monitor page (`--monitor`): this worker's rooms, tick figures and disconnects; `listing`: the room directory's too (Redis). */
  | { readonly t: 'monitor'; readonly id: number; readonly listing: boolean }
  /** The monitor's close: room `room`, or player `player`, closed CLOSED_BY_OPERATOR; answered with `monitor-closed`. */
  | { readonly t: 'monitor-close'; readonly id: number; readonly room: string | null; readonly player: number | null }
  /** Stop: not ready, close listen sockets, close players with SHUTDOWN within `drainMs`, exit 0. */
  | { readonly t: 'drain'; readonly drainMs: number }

export type ToSupervisor =
  | { readonly t: 'ready'; readonly port: number; readonly directPort: number }
  | { readonly t: 'failed'; readonly error: string; readonly config: boolean }
  /** `address`: the client's, for the directory's per-address cap on claims in flight. */
  | { readonly t: 'claim'; readonly id: number; readonly room: string; readonly create: boolean; readonly address: string }
  | { readonly t: 'room'; readonly room: string; readonly open: boolean }
  | { readonly t: 'load'; readonly players: number; readonly rooms: number }
  /** This worker's rooms now, for GET /rooms (about once a second). */
  | { readonly t: 'publish'; readonly rooms: readonly RoomSummary[] }
  /** GET /rooms on this worker: every worker's rooms, answered with `listed`. */
  | { readonly t: 'list'; readonly id: number }
  | { readonly t: 'metrics'; readonly id: number; readonly snapshot: MetricsSnapshot }
  /** Reply to `monitor`; `listing` null unless asked for (and the directory answered). */
  | { readonly t: 'monitor'; readonly id: number; readonly state: ProcessState; readonly listing: readonly ListedRoom[] | null }
  /** Reply to `monitor-close`: the room closed in (null: none) and the players closed (-1: no such room or player here). */
  | { readonly t: 'monitor-closed'; readonly id: number; readonly room: string | null; readonly closed: number }
  /** Liveness, from a timer every `heartbeatMs(workerStallTimeout)`: a blocked event loop sends none. */
  | { readonly t: 'beat' }
