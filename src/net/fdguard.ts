/**
 * File-descriptor pressure. Every connection is a descriptor; at the
 * process's RLIMIT_NOFILE, accept4() fails with EMFILE, the listen socket
 * stays readable and uSockets retries it forever: a silent busy loop in
 * which nothing (players, /healthz, /metrics) can connect.
 *
 * - At start-up, `fitFdLimit` checks `--max-players` + `--fd-reserve`
 *   against the soft limit (an explicit value that does not fit is an error;
 *   the default is lowered to fit).
 * - At run time, `FdGuard` counts open descriptors a few times a second and,
 *   within `--fd-reserve` of the limit, closes the public listen sockets
 *   (SO_REUSEPORT then hands new connections to the other workers), so the
 *   limit is never reached; it reopens them once usage is clearly lower. A few
 *   /dev/null handles are held in reserve and released when pressure hits, so
 *   the metrics port and its probes still get descriptors even if the limit
 *   was reached between two checks.
 *
 * Linux only (/proc); elsewhere both are no-ops.
 */
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { ConfigError, OPTIONS, type Config } from '../config.js'
import { EventLog, type Logger } from '../log.js'

/** The soft RLIMIT_NOFILE from `/proc/self/limits` ("Max open files"), or null when unknown or unlimited. */
export function readFdLimit(path = '/proc/self/limits'): number | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return null
  }
  const m = /^Max open files\s+(\S+)/m.exec(text)
  if (!m || m[1] === 'unlimited') return null
  const n = Number(m[1])
  return Number.isInteger(n) && n > 0 ? n : null
}

/** Descriptors start() opens after the check (listen sockets, metrics listener, the guard's spares), with room to spare. */
const OWN_LATER = 16

/**
 * Fits `--max-players` below the fd limit with `--fd-reserve` to spare. An
 * explicit `--max-players` with `--max-players + --fd-reserve > limit` throws
 * ConfigError. The default is lowered, with one warn line, so that a full
 * server stays below the pause threshold: limit - reserve - the descriptors
 * the process holds itself (about 30: stdio, epoll, listen sockets, spares).
 * Returns `config` itself when nothing changes. A `--max-players` equal to
 * the default counts as the default.
 */
export function fitFdLimit(config: Config, log: Logger, limit: number | null = readFdLimit(), ownFds = openFds() + OWN_LATER): Config {
  if (limit === null) return config
  const isDefault = config.maxPlayers === OPTIONS.maxPlayers.default
  if (!isDefault && config.maxPlayers + config.fdReserve <= limit) return config
  const fits = limit - config.fdReserve - (isDefault ? ownFds : 0)
  if (isDefault && config.maxPlayers <= fits) return config
  if (isDefault && fits < 1) {
    throw new ConfigError(
      `the open-file limit of ${limit} (ulimit -n) leaves no room for players after --fd-reserve ${config.fdReserve} and the ${ownFds} descriptors the process needs itself: raise the limit`,
    )
  }
  if (!isDefault) {
    throw new ConfigError(
      `--max-players ${config.maxPlayers} plus --fd-reserve ${config.fdReserve} exceeds the open-file limit of ${limit} (ulimit -n): ` +
        `raise the limit (ulimit -n, LimitNOFILE=, or the container's nofile ulimit) or lower --max-players to ${Math.max(fits, 0)} or less`,
    )
  }
  log.warn('open-file limit lowers the default --max-players: raise ulimit -n for more', { maxPlayers: fits, limit, fdReserve: config.fdReserve })
  return Object.freeze({ ...config, maxPlayers: fits })
}

/** What the guard drives: GameServer. */
export interface AcceptControl {
  pauseAccepting(): void
  resumeAccepting(): Promise<boolean>
  readonly accepting: boolean
  /** Open WebSocket connections (a lower bound of the descriptors in use). */
  readonly connections: number
}

