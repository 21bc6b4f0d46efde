/**
 * Configuration: one table of options with defaults, units and bounds.
 * Each option is read from its CLI flag, else its environment variable, else
 * the default; all are validated once at start-up and the result is frozen.
 * Errors name the option, the value and what was expected.
 */

import { parseTrustedProxies } from './net/addresses.js'
import { parseAllowedOrigins } from './net/origin.js'
import { NODE_ID_PATTERN } from './directory/directory.js'
import { isLoopback } from './net/loopback.js'
import { AUTH_ALGORITHMS } from './auth/auth.js'

const AUTH_MODES = ['off', 'optional', 'required'] as const

type Kind = 'int' | 'number' | 'string' | 'bool'

interface OptionSpec {
  readonly kind: Kind
  readonly default: number | string | boolean
  readonly unit: string
  readonly min?: number
  readonly max?: number
  readonly doc: string
}

/** The option table. Flags are `--kebab-case` of the key; env vars `TICKWIRE_SNAKE_CASE`. */
export const OPTIONS = {
  port: { kind: 'int', default: 9001, unit: 'port', min: 0, max: 65535, doc: 'public port: /play, /healthz, /readyz (0 picks a free port)' },
  host: { kind: 'string', default: '0.0.0.0', unit: 'address', doc: 'address the public port binds to' },
  game: { kind: 'string', default: '', unit: 'path', doc: 'your game: a built ES module exporting a Game (default export, or `game`), run by every worker; empty: the reference arena (and its browser page)' },
  webDir: { kind: 'string', default: '', unit: 'path', doc: 'folder of your built web client (e.g. a Vite `dist/`), served at `/` by every worker: read whole at start (nested folders, index.html at `/` and `/dir/`; at most 10,000 files, 128 MiB); empty: the arena\'s bundled page for the arena, none for --game' },
  workers: { kind: 'int', default: 0, unit: 'processes', min: 0, max: 1024, doc: 'game processes sharing --port through SO_REUSEPORT, under a supervisor; 0: one per available core; 1: one process, no supervisor' },
  directPort: { kind: 'int', default: 0, unit: 'port', min: 0, max: 65535, doc: 'worker i also listens on direct-port + i (the redirect target for its rooms); 0: port + 1 + i, or free ports when --port is 0' },
  advertiseHost: { kind: 'string', default: '', unit: 'host', doc: 'host named in redirects to a direct port; empty: the host the client connected to' },
  nodeId: { kind: 'string', default: '', unit: 'name', doc: 'this machine\'s name in the cluster (1-48 of A-Z a-z 0-9 _ . -); worker i is `<node-id>-<i>`, the route a load balancer routes on; empty: the host name' },
  redisUrl: { kind: 'string', default: '', unit: 'URL', doc: 'redis:// or rediss:// URL of the room directory shared by every machine (needs --resume-secret); empty: the supervisor\'s own (one machine)' },
  publicUrl: { kind: 'string', default: '', unit: 'URL', doc: 'the one ws:// or wss:// URL players use (e.g. wss://play.example.com/play): redirects name it with route=<worker>; empty: redirects name direct ports' },
  directoryTimeout: { kind: 'number', default: 1, unit: 's', min: 0.05, max: 60, doc: 'a join that needs the room directory waits this long for it, then gets HTTP 503 `room directory unavailable`' },
  nodeTtl: { kind: 'number', default: 3, unit: 's', min: 0.5, max: 600, doc: 'with --redis-url: a worker whose node record is not renewed for this long is dead, and its rooms are taken over (renewed every third of it)' },
  tlsCert: { kind: 'string', default: '', unit: 'path', doc: 'PEM certificate (chain) file: every worker serves wss:// and https:// on its public and direct ports (uWS SSLApp); with --tls-key; empty: plain ws:// (TLS at a load balancer instead)' },
  tlsKey: { kind: 'string', default: '', unit: 'path', doc: 'PEM private key file of --tls-cert' },
  tlsPassphrase: { kind: 'string', default: '', unit: 'text', doc: 'passphrase of --tls-key, if it is encrypted (prefer the environment variable)' },
  auth: { kind: 'string', default: 'off', unit: 'mode', doc: 'join tokens (JWTs) checked at the upgrade: off | optional (checked when given) | required (no token, HTTP 401)' },
  authAlgorithm: { kind: 'string', default: 'HS256', unit: 'algorithm', doc: 'the one JWT algorithm accepted (never taken from the token): HS256 | ES256 | EdDSA | RS256' },
  authSecret: { kind: 'string', default: '', unit: 'text', doc: 'HS256 key, at least 32 characters (prefer the environment variable)' },
  authPublicKey: { kind: 'string', default: '', unit: 'path', doc: 'ES256 / EdDSA / RS256: PEM public key (SPKI) file' },
  authJwks: { kind: 'string', default: '', unit: 'path or URL', doc: 'ES256 / EdDSA / RS256: a JWKS file, or an https:// URL fetched with a timeout and cached (never on the tick path); instead of --auth-public-key' },
  authIssuer: { kind: 'string', default: '', unit: 'text', doc: 'required `iss` of join tokens; empty: not checked' },
  authAudience: { kind: 'string', default: '', unit: 'text', doc: 'required `aud` of join tokens; empty: not checked' },
  authClockTolerance: { kind: 'number', default: 5, unit: 's', min: 0, max: 300, doc: 'clock skew allowed when checking `exp` and `nbf`' },
  resumeWindow: { kind: 'number', default: 10, unit: 's', min: 0, max: 3600, doc: 'a dropped player\'s seat is held this long for a resume; 0: seats are never held' },
  resumeSecret: { kind: 'string', default: '', unit: 'text', doc: 'HMAC key of resume tokens, at least 32 characters (prefer the environment variable); empty: random at each start' },
  drainTimeout: { kind: 'number', default: 10, unit: 's', min: 0.1, max: 3600, doc: 'on SIGTERM/SIGINT: time to close players and exit; what is left is then killed' },
  metricsPort: { kind: 'int', default: 9464, unit: 'port', min: 0, max: 65535, doc: 'Prometheus /metrics port; 0 disables it' },
  metricsHost: { kind: 'string', default: '127.0.0.1', unit: 'address', doc: 'address the metrics port binds to (loopback: only this machine scrapes; 0.0.0.0 to open it, with --metrics-token)' },
  metricsToken: { kind: 'string', default: '', unit: 'text', doc: 'if set, /metrics needs `Authorization: Bearer <token>` (prefer the environment variable); empty: no token' },
  metricsCache: { kind: 'number', default: 1, unit: 's', min: 0, max: 60, doc: 'a rendered /metrics page is reused for this long, so scrape floods cost little; 0: render every scrape' },
  monitor: { kind: 'bool', default: false, unit: 'boolean', doc: 'serve the live monitor page at /monitor on the metrics port (rooms, tick time and load per worker, recent disconnects, closing a room or player); `--monitor` alone means true' },
  monitorToken: { kind: 'string', default: '', unit: 'text', doc: 'bearer token the monitor\'s API needs (the page asks for it); required when --metrics-host is not loopback (prefer the environment variable); empty: none, loopback only' },
  tickHz: { kind: 'number', default: 30, unit: 'Hz', min: 1, max: 240, doc: 'simulation rate (and send rate, unless --send-hz)' },
  sendHz: { kind: 'number', default: 0, unit: 'Hz', min: 0, max: 240, doc: 'STATE frames per second to each player: tick-hz divided by a whole number (players are spread over the ticks between sends); 0: every tick' },
  maxCatchUpTicks: { kind: 'int', default: 3, unit: 'ticks', min: 0, max: 100, doc: 'late ticks run back to back before the rest are skipped' },
  maxPlayersPerRoom: { kind: 'int', default: 64, unit: 'players', min: 1, max: 4096, doc: 'seats per room' },
  maxRooms: { kind: 'int', default: 1000, unit: 'rooms', min: 1, max: 100000, doc: 'rooms per process' },
  maxPlayers: { kind: 'int', default: 15000, unit: 'players', min: 1, max: 1000000, doc: 'connected players per process' },
  aoiRadius: { kind: 'number', default: 300, unit: 'world units', min: 1, max: 1e6, doc: 'a player sees entities within about this distance (grid cells of this size around it)' },
  maxVisible: { kind: 'int', default: 128, unit: 'entities', min: 2, max: 1024, doc: 'most entities one player is sent (nearest grid cells first)' },
  historyTicks: { kind: 'int', default: 32, unit: 'ticks', min: 4, max: 4096, doc: 'snapshots kept per room to delta against' },
  ackWindow: { kind: 'int', default: 12, unit: 'frames', min: 1, max: 4000, doc: 'sent-but-unacked frames allowed before a player is paused (must be < history-ticks)' },
  softBackpressure: { kind: 'int', default: 64 * 1024, unit: 'bytes', min: 1024, max: 64 * 1024 * 1024, doc: 'buffered bytes above which a player\'s frame is skipped this tick' },
  hardBackpressure: { kind: 'int', default: 512 * 1024, unit: 'bytes', min: 2048, max: 256 * 1024 * 1024, doc: 'buffered bytes above which a player is closed (TOO_SLOW)' },
  maxStallSeconds: { kind: 'number', default: 20, unit: 's', min: 1, max: 3600, doc: 'a player skipped this long without a break is closed (TOO_SLOW)' },
  inputRate: { kind: 'number', default: 240, unit: 'messages/s', min: 1, max: 10000, doc: 'sustained client messages per second per socket (>= 2 x tick-hz: an ACK and an INPUT per tick)' },
  inputBurst: { kind: 'int', default: 60, unit: 'messages', min: 1, max: 100000, doc: 'client messages allowed in a burst above the rate' },
  messageRate: { kind: 'number', default: 20, unit: 'messages/s', min: 0.1, max: 10000, doc: 'sustained game messages (CLIENT_MESSAGE) per second per socket, within --input-rate; faster closes RATE_LIMITED' },
  messageBurst: { kind: 'int', default: 40, unit: 'messages', min: 1, max: 100000, doc: 'game messages allowed in a burst above --message-rate' },
  outboxBytes: { kind: 'int', default: 65536, unit: 'bytes', min: 4096, max: 16777216, doc: 'game messages and props queued for one player and not yet acknowledged; past it the player is closed TOO_SLOW and the seat released' },
  outboxFrames: { kind: 'int', default: 1024, unit: 'frames', min: 16, max: 1000000, doc: 'game message and props frames queued for one player and not yet acknowledged; past it as --outbox-bytes' },
  maxMessageBytes: { kind: 'int', default: 512, unit: 'bytes', min: 64, max: 65536, doc: 'largest client frame; a larger one cuts the connection (clients see 1006)' },
  idleTimeout: { kind: 'int', default: 32, unit: 's', min: 8, max: 960, doc: 'close a socket silent this long (pings are sent automatically)' },
  maxConnectionsPerAddress: { kind: 'int', default: 256, unit: 'connections', min: 0, max: 1000000, doc: 'open WebSocket connections from one client address, per process; more get HTTP 429; 0: no limit' },
  upgradeRatePerAddress: { kind: 'number', default: 50, unit: 'upgrades/s', min: 0, max: 100000, doc: 'sustained upgrade rate from one client address, per process; faster gets HTTP 429; 0: no limit' },
  upgradeBurstPerAddress: { kind: 'int', default: 100, unit: 'upgrades', min: 1, max: 1000000, doc: 'upgrades from one address allowed in a burst above the rate' },
  maxRoomsPerAddress: { kind: 'int', default: 16, unit: 'rooms', min: 0, max: 100000, doc: 'open rooms one client address created, per process (and room claims in flight in the directory); more close ADDRESS_LIMIT; 0: no limit' },
  maxHeldPerAddress: { kind: 'int', default: 8, unit: 'seats', min: 0, max: 100000, doc: 'seats held for a resume for one client address; past it a dropped seat is released at once; 0: no limit' },
  maxIdleRoomsPerAddress: { kind: 'int', default: 2, unit: 'rooms', min: 0, max: 100000, doc: 'rooms kept alive only by one address\'s held seats (nobody else connected); past it such a seat is released at once; 0: no limit' },
  trustedProxies: { kind: 'string', default: '', unit: 'addresses', doc: 'comma-separated proxy addresses whose X-Forwarded-For names the client; empty: the socket\'s peer address is the client' },
  allowedOrigins: { kind: 'string', default: '', unit: 'origins', doc: 'comma-separated Origins allowed to open /play (e.g. https://game.example.com; only these), or *; empty: the server\'s own origin, judged by Host; requests without Origin (non-browser clients) are always allowed' },
  fdReserve: { kind: 'int', default: 64, unit: 'file descriptors', min: 16, max: 100000, doc: 'kept free below RLIMIT_NOFILE: past it the public port stops accepting for a while (probes and metrics still answer); --max-players must fit below it' },
  workerStallTimeout: { kind: 'number', default: 5, unit: 's', min: 0.5, max: 3600, doc: 'a worker whose event loop does not answer the supervisor for this long is killed and replaced' },
  seed: { kind: 'int', default: 0, unit: '', min: 0, max: 0xffffffff, doc: 'random seed for rooms; 0 picks one at start' },
  logLevel: { kind: 'string', default: 'info', unit: 'level', doc: 'error | warn | info | debug' },
  logFormat: { kind: 'string', default: '', unit: 'format', doc: 'json (one JSON object per line, for log shippers) | pretty (one human line: time level message key=value); empty: pretty when stderr is a terminal, else json' },
} as const satisfies Record<string, OptionSpec>

