/**
 * The worker side of the supervisor: receives its config over IPC, runs one
 * tickwire process (`start`) on the shared public port plus its own direct
 * port, answers directory and metrics requests, reports its load, and drains
 * when told to (or when the supervisor disappears).
 */
import { ConfigError, type Config } from '../config.js'
import type { RedisDirectoryOptions } from '../directory/redis.js'
import { DirectoryStats, DirectoryUnavailable, PENDING_PER_ROOM, type ListedRoom, type LocateResult, type RoomDirectory, type RoomSummary, type WorkerAddress } from '../directory/directory.js'
import { loadGame } from '../game-module.js'
import { createLogger, exitOnUncaught, resolveLogFormat, withFields, type Logger } from '../log.js'
import { start, type Tickwire } from '../start.js'
import type { Game } from '../sim/game.js'
import { heartbeatMs, type ToSupervisor, type ToWorker } from './ipc.js'

/** How often a worker reports its player count (placement of new rooms uses it). */
const LOAD_EVERY_MS = 250

function send(msg: ToSupervisor): void {
  // The channel may be closing or broken (supervisor gone): the callback swallows EPIPE, and the disconnect handler drains us.
  if (process.connected) process.send?.(msg, undefined, {}, () => {})
}

/** The supervisor's in-memory directory (src/directory/memory.ts), reached over IPC: every named room this worker lacks is looked up there. */
class IpcDirectory implements RoomDirectory {
  readonly self: WorkerAddress
  readonly stats = new DirectoryStats()
  onLost: (id: string) => void = () => {}
  readonly #timeoutMs: number
  readonly #pending = new Map<number, { resolve: (p: LocateResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; t0: number }>()
  #nextId = 1

  constructor(self: WorkerAddress, timeoutMs: number) {
    this.self = self
    this.#timeoutMs = timeoutMs
  }

  locate(room: string, create: boolean, address: string): Promise<LocateResult> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        this.stats.ops.locate.error++
        this.stats.up = false
        reject(new DirectoryUnavailable(`no answer from the supervisor within ${this.#timeoutMs} ms`))
      }, this.#timeoutMs)
      this.#pending.set(id, { resolve, reject, timer, t0: performance.now() })
      send({ t: 'claim', id, room, create, address })
    })
  }

  placed(msg: Extract<ToWorker, { t: 'placed' }>): void {
    const p = this.#pending.get(msg.id)
    if (!p) return
    this.#pending.delete(msg.id)
    clearTimeout(p.timer)
    this.stats.ops.locate.ok++
    this.stats.up = true
    this.stats.observe('locate', (performance.now() - p.t0) / 1000)
    p.resolve(msg.refused ?? msg.where)
  }

  opened(room: string): void {
    send({ t: 'room', room, open: true })
  }

  closed(room: string): void {
    send({ t: 'room', room, open: false })
  }

  close(): Promise<void> {
    // The supervisor forgets a slot's rooms when the worker exits.
    return Promise.resolve()
  }

  publish(rooms: readonly RoomSummary[]): void {
    send({ t: 'publish', rooms })
  }

  readonly #lists = new Map<number, { resolve: (r: readonly ListedRoom[]) => void; timer: NodeJS.Timeout }>()

  listRooms(): Promise<readonly ListedRoom[]> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#lists.delete(id)
        reject(new DirectoryUnavailable(`no answer from the supervisor within ${this.#timeoutMs} ms`))
      }, this.#timeoutMs)
      this.#lists.set(id, { resolve, timer })
      send({ t: 'list', id })
    })
  }

  listed(msg: Extract<ToWorker, { t: 'listed' }>): void {
    const p = this.#lists.get(msg.id)
    if (!p) return
    this.#lists.delete(msg.id)
    clearTimeout(p.timer)
    p.resolve(msg.rooms)
  }
}

/** The Redis directory's options from the config. */
function redisOptions(config: Config, self: WorkerAddress, log: Logger): RedisDirectoryOptions {
  return {
    url: config.redisUrl,
    self,
    nodeTtlMs: config.nodeTtl * 1000,
    timeoutMs: config.directoryTimeout * 1000,
    maxClaimsPerAddress: config.maxRoomsPerAddress,
    // As the supervisor's directory caps them: room for bursts, not for a flood.
    maxPendingClaims: PENDING_PER_ROOM * config.maxRooms,
    log,
  }
}

