/**
 * The library's `start()`: builds rooms, the network server, the tick loop
 * and the metrics endpoint from a validated config, in this process. The CLI
 * (main.ts) and the worker runtime (cluster/worker.ts) both call it; neither
 * imports the other.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import { ConfigError, defaultNodeId, type Config } from './config.js'
import { arena } from './games/arena.js'
import { createLogger, EventLog, type LogFormat, type Logger } from './log.js'
import { Metrics } from './metrics/registry.js'
import { startReclaimer, type Reclaimer } from './reclaim.js'
import { FdGuard, fitFdLimit } from './net/fdguard.js'
import { serveMetrics, type MetricsEndpoint } from './net/metrics-http.js'
import { LocalMonitor } from './monitor/local.js'
import { monitorCounters, mountMonitor } from './monitor/http.js'
import { localSource } from './monitor/sources.js'
import { hostname } from 'node:os'
import type { AuthAlgorithm, Verifier } from './auth/auth.js'
import type { RoomDirectory } from './directory/directory.js'
import { assertPortFree } from './net/ports.js'
import { GameServer } from './net/server.js'
import { defaultWebDir, loadStatic, type StaticFile } from './net/static.js'
import { assertNativeUws } from './net/uws.js'
import { maxFrameBytes, roomReplicationBytes, viewerBytes } from './replicate/replicator.js'
import { systemClock, type Clock } from './sim/clock.js'
import { validateGame, type Game } from './sim/game.js'
import { TickLoop } from './sim/loop.js'
import { Rooms } from './sim/room.js'

/** Ticks travel as uint32 (about 4.5 years at 30 Hz, 207 days at 240 Hz). */
const MAX_TICK = 0xffffffff - 1

/** uWS core v20.43 can lose an uncorked send of >= 16 KiB; we cork, and also keep every frame below it. */
const MAX_SAFE_FRAME = 16 * 1024
/** Tick period of a process with no rooms, ms (TickLoop's idle). */
export const IDLE_TICK_MS = 1000

export interface StartOptions {
  /** The game to run; default: the reference arena. */
  readonly game?: Game
  readonly log?: Logger
  readonly clock?: Clock
  /** Resume-token key; default: `config.resumeSecret`, else random. Workers of one deployment share it. */
  readonly secret?: Buffer
  /**
   * Where rooms live when this process is one worker of several (set by the
   * worker runtime: the supervisor's directory over IPC, or Redis). Released
   * on stop, before players are closed, so they rejoin elsewhere at once.
   */
  readonly directory?: RoomDirectory
  /** Also listen on this direct port (exclusive; 0: a free one). Workers do; a single process does not. */
  readonly directPort?: number
  /** Folder of the built web client served at `/` (see static.ts); default `--web-dir`, else `dist/web` for the arena. */
  readonly webDir?: string
  /**
   * Drain on SIGINT/SIGTERM: players are closed with 1001 SHUTDOWN (at most
   * `min(1 s, drainTimeout / 2)` for their queued bytes), then the process
   * exits (`process.exitCode`, else 0); past `--drain-timeout` it exits 1, and
   * a second signal exits 1 at once. The handlers are removed on stop().
   * Default: true, except for a worker of a supervisor (`directory` given),
   * whose supervisor drains it. false: handle signals yourself and call stop().
   */
  readonly signals?: boolean
}

/** A running tickwire process. */
export interface Tickwire {
  readonly config: Config
  /** Public port actually bound. */
  readonly port: number
  /** Metrics port actually bound, or 0 when disabled. */
  readonly metricsPort: number
  /** This worker's direct port, or 0 when it has none. */
  readonly directPort: number
  readonly server: GameServer
  readonly rooms: Rooms
  readonly loop: TickLoop
  readonly metrics: Metrics
  /** The monitor's view of this process (`--monitor`), or null; a worker answers its supervisor's monitor requests from it. */
  readonly monitor: LocalMonitor | null
  /**
   * Graceful stop: not ready, listen sockets closed, loop stopped, players closed
   * with SHUTDOWN once their queued bytes are out (`drainMs`, default 1 s, at most). Resolves when all are closed.
   */
  stop(drainMs?: number): Promise<void>
}

