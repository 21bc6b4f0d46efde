/**
 * The room directory: which worker, of every worker of every machine, owns
 * each room. One interface, two implementations:
 * - `memory.ts`: kept by one supervisor for its own workers (the embedded
 *   default: one machine, nothing to run beside tickwire); workers reach it
 *   over IPC (`src/cluster/worker.ts`);
 * - `redis.ts`: shared by every machine through Redis, rooms owned through
 *   leases with a fencing epoch (`--redis-url`).
 * `test/helpers/directory-suite.ts` is the one test suite both pass.
 *
 * The network layer sees a worker's handle on it (`RoomDirectory`) and knows
 * nothing of either implementation.
 */

/**
 * A worker as the directory names it: `name` is unique cluster-wide
 * (`<node-id>-<worker index>`) and is the `route` a load balancer routes on;
 * `host`/`port` are its direct address (v2 redirects, the load balancer's
 * server line; port 0: none).
 */
export interface WorkerAddress {
  readonly name: string
  /** Host named in direct (v2) redirects; '': the host the client connected to. */
  readonly host: string
  readonly port: number
}

/** Where a room lives: here, or on another worker. */
export type Placement = { readonly local: true } | ({ readonly local: false } & WorkerAddress)

/**
 * What `locate` resolves to: a placement; null when no live worker owns the
 * room and `create` was off (or no worker serves); `'address_limit'` when a
 * new claim would exceed the directory's budget of claims in flight.
 */
export type LocateResult = Placement | null | 'address_limit'

/** The directory did not answer (down, slow, or this worker is cut off from it); the caller answers 503. */
export class DirectoryUnavailable extends Error {
  override name = 'DirectoryUnavailable'
}

/** Operations a directory counts (by outcome) and times. */
export const DirectoryOp = {
  /** A lookup (and claim) for a join or resume. */
  LOCATE: 'locate',
  /** Registering a room this worker opened (and re-registering after the directory came back). */
  REGISTER: 'register',
  /** Renewing this worker's leases. */
  RENEW: 'renew',
  /** Releasing a disposed room. */
  RELEASE: 'release',
  /** This worker's node record. */
  HEARTBEAT: 'heartbeat',
} as const
export type DirectoryOp = (typeof DirectoryOp)[keyof typeof DirectoryOp]

/** A directory's counters; the metrics layer reads them at scrape time and sets `observe` to time operations. */
export class DirectoryStats {
  /** Operations by kind: answered (`ok`), or failed, timed out or refused by an unreachable directory (`error`). */
  readonly ops: Record<DirectoryOp, { ok: number; error: number }> = {
    locate: { ok: 0, error: 0 },
    register: { ok: 0, error: 0 },
    renew: { ok: 0, error: 0 },
    release: { ok: 0, error: 0 },
    heartbeat: { ok: 0, error: 0 },
  }
  /** Rooms this worker took over from an owner that stopped heartbeating (each a new epoch). */
  takeovers = 0
  /** Rooms this worker ran whose registration another worker holds now (`onLost`). */
  lost = 0
  /** Whether the directory answered the last operation. */
  up = true
  /** Called with each operation's duration (seconds); the metrics layer sets it. */
  observe: (op: DirectoryOp, seconds: number) => void = () => {}
}

/** A worker's handle on the room directory. Calls never block a tick: all I/O is asynchronous. */
export interface RoomDirectory {
  /** This worker, as other workers' redirects name it. */
  readonly self: WorkerAddress
  readonly stats: DirectoryStats
  /**
   * Where room `id` lives. With `create`, a room no live worker owns is
   * claimed (Redis: by this worker; supervisor: by the least-loaded worker,
   * this one on a tie) and must be opened by its claimer within the claim's
   * lifetime, else the claim lapses. `address` is the client's budget key
   * (claims in flight are capped per address). `canHost` false: this worker
   * could not create the room now (at `--max-rooms` or `--max-players`, or the
   * client's address may create no more rooms here), so a directory that
   * places new rooms on the asker (Redis) does not claim it and resolves null;
   * the supervisor's places rooms itself and ignores it. Rejects with
   * `DirectoryUnavailable` when the directory does not answer in time.
   */
  locate(id: string, create: boolean, address: string, canHost?: boolean): Promise<LocateResult>
  /** A room was created here (a claimed one, or a quick-play room): registered and kept until `closed`. */
  opened(id: string): void
  /** A room here was disposed: its registration is released. */
  closed(id: string): void
  /**
   * Called when a room this worker runs turned out to belong to another worker
   * (its lease was taken over while this worker was cut off from the
   * directory). The caller closes the room's players so they rejoin the owner.
   */
  onLost: (id: string) => void
  /** Releases everything this worker owns and stops (drain). Resolves within `timeoutMs` whatever the directory does. */
  close(timeoutMs?: number): Promise<void>
  /** This worker's rooms as they are now (called about every `PUBLISH_EVERY_MS`); replaces what it published before. */
  publish(rooms: readonly RoomSummary[]): void
  /**
   * Every live worker's last published rooms (this one's included); a
   * worker's list older than `LISTING_STALE_MS` is left out, so a dead
   * worker's rooms disappear. Rejects `DirectoryUnavailable` when the
   * directory does not answer in time.
   */
  listRooms(): Promise<readonly ListedRoom[]>
}

/** One room as `GET /rooms` lists it (see src/net/room-list.ts). */
export interface RoomSummary {
  readonly id: string
  readonly quickPlay: boolean
  readonly players: number
  /** Seats (`--max-players-per-room`). */
  readonly capacity: number
  /** The game's `GameRoom.meta()`, validated; `{}` when it has none or a bad one. */
  readonly meta: Readonly<Record<string, string | number | boolean>>
}

/** A room in the listing, with the worker that runs it. */
export interface ListedRoom extends RoomSummary {
  readonly worker: string
}

/** How often a worker publishes its rooms (ms). */
export const PUBLISH_EVERY_MS = 1000
/** A worker's published rooms are dropped from listings this long after its last publish (ms). */
export const LISTING_STALE_MS = 5 * PUBLISH_EVERY_MS
/** Rooms one worker publishes at most (the listing is capped per worker so one list stays bounded). */
export const MAX_PUBLISHED_ROOMS = 2000

/** Pending claims allowed in all, per room a worker may open (`--max-rooms`, times the workers a directory serves): room for bursts, not for a flood. */
export const PENDING_PER_ROOM = 4

/** `<node-id>-<worker index>`: a worker's cluster-wide name (and load-balancer route). */
export function workerName(nodeId: string, slot: number): string {
  return `${nodeId}-${slot}`
}

/** What a node id may be: a load balancer's server name and a URL query value without escaping. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,48}$/