/**
 * Stands in for the Redis directory while the worker binds its direct port
 * (the node record must name it): lookups answer unavailable, rooms opened
 * meanwhile (quick play) are registered once the real one is attached.
 */
class DeferredDirectory implements RoomDirectory {
  readonly self: WorkerAddress
  readonly stats = new DirectoryStats()
  onLost: (id: string) => void = () => {}
  #real: RoomDirectory | null = null
  readonly #opened = new Set<string>()

  constructor(self: WorkerAddress) {
    this.self = self
  }

  attach(real: RoomDirectory): void {
    this.#real = real
    real.onLost = (id) => this.onLost(id)
    for (const id of this.#opened) real.opened(id)
    this.#opened.clear()
  }

  locate(id: string, create: boolean, address: string, canHost?: boolean): Promise<LocateResult> {
    return this.#real ? this.#real.locate(id, create, address, canHost) : Promise.reject(new DirectoryUnavailable('room directory: still connecting'))
  }

  opened(id: string): void {
    if (this.#real) this.#real.opened(id)
    else this.#opened.add(id)
  }

  closed(id: string): void {
    if (this.#real) this.#real.closed(id)
    else this.#opened.delete(id)
  }

  close(timeoutMs?: number): Promise<void> {
    return this.#real ? this.#real.close(timeoutMs) : Promise.resolve()
  }

  publish(rooms: readonly RoomSummary[]): void {
    this.#real?.publish(rooms) // the next publish (a second later) reaches the real one
  }

  listRooms(): Promise<readonly ListedRoom[]> {
    return this.#real ? this.#real.listRooms() : Promise.reject(new DirectoryUnavailable('room directory: still connecting'))
  }
}

export interface WorkerOptions {
  /** The game this worker runs; default: the reference arena. Every worker of a deployment must run the same game. */
  readonly game?: Game
}

/**
 * Runs this process as a worker of a tickwire supervisor. Call it from the
 * worker script (the default script is tickwire's own `main.js`). Returns
 * once the worker serves; the process exits when the supervisor drains it.
 */
export function runWorker(opts: WorkerOptions = {}): Promise<void> {
  if (!process.send) return Promise.reject(new Error('runWorker: not started by a tickwire supervisor (no IPC channel)'))
  // The supervisor coordinates shutdown; Ctrl-C reaches the whole process group, and only it must act on it.
  process.on('SIGINT', () => {})
  process.on('SIGTERM', () => {})
  // A drain (or the supervisor's death) may come while we start: remember it, act once started.
  const early: { drainMs: number; why: string } = { drainMs: 0, why: '' }
  const onEarly = (msg: ToWorker) => {
    if (msg.t === 'drain' && !early.why) Object.assign(early, { drainMs: msg.drainMs, why: 'supervisor' })
  }
  const onGone = () => {
    if (!early.why) Object.assign(early, { drainMs: 1000, why: 'supervisor gone' })
  }
  process.on('message', onEarly)
  process.on('disconnect', onGone)
  return new Promise((resolve) => {
    const onInit = (msg: ToWorker) => {
      if (msg.t !== 'init') return
      process.off('message', onInit)
      void serve(msg, opts, () => {
        process.off('message', onEarly)
        process.off('disconnect', onGone)
        return early.why ? early : null
      }).then(resolve)
    }
    process.on('message', onInit)
  })
}

async function serve(init: Extract<ToWorker, { t: 'init' }>, opts: WorkerOptions, earlyDrain: () => { drainMs: number; why: string } | null): Promise<void> {
  // Every line names the slot (a number, as the supervisor's lines about it do); the format is the supervisor's, resolved.
  const format = resolveLogFormat(init.config.logFormat)
  const log: Logger = withFields(createLogger(init.config.logLevel, { format }), { worker: init.slot })
  exitOnUncaught(log, format)
  const config = init.config
  // Direct redirects name --advertise-host, else the bound address when it is a specific one (a wildcard names nothing).
  const host = config.advertiseHost !== '' ? config.advertiseHost : config.host === '0.0.0.0' || config.host === '::' ? '' : config.host
  const self: WorkerAddress = { name: init.name, host, port: init.directPort }
  let directory: RoomDirectory | null = null
  let deferred: DeferredDirectory | null = null
  let ipc: IpcDirectory | null = null
  let tw: Tickwire
  try {
    if (config.redisUrl !== '' && init.directPort === 0) {
      // A direct port the kernel picks is known only once bound: the Redis directory (whose node record names it)
      // connects right after start(); until then named joins that need it get 503 (a moment at start).
      directory = deferred = new DeferredDirectory(self)
    } else if (config.redisUrl !== '') {
      // Loaded only when asked for: one machine never loads the Redis client.
      const { RedisDirectory } = await import('../directory/redis.js')
      directory = await RedisDirectory.connect(redisOptions(config, self, log))
    } else directory = ipc = new IpcDirectory(self, config.directoryTimeout * 1000)
    tw = await start(config, {
      // A game given to runWorker() wins; else --game (loaded in this worker), else the arena.
      game: opts.game ?? (await loadGame(config.game)),
      log,
      directory: directory ?? undefined,
      secret: Buffer.from(init.secret, 'hex'),
      directPort: init.directPort,
    })
    if (deferred) {
      const { RedisDirectory } = await import('../directory/redis.js')
      deferred.attach(await RedisDirectory.connect({ ...redisOptions(config, { ...self, port: tw.directPort }, log), stats: deferred.stats }))
    }
  } catch (err) {
    void directory?.close(500)
    send({ t: 'failed', error: (err as Error).message, config: err instanceof ConfigError })
    process.exitCode = err instanceof ConfigError ? 2 : 1
    process.disconnect?.()
    return
  }
  const reportLoad = setInterval(() => send({ t: 'load', players: tw.rooms.players, rooms: tw.rooms.list.length }), LOAD_EVERY_MS)
  reportLoad.unref()
  let draining = false
  const drain = (drainMs: number, why: string) => {
    if (draining) return
    draining = true
    clearInterval(reportLoad)
    log.info('draining', { why, players: tw.rooms.players })
    tw.stop(drainMs).then(
      () => setTimeout(() => process.exit(0), 20), // a moment for the close frames to leave
      (err: Error) => {
        log.error('drain failed', { error: err.message })
        process.exit(1)
      },
    )
  }
  process.on('message', (msg: ToWorker) => {
    switch (msg.t) {
      case 'placed':
        ipc?.placed(msg)
        return
      case 'listed':
        ipc?.listed(msg)
        return
      case 'lost':
        directory?.onLost(msg.room)
        return
      case 'metrics':
        tw.metrics.registry.getMetricsAsJSON().then(
          (snapshot) => send({ t: 'metrics', id: msg.id, snapshot }),
          (err: Error) => log.error('metrics snapshot failed', { error: err.message }),
        )
        return
      case 'monitor': {
        const m = tw.monitor
        if (!m) return
        const state = m.state()
        if (!msg.listing || config.redisUrl === '' || !directory) send({ t: 'monitor', id: msg.id, state, listing: null })
        else {
          directory.listRooms().then(
            (listing) => send({ t: 'monitor', id: msg.id, state, listing }),
            () => send({ t: 'monitor', id: msg.id, state, listing: null }), // the page shows this machine's rooms all the same
          )
        }
        return
      }
      case 'monitor-close': {
        const m = tw.monitor
        if (!m) return
        if (msg.room !== null) {
          const closed = m.closeRoom(msg.room)
          send({ t: 'monitor-closed', id: msg.id, room: closed < 0 ? null : msg.room, closed })
        } else if (msg.player !== null) {
          const room = m.closePlayer(msg.player)
          send({ t: 'monitor-closed', id: msg.id, room, closed: room === null ? -1 : 1 })
        }
        return
      }
      case 'drain':
        drain(msg.drainMs, 'supervisor')
        return
    }
  })
  // The supervisor died (even kill -9): nobody routes to us or restarts us; leave cleanly.
  process.on('disconnect', () => drain(1000, 'supervisor gone'))
  const early = earlyDrain()
  if (early || !process.connected) {
    drain(early?.drainMs ?? 1000, early?.why ?? 'supervisor gone')
    return
  }
  send({ t: 'ready', port: tw.port, directPort: tw.directPort })
  send({ t: 'load', players: 0, rooms: 0 })
  // From a timer, not from the tick: it proves the event loop turns (a blocked loop sends none; the supervisor kills us).
  // It goes on while draining: the supervisor does not check a drain, and a self-drain (supervisor gone) sends nothing.
  setInterval(() => send({ t: 'beat' }), heartbeatMs(init.config.workerStallTimeout)).unref()
}
