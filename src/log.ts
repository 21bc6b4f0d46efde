/** Minimal leveled logger: one line per event on stderr, `level msg key=value ...`. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  debug(msg: string, fields?: Record<string, unknown>): void
}

export function createLogger(level: string, write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const max = RANK[level as LogLevel] ?? RANK.info
  const emit = (lvl: LogLevel) =>
    RANK[lvl] > max
      ? () => {}
      : (msg: string, fields?: Record<string, unknown>) => {
          let line = `${new Date().toISOString()} ${lvl} ${msg}`
          if (fields) for (const [k, v] of Object.entries(fields)) line += ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`
          write(line)
        }
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') }
}

/** A logger that adds `fields` to every line (e.g. `worker=2`). */
export function withFields(log: Logger, fields: Record<string, unknown>): Logger {
  const wrap = (fn: Logger['info']) => (msg: string, more?: Record<string, unknown>) => fn(msg, more ? { ...fields, ...more } : fields)
  return { error: wrap(log.error), warn: wrap(log.warn), info: wrap(log.info), debug: wrap(log.debug) }
}

/**
 * Warn lines for security events (refused upgrades, per-address limits,
 * malformed frames, fd pressure, stalls), rate-limited per event and reason: at most
 * one line per `everyMs`; the events in between are counted and reported in
 * the next line as `suppressed=N`. Callers pass the client address and the
 * reason; never a token, a query string or a secret.
 */
export class EventLog {
  readonly #log: Logger
  readonly #everyMs: number
  readonly #now: () => number
  readonly #last = new Map<string, { at: number; suppressed: number }>()

  constructor(log: Logger, everyMs = 10_000, now: () => number = Date.now) {
    this.#log = log
    this.#everyMs = everyMs
    this.#now = now
  }

  /** Logs `event` at warn level unless one was logged less than `everyMs` ago. */
  warn(event: string, fields: Record<string, unknown>): void {
    const now = this.#now()
    // Per event and reason: a flood of one kind must not hide the first line of another.
    const key = fields.reason === undefined ? event : `${event}:${String(fields.reason)}`
    const last = this.#last.get(key)
    if (last && now - last.at < this.#everyMs) {
      last.suppressed++
      return
    }
    const suppressed = last?.suppressed ?? 0
    this.#last.set(key, { at: now, suppressed: 0 })
    this.#log.warn(`security: ${event}`, suppressed > 0 ? { ...fields, suppressed } : fields)
  }
}
