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