export interface FdGuardOptions {
  /** The soft RLIMIT_NOFILE. */
  readonly limit: number
  /** `--fd-reserve`: pause when fewer than this many descriptors are left. */
  readonly reserve: number
  /** Check period while usage is low, ms. */
  readonly everyMs?: number
  /** Check period once usage passes half the pause threshold (or while paused), ms. */
  readonly nearEveryMs?: number
  /** Shortest pause, ms: no flapping around the threshold. */
  readonly minPauseMs?: number
  /** /dev/null handles held for emergencies. */
  readonly spareHandles?: number
}

export const FD_GUARD_DEFAULTS = Object.freeze({
  // Measured on the 2-core VM, idle process: 0.2% of a core at 200 ms, 0.6% at 50 ms (the wake-up, more than the stat).
  everyMs: 200,
  nearEveryMs: 50, // connections can arrive by the thousand per second: look more often once it matters
  minPauseMs: 1000,
  spareHandles: 8,
})

/** The kernel reports the number of open fds as the size of /proc/self/fd since Linux 6.2; older ones report 0. */
/** Descriptors open now (0 if they cannot be counted). */
function openFds(): number {
  try {
    return statCounts() ? statFds() : readdirSync('/proc/self/fd').length - 1
  } catch {
    return 0
  }
}

function statCounts(): boolean {
  try {
    return statSync('/proc/self/fd').size > 0
  } catch {
    return false
  }
}

const outOfFds = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'EMFILE' || code === 'ENFILE'
}

/** Descriptors open in this process from the size of /proc/self/fd (Linux >= 6.2): one syscall, no descriptor needed. */
function statFds(): number {
  return statSync('/proc/self/fd').size
}

/** Descriptors open in this process by listing /proc/self/fd (older kernels), or -1 at EMFILE (the listing needs one). */
async function listFds(): Promise<number> {
  try {
    // Minus the one readdir itself holds open.
    return (await readdir('/proc/self/fd')).length - 1
  } catch (err) {
    if (outOfFds(err)) return -1
    throw err
  }
}

/**
 * Pauses accepting on the public port while descriptors run short: open
 * descriptors >= limit - reserve (or an open() failing with EMFILE) pauses,
 * bumps `stats.acceptPauses` and logs a rate-limited warn; accepting resumes
 * after `minPauseMs` once usage is at most limit - reserve - max(16, reserve / 2).
 * Runs on an unref'd timer, every `everyMs`, every `nearEveryMs` once usage
 * passes half the threshold. A check is one stat() of /proc/self/fd (about
 * 5 us on Linux >= 6.2, whatever the count); older kernels get an open() probe
 * and, only when near, an asynchronous listing. The tick loop never waits on it.
 */
export class FdGuard {
  readonly #server: AcceptControl
  readonly #stats: { acceptPauses: number }
  readonly #log: Logger
  readonly #events: EventLog
  readonly #limit: number
  readonly #pauseAt: number
  readonly #resumeAt: number
  readonly #everyMs: number
  readonly #nearEveryMs: number
  readonly #nearAt: number
  readonly #minPauseMs: number
  readonly #spareCount: number
  readonly #byStat: boolean
  #spares: number[] = []
  #timer: NodeJS.Timeout | null = null
  #running = false
  /** A listing or a reopening is in flight. */
  #busy = false
  #pausedAt = 0
  #paused = false

  constructor(server: AcceptControl, stats: { acceptPauses: number }, log: Logger, opts: FdGuardOptions) {
    this.#server = server
    this.#stats = stats
    this.#log = log
    this.#events = new EventLog(log)
    this.#limit = opts.limit
    this.#pauseAt = opts.limit - opts.reserve
    this.#resumeAt = this.#pauseAt - Math.max(16, Math.floor(opts.reserve / 2))
    this.#everyMs = opts.everyMs ?? FD_GUARD_DEFAULTS.everyMs
    this.#nearEveryMs = opts.nearEveryMs ?? FD_GUARD_DEFAULTS.nearEveryMs
    this.#nearAt = Math.floor(this.#pauseAt / 2)
    this.#minPauseMs = opts.minPauseMs ?? FD_GUARD_DEFAULTS.minPauseMs
    this.#spareCount = opts.spareHandles ?? FD_GUARD_DEFAULTS.spareHandles
    this.#byStat = statCounts()
  }