export type OptionName = keyof typeof OPTIONS
type ValueOf<K extends OptionName> = (typeof OPTIONS)[K]['kind'] extends 'string'
  ? string
  : (typeof OPTIONS)[K]['kind'] extends 'bool'
    ? boolean
    : number
export type Config = { readonly [K in OptionName]: ValueOf<K> }

/** Thrown for any invalid option; `message` is meant for the operator. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

const LOG_LEVELS = ['error', 'warn', 'info', 'debug']
const LOG_FORMATS = ['json', 'pretty']

export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
}
export function envName(key: string): string {
  return 'TICKWIRE_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase()
}

function parseValue(key: string, spec: OptionSpec, raw: string, source: string): number | string | boolean {
  const where = `${source} (${key})`
  switch (spec.kind) {
    case 'string':
      return raw
    case 'bool':
      if (raw === 'true' || raw === '1') return true
      if (raw === 'false' || raw === '0') return false
      throw new ConfigError(`${where}: got ${JSON.stringify(raw)}, expected true or false`)
    default: {
      const n = raw.trim() === '' ? NaN : Number(raw)
      const intNeeded = spec.kind === 'int'
      if (!Number.isFinite(n) || (intNeeded && !Number.isInteger(n))) {
        throw new ConfigError(`${where}: got ${JSON.stringify(raw)}, expected ${intNeeded ? 'an integer' : 'a number'} (${spec.unit})`)
      }
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw new ConfigError(`${where}: got ${n}, expected ${spec.min} to ${spec.max} ${spec.unit}`)
      }
      return n
    }
  }
}

export interface ParseResult {
  readonly config: Config
  readonly help: boolean
}

/**
 * Builds the config from CLI arguments (`--port 9001` or `--port=9001`) and the
 * environment. Throws ConfigError naming the offending option.
 */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParseResult {
  const byFlag = new Map<string, OptionName>()
  for (const key of Object.keys(OPTIONS) as OptionName[]) byFlag.set(flagName(key), key)
  const fromArgs = new Map<OptionName, string>()
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--help' || arg === '-h') {
      help = true
      continue
    }
    const eq = arg.indexOf('=')
    const flag = eq >= 0 ? arg.slice(0, eq) : arg
    const key = byFlag.get(flag)
    if (!key) throw new ConfigError(`unknown option ${JSON.stringify(flag)}; see --help`)
    let value: string | undefined
    if (eq >= 0) value = arg.slice(eq + 1)
    else if (OPTIONS[key].kind === 'bool' && !/^(true|false|1|0)$/.test(argv[i + 1] ?? '')) value = 'true' // `--monitor` alone
    else value = argv[++i]
    if (value === undefined) throw new ConfigError(`${flag} needs a value`)
    fromArgs.set(key, value)
  }
  const out: Record<string, number | string | boolean> = {}
  for (const key of Object.keys(OPTIONS) as OptionName[]) {
    const spec: OptionSpec = OPTIONS[key]
    const arg = fromArgs.get(key)
    const ev = env[envName(key)]
    if (arg !== undefined) out[key] = parseValue(key, spec, arg, flagName(key))
    else if (ev !== undefined && ev !== '') out[key] = parseValue(key, spec, ev, envName(key))
    else out[key] = spec.default
  }
  const config = out as unknown as Config
  crossCheck(config)
  return { config: Object.freeze(config), help }
}

