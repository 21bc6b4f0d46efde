/**
 * Leveled logging on pino: one event per line on stderr, as a JSON object (`json`, for machines) or as
 * `time level msg key=value ...` (`pretty`, for people). Both formats go through the same pino instance,
 * so both get the same redaction: known secret keys are censored (pino `redact`), and every string value
 * is scrubbed of `?token=`-style parameters, JWTs and resume tokens, whatever key carries it.
 *
 * One schema for every process (README "Logs"): `worker` (slot number), `room` (id), `player` (number),
 * `reason` (string), `address` (client address), `code` (close code), `error` (message).
 */
import { pino, type Logger as Pino } from 'pino'

export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
export type LogFormat = 'json' | 'pretty'
const LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug']

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  debug(msg: string, fields?: Record<string, unknown>): void
}

export interface LoggerOptions {
  /** `json` or `pretty`; empty or absent: pretty when stderr is a terminal, else json (see resolveLogFormat). */
  readonly format?: LogFormat | ''
  /** Receives each line without its newline; default: one `process.stderr.write` per line. */
  readonly write?: (line: string) => void
}

/** `--log-format` as given ('' is the default): pretty on a terminal, JSON lines otherwise. */
export function resolveLogFormat(format: string, isTTY: boolean = process.stderr.isTTY === true): LogFormat {
  return format === 'json' || format === 'pretty' ? format : isTTY ? 'pretty' : 'json'
}

/** Keys whose values are secrets wherever they appear (top level or one object down): censored. */
const SECRET_KEYS = ['token', 'resume', 'resumeToken', 'authorization', 'cookie', 'secret', 'password', 'passphrase', 'ticket', 'jwt', 'authSecret', 'resumeSecret', 'metricsToken', 'tlsPassphrase']
/** Keys whose values may be URLs or query strings: kept, with secret-carrying parameters censored. */
const URL_KEYS = ['url', 'query', 'path', 'jwks']
const CENSORED = '[redacted]'
const REDACT_PATHS = [...SECRET_KEYS, ...URL_KEYS].flatMap((k) => [k, `*.${k}`])
const URL_KEY_SET = new Set(URL_KEYS)

/** `name=value` parameters that carry secrets (query strings, form bodies, `key=value` text). */
const SECRET_PARAM = /\b(token|resume|resume_?token|access_token|id_token|jwt|ticket|secret|password|authorization)=[^&\s"'#;]+/gi
/** A JWT (three base64url parts, the first a JSON header) and a tickwire resume token (resume.ts). */
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g
const RESUME_TOKEN = /\b[A-Za-z0-9_-]{11}\.(?:0|[1-9][0-9]{0,9})\.[A-Za-z0-9_-]{22}\b/g
/** The password of `scheme://user:password@host` (config.ts redactUrl's rule). */
const URL_PASSWORD = /\/\/([^:@/\s]*):[^@/\s]+@/g
/** `Bearer <credential>` in header text or error messages. */
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g

/** `s` without secret parameters, JWTs, resume tokens or bearer credentials. */
export function scrub(s: string): string {
  if (s.length < 8) return s
  return s
    .replace(SECRET_PARAM, (_m, k: string) => `${k}=${CENSORED}`)
    .replace(JWT, CENSORED)
    .replace(RESUME_TOKEN, CENSORED)
    .replace(BEARER, (_m, scheme: string) => `${scheme} ${CENSORED}`)
    .replace(URL_PASSWORD, '//$1:***@')
}

function scrubValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return scrub(v)
  if (v === null || typeof v !== 'object' || depth > 2) return v
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, depth + 1))
  if (v instanceof Error) return scrub(v.stack ?? v.message)
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = scrubValue(x, depth + 1)
  return out
}

/** pino writes these itself: a field of the same name would make a line with two keys alike. */
const RESERVED = new Set(['level', 'time', 'msg'])

function scrubFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(fields)) out[RESERVED.has(k) ? `${k}_` : k] = scrubValue(v, 1)
  return out
}