  /**
   * A guard for this process, or null where descriptors cannot be counted
   * (not Linux) or the limit is unknown.
   */
  static forProcess(server: AcceptControl, stats: { acceptPauses: number }, log: Logger, config: Pick<Config, 'fdReserve'>, limit = readFdLimit()): FdGuard | null {
    if (limit === null) return null
    try {
      statSync('/proc/self/fd')
    } catch {
      return null
    }
    return new FdGuard(server, stats, log, { limit, reserve: config.fdReserve })
  }

  /** Whether accepting is paused by this guard now. */
  get paused(): boolean {
    return this.#paused
  }

  start(): void {
    if (this.#running) return
    this.#running = true
    this.#takeSpares()
    this.#schedule(this.#everyMs)
  }

  stop(): void {
    this.#running = false
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#releaseSpares()
  }

  #schedule(ms: number): void {
    if (!this.#running) return
    this.#timer = setTimeout(() => this.#check(), ms)
    this.#timer.unref()
  }

  #check(): void {
    if (this.#busy) return this.#schedule(this.#nearEveryMs)
    if (this.#byStat) {
      let open: number
      try {
        open = statFds()
      } catch (err) {
        // stat needs no descriptor, so this is not expected; never let it escape the timer.
        this.#log.error('counting open file descriptors failed', { error: (err as Error).message })
        open = outOfFds(err) ? this.#limit : 0
      }
      this.#decide(open)
      return this.#schedule(this.#paused || open >= this.#nearAt ? this.#nearEveryMs : this.#everyMs)
    }
    // Older kernels: a probe (the lowest free descriptor) first, the listing only when near.
    if (!this.#paused) {
      const lowest = this.#probe()
      if (lowest === -1) {
        this.#pause(this.#limit)
        return this.#schedule(this.#nearEveryMs)
      }
      if (lowest < this.#nearAt && this.#server.connections < this.#nearAt) return this.#schedule(this.#everyMs)
    }
    this.#busy = true
    listFds().then(
      (open) => {
        this.#busy = false
        this.#decide(open === -1 ? this.#limit : open)
        this.#schedule(this.#nearEveryMs)
      },
      (err: Error) => {
        this.#busy = false
        this.#log.error('counting open file descriptors failed', { error: err.message })
        this.#schedule(this.#everyMs)
      },
    )
  }

  #decide(open: number): void {
    if (!this.#running || this.#busy) return
    if (!this.#paused && open >= this.#pauseAt) this.#pause(open)
    else if (this.#paused && open <= this.#resumeAt && Date.now() - this.#pausedAt >= this.#minPauseMs) this.#resume(open)
  }

  /** The lowest free descriptor number (the kernel hands out the lowest), or -1 at EMFILE. */
  #probe(): number {
    try {
      const fd = openSync('/dev/null', 'r')
      closeSync(fd)
      return fd
    } catch {
      return -1
    }
  }

  #pause(open: number): void {
    // Listen sockets first: the descriptors freed next must not go to new public connections.
    this.#server.pauseAccepting()
    this.#releaseSpares()
    this.#paused = true
    this.#pausedAt = Date.now()
    this.#stats.acceptPauses++
    this.#events.warn('fd pressure: not accepting on the public port', { fds: open, limit: this.#limit, reserve: this.#limit - this.#pauseAt })
  }

  #resume(open: number): void {
    this.#busy = true
    this.#server.resumeAccepting().then(
      (ok) => {
        this.#busy = false
        // A listen socket that could not be bound again is retried on the next check.
        if (!ok || !this.#server.accepting) return
        this.#paused = false
        this.#takeSpares()
        this.#log.info('fd pressure over: accepting again', { fds: open, limit: this.#limit, pausedMs: Date.now() - this.#pausedAt })
      },
      (err: Error) => {
        this.#busy = false
        this.#log.error('reopening the public port failed', { error: err.message })
      },
    )
  }

  #takeSpares(): void {
    while (this.#spares.length < this.#spareCount) {
      try {
        this.#spares.push(openSync('/dev/null', 'r'))
      } catch {
        return
      }
    }
  }

  #releaseSpares(): void {
    for (const fd of this.#spares) closeSync(fd)
    this.#spares = []
  }
}