/** Rules between options. */
function crossCheck(c: Config): void {
  if (c.hardBackpressure <= c.softBackpressure) {
    throw new ConfigError(
      `--hard-backpressure (${c.hardBackpressure} bytes) must be greater than --soft-backpressure (${c.softBackpressure} bytes)`,
    )
  }
  if (c.ackWindow >= c.historyTicks) {
    throw new ConfigError(`--ack-window (${c.ackWindow} frames) must be less than --history-ticks (${c.historyTicks} ticks)`)
  }
  if (c.sendHz !== 0) {
    const every = c.tickHz / c.sendHz
    if (c.sendHz > c.tickHz || Math.abs(every - Math.round(every)) > 1e-9) {
      throw new ConfigError(`--send-hz (${c.sendHz} Hz) must be --tick-hz (${c.tickHz} Hz) divided by a whole number, e.g. ${c.tickHz / 2} or ${c.tickHz / 3}; or 0 (every tick)`)
    }
    if (c.ackWindow * Math.round(every) >= c.historyTicks) {
      throw new ConfigError(
        `--ack-window (${c.ackWindow} frames) spans ${c.ackWindow * Math.round(every)} ticks at --send-hz ${c.sendHz}: that must be less than --history-ticks (${c.historyTicks} ticks); raise --history-ticks to ${c.ackWindow * Math.round(every) + 1} or lower --ack-window`,
      )
    }
  }
  if (c.inputRate < 2 * c.tickHz) {
    throw new ConfigError(
      `--input-rate (${c.inputRate} messages/s) must be at least 2 x --tick-hz (${2 * c.tickHz}): clients send an ACK and an INPUT per tick`,
    )
  }
  if (!LOG_LEVELS.includes(c.logLevel)) {
    throw new ConfigError(`--log-level: got ${JSON.stringify(c.logLevel)}, expected one of ${LOG_LEVELS.join(', ')}`)
  }
  if (c.logFormat !== '' && !LOG_FORMATS.includes(c.logFormat)) {
    throw new ConfigError(`--log-format: got ${JSON.stringify(c.logFormat)}, expected one of ${LOG_FORMATS.join(', ')} (or empty: pretty on a terminal, else json)`)
  }
  if (c.metricsPort !== 0 && c.metricsPort === c.port && c.port !== 0) {
    throw new ConfigError(`--metrics-port (${c.metricsPort}) must differ from --port`)
  }
  if (c.monitor) {
    if (c.metricsPort === 0) throw new ConfigError('--monitor is served on the metrics port: set --metrics-port (it is 0, disabled)')
    if (!isLoopback(c.metricsHost) && c.monitorToken === '') {
      throw new ConfigError(`--monitor on --metrics-host ${c.metricsHost} (reachable beyond this machine) needs --monitor-token (TICKWIRE_MONITOR_TOKEN): its API closes rooms; or bind --metrics-host 127.0.0.1`)
    }
  } else if (c.monitorToken !== '') throw new ConfigError('--monitor-token set but --monitor is off: add --monitor, or drop the token')
  if (c.resumeSecret !== '' && c.resumeSecret.length < 32) {
    throw new ConfigError(`--resume-secret: got ${c.resumeSecret.length} characters, expected at least 32 (e.g. openssl rand -hex 32)`)
  }
  for (const parse of [() => parseTrustedProxies(c.trustedProxies), () => parseAllowedOrigins(c.allowedOrigins)]) {
    try {
      parse()
    } catch (err) {
      throw new ConfigError((err as Error).message)
    }
  }
  if (c.nodeId !== '' && !NODE_ID_PATTERN.test(c.nodeId)) {
    throw new ConfigError(`--node-id: got ${JSON.stringify(c.nodeId)}, expected 1-48 characters of A-Z a-z 0-9 _ . -`)
  }
  if (c.redisUrl !== '') {
    if (!/^rediss?:\/\/[^\s]+$/.test(c.redisUrl)) throw new ConfigError(`--redis-url: got ${JSON.stringify(redactUrl(c.redisUrl))}, expected redis://host:port or rediss://host:port`)
    if (c.resumeSecret === '') {
      throw new ConfigError('--redis-url needs --resume-secret (TICKWIRE_RESUME_SECRET): every machine must check the others\' resume tokens with one shared key')
    }
  }
  if ((c.tlsCert === '') !== (c.tlsKey === '')) throw new ConfigError('--tls-cert and --tls-key go together: set both, or neither')
  if (!(AUTH_MODES as readonly string[]).includes(c.auth)) throw new ConfigError(`--auth: got ${JSON.stringify(c.auth)}, expected one of ${AUTH_MODES.join(', ')}`)
  if (!(AUTH_ALGORITHMS as readonly string[]).includes(c.authAlgorithm)) {
    throw new ConfigError(`--auth-algorithm: got ${JSON.stringify(c.authAlgorithm)}, expected one of ${AUTH_ALGORITHMS.join(', ')}`)
  }
  if (c.tlsPassphrase !== '' && c.tlsKey === '') throw new ConfigError('--tls-passphrase is for --tls-key: set --tls-cert and --tls-key too, or drop it')
  if (c.auth === 'off') {
    // Fail closed: key material without --auth is a forgotten --auth required, not a choice to let everyone in.
    const set = (['authSecret', 'authPublicKey', 'authJwks', 'authIssuer', 'authAudience'] as const).filter((k) => c[k] !== '')
    if (set.length > 0) throw new ConfigError(`${set.map(flagName).join(', ')} set but --auth is off (anyone may join): set --auth optional or required, or drop ${set.length > 1 ? 'them' : 'it'}`)
  }
  if (c.auth !== 'off') {
    if (c.authAlgorithm === 'HS256') {
      if (c.authSecret.length < 32) throw new ConfigError(`--auth ${c.auth} with HS256 needs --auth-secret of at least 32 characters (got ${c.authSecret.length})`)
      if (c.authPublicKey !== '' || c.authJwks !== '') throw new ConfigError('--auth-algorithm HS256 takes --auth-secret, not --auth-public-key or --auth-jwks')
    } else {
      if ((c.authPublicKey === '') === (c.authJwks === '')) throw new ConfigError(`--auth-algorithm ${c.authAlgorithm} needs exactly one of --auth-public-key and --auth-jwks`)
      if (c.authSecret !== '') throw new ConfigError(`--auth-algorithm ${c.authAlgorithm} verifies with a public key: --auth-secret is for HS256 only`)
    }
  }
  if (c.publicUrl !== '') {
    let u: URL | null = null
    try {
      u = new URL(c.publicUrl)
    } catch {
      u = null
    }
    if (!u || (u.protocol !== 'ws:' && u.protocol !== 'wss:') || u.search !== '' || u.hash !== '') {
      throw new ConfigError(`--public-url: got ${JSON.stringify(c.publicUrl)}, expected a ws:// or wss:// URL without query, e.g. wss://play.example.com/play`)
    }
  }
  if (c.directPort !== 0 && c.directPort + Math.max(c.workers, 1) - 1 > 65535) {
    throw new ConfigError(`--direct-port ${c.directPort} with --workers ${c.workers}: the last direct port would exceed 65535`)
  }
}