/** Starts tickwire with `config` (validated) and resolves once both ports are bound. */
export async function start(config: Config, opts: StartOptions = {}): Promise<Tickwire> {
  assertNativeUws()
  const game = opts.game ?? arena
  const log = opts.log ?? createLogger(config.logLevel, { format: config.logFormat as LogFormat | '' })
  // --max-players must fit below the open-file limit (the default is lowered to fit).
  config = fitFdLimit(config, log)
  const frameMax = maxFrameBytes(config.maxVisible, game.fields.length)
  if (frameMax >= MAX_SAFE_FRAME) {
    throw new ConfigError(
      `--max-visible ${config.maxVisible} allows STATE frames of up to ${frameMax} bytes with ${game.fields.length} fields; keep them under ${MAX_SAFE_FRAME}`,
    )
  }
  validateGame(game, config.maxPlayersPerRoom)
  checkBudget(config, game, frameMax)
  const seed = config.seed !== 0 ? config.seed : randomInt(1, 0xffffffff)
  const rooms = new Rooms(game, {
    maxPlayersPerRoom: config.maxPlayersPerRoom,
    maxRooms: config.maxRooms,
    cellSize: config.aoiRadius,
    seed,
  })
  const secret = opts.secret ?? (config.resumeSecret !== '' ? Buffer.from(config.resumeSecret) : randomBytes(32))
  const web = loadWeb(config, opts, game, log)
  const directory = opts.directory
  const verifier = config.auth === 'off' ? undefined : await loadVerifier(config, log)
  const server = new GameServer(rooms, config, log, { secret, directory, web, verifier })
  const clock = opts.clock ?? systemClock
  const dt = 1 / config.tickHz
  let metrics: Metrics | undefined
  let monitor: LocalMonitor | null = null
  const stallEvents = new EventLog(log)
  const loop = new TickLoop({
    hz: config.tickHz,
    maxCatchUpTicks: config.maxCatchUpTicks,
    clock,
    onStall: (ms) => stallEvents.warn('event loop stall', { reason: 'tick', ms: Math.round(ms), tick: loop.tick }),
    // No rooms: one tick a second (it still sweeps the address book) instead of tickHz wake-ups.
    idle: () => rooms.list.length === 0,
    idleMs: IDLE_TICK_MS,
    onTick: (tick) => {
      if (tick >= MAX_TICK) {
        // Ticks travel as uint32: stop cleanly (clients get SHUTDOWN and rejoin a restarted server) rather than wrap.
        log.error('tick counter exhausted: stopping; restart the process', { tick, days: Math.floor(tick / config.tickHz / 86400) })
        process.exitCode = 1
        void stop()
        return
      }
      const t0 = clock.now()
      rooms.step(dt, tick)
      server.sendTick(tick)
      const seconds = (clock.now() - t0) / 1000
      metrics?.observeTick(seconds, loop.lastLatenessMs / 1000)
      monitor?.tick(seconds)
    },
  })
  metrics = new Metrics({
    stats: server.stats,
    loop,
    rooms: () => rooms.list.length,
    players: () => rooms.players,
    buffered: () => server.bufferedBytes(),
    held: () => server.held,
    tickBudgetSeconds: dt,
    directory: directory?.stats,
  })
  if (config.monitor) monitor = new LocalMonitor({ rooms, server, tickHz: config.tickHz })
  let endpoint: MetricsEndpoint | null = null
  let fdGuard: FdGuard | null = null
  let reclaimer: Reclaimer | null = null
  let stopped: Promise<void> | null = null
  // Once: a second stop (a signal during a tick-exhaustion stop, a test teardown) returns the first one's promise.
  let unsignal: (() => void) | null = null
  const stop = (drainMs?: number): Promise<void> =>
    (stopped ??= (async () => {
      unsignal?.()
      fdGuard?.stop()
      reclaimer?.stop()
      monitor?.stop()
      verifier?.close()
      // Not ready (the load balancer stops sending players), no new connections, and the directory forgets our rooms
      // while they still play: the players closed next rejoin on another worker without waiting for a lease to lapse.
      server.stopAccepting()
      await directory?.close(Math.min(1000, drainMs ?? 1000))
      loop.stop()
      await server.shutdown(drainMs)
      endpoint?.close()
    })())
  // Only a supervisor's own workers share the public port (SO_REUSEPORT): a single process checks nobody else holds it.
  if (!directory) await assertPortFree(config.host, config.port)
  const port = await server.listen()
  let directPort = 0
  if (opts.directPort !== undefined) {
    try {
      directPort = await server.listenDirect(opts.directPort)
    } catch (err) {
      void server.shutdown()
      throw err
    }
  }
  if (config.metricsPort !== 0) {
    try {
      const m = metrics
      const machine = config.nodeId !== '' ? config.nodeId : defaultNodeId(hostname())
      const extend = monitor ? mountMonitor({ source: localSource(machine, monitor), token: config.monitorToken, registry: m.registry, log }) : (monitorCounters(m.registry), undefined)
      endpoint = await serveMetrics({ host: config.metricsHost, port: config.metricsPort, registry: m.registry, render: () => m.text(), log, token: config.metricsToken, cacheSeconds: config.metricsCache, ready: () => server.ready && server.accepting, extend })
    } catch (err) {
      server.shutdown()
      throw err
    }
  }
  // A new room ends the idle nap at once: its first players get their first STATE on the next tick.
  const created = rooms.onCreate
  rooms.onCreate = (room) => {
    created(room)
    loop.wake()
  }
  loop.start()
  // Near the open-file limit the public port stops accepting for a while (an EMFILE accept loop would spin).
  fdGuard = FdGuard.forProcess(server, server.stats, log, config)
  fdGuard?.start()
  // After a peak, one full GC hands the closed rooms' memory back (V8 would wait for allocation pressure).
  reclaimer = startReclaimer(() => rooms.list.length, log)
  log.info('tickwire listening', {
    port,
    ...(directPort ? { directPort } : {}),
    metricsPort: endpoint?.port ?? 0,
    game: game.name,
    tickHz: config.tickHz,
    seed,
    pid: process.pid,
    tls: config.tlsCert !== '',
    // Said at every start: with --auth off anyone who reaches the port may play (fine for development).
    auth: config.auth === 'off' ? 'off (anyone may join; see --auth)' : `${config.auth} (${config.authAlgorithm})`,
  })
  const tw: Tickwire = {
    config,
    port,
    metricsPort: endpoint?.port ?? 0,
    directPort,
    server,
    rooms,
    loop,
    metrics,
    monitor,
    stop,
  }
  if (opts.signals ?? !directory) {
    signalled.set(tw, log)
    syncSignalHandlers()
    unsignal = () => {
      signalled.delete(tw)
      syncSignalHandlers()
    }
  }
  return tw
}