/**
 * Workers and their supervisor share one stderr pipe: a write of at most PIPE_BUF (4096 bytes on Linux)
 * is atomic, so lines are kept below it and two processes' lines never interleave mid-line.
 */
const MAX_LINE_BYTES = 4000
const MAX_VALUE_CHARS = 400

function fitLine(json: string): string {
  if (Buffer.byteLength(json) <= MAX_LINE_BYTES) return json
  const o = JSON.parse(json) as Record<string, unknown>
  for (const [k, v] of Object.entries(o)) {
    const s = typeof v === 'string' ? v : k === 'level' || k === 'time' ? null : JSON.stringify(v)
    if (s !== null && s.length > MAX_VALUE_CHARS) o[k] = s.slice(0, MAX_VALUE_CHARS) + '...'
  }
  o.truncated = true
  const out = JSON.stringify(o)
  return Buffer.byteLength(out) <= MAX_LINE_BYTES ? out : JSON.stringify({ level: o.level, time: o.time, msg: String(o.msg).slice(0, MAX_VALUE_CHARS), truncated: true })
}

/** One JSON line as the human format: `time level msg key=value ...` (strings bare, other values as JSON). */
export function prettyLine(json: string): string {
  const { time, level, msg, ...fields } = JSON.parse(json) as Record<string, unknown>
  let line = `${String(time)} ${String(level)} ${String(msg)}`
  for (const [k, v] of Object.entries(fields)) line += ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`
  return line
}

/**
 * A logger at `level` (unknown: info). `out` is the format and destination, or a function that receives
 * each line in the pretty format (how tests capture lines). Disabled levels are no-ops, decided here.
 */
export function createLogger(level: string, out: LoggerOptions | ((line: string) => void) = {}): Logger {
  const opts: LoggerOptions = typeof out === 'function' ? { format: 'pretty', write: out } : out
  const format = resolveLogFormat(opts.format ?? '')
  const write = opts.write ?? ((l: string) => void process.stderr.write(l + '\n'))
  const destination = {
    write: format === 'json' ? (s: string) => write(fitLine(s.trimEnd())) : (s: string) => write(prettyLine(s.trimEnd())),
  }
  const lvl: LogLevel = (LEVELS as readonly string[]).includes(level) ? (level as LogLevel) : 'info'
  const p: Pino = pino(
    {
      level: lvl,
      base: undefined, // no pid or hostname on every line: `worker` says which process, and callers add `pid` where it matters
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: REDACT_PATHS,
        censor: (value: unknown, path: string[]) => (URL_KEY_SET.has(path[path.length - 1] ?? '') && typeof value === 'string' ? scrub(value) : CENSORED),
      },
    },
    destination,
  )
  const emit = (l: LogLevel): Logger['info'] => {
    if (!p.isLevelEnabled(l)) return DISABLED
    const fn = p[l].bind(p)
    return (msg, fields) => fn(fields ? scrubFields(fields) : {}, scrub(msg))
  }
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') }
}

/**
 * With JSON lines, an uncaught exception (or unhandled rejection) is logged as one `error` line and the
 * process exits 1, as Node would, instead of Node's multi-line stack trace breaking the stream. With the
 * pretty format Node's own report (with the source excerpt) is left alone.
 */
export function exitOnUncaught(log: Logger, format: LogFormat): void {
  if (format !== 'json') return
  process.on('uncaughtException', (err: unknown, origin) => {
    const error = err instanceof Error ? (err.stack ?? err.message) : String(err)
    log.error(origin === 'unhandledRejection' ? 'unhandled rejection: exiting' : 'uncaught exception: exiting', { error })
    process.exit(1)
  })
}

/** What a disabled level is: withFields keeps it as is, so a debug line in a worker costs no object when off. */
const DISABLED: Logger['info'] = () => {}

/** A logger that adds `fields` to every line (e.g. `worker=2`); a call's own field of the same name wins. */
export function withFields(log: Logger, fields: Record<string, unknown>): Logger {
  const wrap = (fn: Logger['info']): Logger['info'] => (fn === DISABLED ? DISABLED : (msg, more) => fn(msg, more ? { ...fields, ...more } : fields))
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