/** `url` without its password (for messages and logs). */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}

/** The default --node-id: this host's name, cut to what a node id may be. */
export function defaultNodeId(host: string): string {
  // The end of a long name is kept: that is where generated names (pods, instances) differ.
  const id = host.replace(/[^A-Za-z0-9_.-]/g, '_').slice(-48)
  return id === '' ? 'node' : id
}

/** The defaults with `overrides`, validated like CLI input (for tests and embedding). */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  const argv: string[] = []
  for (const [key, value] of Object.entries(overrides)) {
    if (!(key in OPTIONS)) throw new ConfigError(`unknown option ${JSON.stringify(key)}`)
    argv.push(`${flagName(key)}=${String(value)}`)
  }
  return parseConfig(argv, {}).config
}

/** The `--help` text: the option table. */
export function helpText(): string {
  const rows = (Object.keys(OPTIONS) as OptionName[]).map((key) => {
    const s: OptionSpec = OPTIONS[key]
    const range = s.min !== undefined ? ` [${s.min}..${s.max}]` : ''
    return `  ${flagName(key).padEnd(22)} ${envName(key).padEnd(30)} ${String(s.default).padEnd(10)} ${s.unit}${range}\n      ${s.doc}`
  })
  return [
    'Usage: tickwire [options]   (each option also reads its environment variable)',
    '',
    `  ${'flag'.padEnd(22)} ${'environment'.padEnd(30)} ${'default'.padEnd(10)} unit [range]`,
    ...rows,
    '',
  ].join('\n')
}

/** The option table as Markdown (the README embeds it; a test keeps the two equal). */
export function markdownTable(): string {
  const rows = (Object.keys(OPTIONS) as OptionName[]).map((key) => {
    const s: OptionSpec = OPTIONS[key]
    const range = s.min !== undefined ? `${s.min}..${s.max}` : ''
    return `| \`${flagName(key)}\` | \`${envName(key)}\` | ${String(s.default)} | ${s.unit} | ${range} | ${s.doc} |`
  })
  return ['| flag | environment | default | unit | range | meaning |', '|---|---|---|---|---|---|', ...rows].join('\n')
}