/** The running instances that drain on a signal (one pair of process handlers serves them all). */
const signalled = new Map<Tickwire, Logger>()
let signalSeen = false

function syncSignalHandlers(): void {
  const on = process.listeners('SIGTERM').includes(onSignal)
  if (signalled.size > 0 && !on) {
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  } else if (signalled.size === 0 && on && !signalSeen) {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** SIGINT/SIGTERM: drain every instance, then exit, as the CLI and the supervisor do. */
function onSignal(sig: NodeJS.Signals): void {
  const all = [...signalled]
  if (signalSeen) {
    for (const [, log] of all) log.warn('second signal: exiting now', { signal: sig })
    process.exit(1)
  }
  signalSeen = true
  let timeout = 0
  for (const [tw, log] of all) {
    log.info('stopping', { signal: sig, players: tw.rooms.players })
    timeout = Math.max(timeout, tw.config.drainTimeout)
  }
  const timer = setTimeout(() => {
    for (const [, log] of all) log.error('not stopped within the drain timeout; exiting', { drainTimeout: timeout })
    process.exit(1)
  }, timeout * 1000)
  timer.unref()
  Promise.all(all.map(([tw]) => tw.stop(Math.min(1000, (tw.config.drainTimeout * 1000) / 2)))).then(
    // The close frames are written to the kernel by now; a moment for good measure, then leave.
    () => setTimeout(() => process.exit(process.exitCode ?? 0), 20),
    (err: Error) => {
      for (const [, log] of all) log.error('stop failed', { error: err.message })
      process.exit(1)
    },
  )
}

/**
 * The web client's files: `opts.webDir`, else `--web-dir`, else the bundled page for the arena (another game gets
 * no page unless it brings its own folder). A folder named explicitly must exist; past a limit start-up fails (exit 2).
 */
function loadWeb(config: Config, opts: StartOptions, game: Game, log: Logger): Map<string, StaticFile> {
  const given = opts.webDir ?? (config.webDir !== '' ? config.webDir : null)
  const dir = given ?? (game === arena ? defaultWebDir() : null)
  if (dir === null) return new Map()
  if (given !== null && !existsSync(given)) throw new ConfigError(`--web-dir: ${JSON.stringify(given)} does not exist`)
  let web: Map<string, StaticFile>
  try {
    web = loadStatic(dir, { warn: (msg, fields) => log.warn(msg, { dir, ...fields }) })
  } catch (err) {
    throw new ConfigError(`--web-dir: ${(err as Error).message}`)
  }
  if (!web.has('/')) {
    if (given === null) log.warn('browser client not built (run npm run build): / answers 404', { dir })
    else log.warn('--web-dir has no index.html: / answers 404', { dir })
  }
  return web
}

/** The join-token verifier for `--auth` (jose is loaded only then); a key that cannot be loaded is a config error (exit 2). */
async function loadVerifier(config: Config, log: Logger): Promise<Verifier> {
  const { createVerifier } = await import('./auth/jwt.js')
  if (config.authAlgorithm !== 'HS256' && config.authAudience === '') {
    // A public key or an IdP's key set signs tokens for other apps too: only `aud` says a token is for this one.
    log.warn('--auth with a public key or JWKS and no --auth-audience: tokens the same issuer signs for other applications are accepted too', { algorithm: config.authAlgorithm })
  }
  try {
    return await createVerifier({
      algorithm: config.authAlgorithm as AuthAlgorithm,
      secret: config.authSecret,
      publicKeyFile: config.authPublicKey,
      jwks: config.authJwks,
      issuer: config.authIssuer,
      audience: config.authAudience,
      clockToleranceSeconds: config.authClockTolerance,
      log,
    })
  } catch (err) {
    throw new ConfigError((err as Error).message)
  }
}

const MiB = 1024 * 1024
/** Limits that keep one bad setting from exhausting the machine (per room, per player). */
const MAX_ROOM_BYTES = 1024 * MiB
const MAX_VIEWER_BYTES = 2 * MiB
const MAX_VIEWERS_BYTES = 8192 * MiB
const MAX_CELLS = 1_000_000

/** Cross-checks the config against the game's world: memory per room and per player, grid size, backpressure caps. */
function checkBudget(config: Config, game: Game, frameMax: number): void {
  const layout = game.layout(config.maxPlayersPerRoom)
  const cells = Math.ceil(layout.width / config.aoiRadius) * Math.ceil(layout.height / config.aoiRadius)
  if (cells > MAX_CELLS) {
    throw new ConfigError(
      `--aoi-radius ${config.aoiRadius} cuts the game's ${layout.width} x ${layout.height} world into ${cells} grid cells per room; at most ${MAX_CELLS} (raise --aoi-radius)`,
    )
  }
  const room = roomReplicationBytes(config.historyTicks, layout.capacity, game.fields.length, cells)
  if (room > MAX_ROOM_BYTES) {
    throw new ConfigError(
      `--history-ticks ${config.historyTicks} with --max-players-per-room ${config.maxPlayersPerRoom} (${layout.capacity} entities) needs ${Math.ceil(room / MiB)} MiB per room; at most ${MAX_ROOM_BYTES / MiB} MiB`,
    )
  }
  const viewer = viewerBytes(config.ackWindow, config.maxVisible)
  if (viewer > MAX_VIEWER_BYTES) {
    throw new ConfigError(
      `--ack-window ${config.ackWindow} with --max-visible ${config.maxVisible} needs ${Math.ceil(viewer / MiB)} MiB per player; at most ${MAX_VIEWER_BYTES / MiB} MiB`,
    )
  }
  if (viewer * config.maxPlayers > MAX_VIEWERS_BYTES) {
    throw new ConfigError(
      `--max-players ${config.maxPlayers} at ${Math.ceil(viewer / 1024)} KiB each (--ack-window, --max-visible) needs ${Math.ceil((viewer * config.maxPlayers) / MiB)} MiB; at most ${MAX_VIEWERS_BYTES / MiB} MiB`,
    )
  }
  if (config.hardBackpressure < config.softBackpressure + frameMax) {
    throw new ConfigError(
      `--hard-backpressure (${config.hardBackpressure} bytes) must be at least --soft-backpressure plus one frame (${config.softBackpressure + frameMax} bytes)`,
    )
  }
}

