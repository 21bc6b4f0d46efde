/**
 * The worker side of the supervisor: receives its config over IPC, runs one
 * tickwire process (`start`) on the shared public port plus its own direct
 * port, answers directory and metrics requests, reports its load, and drains
 * when told to (or when the supervisor disappears).
 */
import { ConfigError } from '../config.js'
import { arena } from '../games/arena.js'
import { createLogger, withFields, type Logger } from '../log.js'
import { start, type Tickwire } from '../start.js'
import type { Placement, Router } from '../net/router.js'
import type { Game } from '../sim/game.js'
import { heartbeatMs, type ToSupervisor, type ToWorker } from './ipc.js'

/** How long a worker waits for the directory before answering an upgrade 503. */
const CLAIM_TIMEOUT_MS = 2000
/** How often a worker reports its player count (placement of new rooms uses it). */
const LOAD_EVERY_MS = 250

function send(msg: ToSupervisor): void {
  // The channel may be closing or broken (supervisor gone): the callback swallows EPIPE, and the disconnect handler drains us.
  if (process.connected) process.send?.(msg, undefined, {}, () => {})
}

/** Router over IPC: every named room this worker lacks is looked up in the supervisor's directory. */
class IpcRouter implements Router {
  readonly #slot: number
  readonly #pending = new Map<number, { resolve: (p: Placement | null | 'address_limit') => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  #nextId = 1

  constructor(slot: number) {
    this.#slot = slot
  }

  locate(room: string, create: boolean, address: string): Promise<Placement | null | 'address_limit'> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`no answer from the supervisor within ${CLAIM_TIMEOUT_MS} ms`))
      }, CLAIM_TIMEOUT_MS)
      this.#pending.set(id, { resolve, reject, timer })
      send({ t: 'claim', id, room, create, address })
    })
  }

  placed(msg: Extract<ToWorker, { t: 'placed' }>): void {
    const p = this.#pending.get(msg.id)
    if (!p) return
    this.#pending.delete(msg.id)
    clearTimeout(p.timer)
    const w = msg.where
    if (msg.refused) p.resolve(msg.refused)
    else p.resolve(w === null ? null : w.slot === this.#slot ? { local: true } : { local: false, port: w.port, host: w.host })
  }

  opened(room: string): void {
    send({ t: 'room', room, open: true })
  }

  closed(room: string): void {
    send({ t: 'room', room, open: false })
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
  const log: Logger = withFields(createLogger(init.config.logLevel), { worker: init.slot })
  const router = new IpcRouter(init.slot)
  let tw: Tickwire
  try {
    tw = await start(init.config, {
      game: opts.game ?? arena,
      log,
      router,
      secret: Buffer.from(init.secret, 'hex'),
      directPort: init.directPort,
    })
  } catch (err) {
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
        router.placed(msg)
        return
      case 'metrics':
        tw.metrics.registry.getMetricsAsJSON().then(
          (snapshot) => send({ t: 'metrics', id: msg.id, snapshot }),
          (err: Error) => log.error('metrics snapshot failed', { error: err.message }),
        )
        return
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
