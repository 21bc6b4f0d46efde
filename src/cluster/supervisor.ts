/**
 * The supervisor (primary process) of a multi-worker deployment. It forks one
 * worker per slot; each binds the public port itself (SO_REUSEPORT: the
 * kernel spreads connections) and a direct port of its own. The supervisor
 * keeps the room directory, restarts crashed workers with backoff, serves the
 * one /metrics endpoint for all workers, and drains them on stop.
 *
 * It holds no player connection and runs no simulation, so it has little to
 * crash on; a worker crash costs that worker's rooms only.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import client from 'prom-client'
import { ConfigError, defaultNodeId, type Config } from '../config.js'
import type { Logger } from '../log.js'
import { serveMetrics, type MetricsEndpoint } from '../net/metrics-http.js'
import { counter, flag } from '../metrics/registry.js'
import { checkTls } from '../net/tls.js'
import { assertNativeUws } from '../net/uws.js'
import { hostname } from 'node:os'
import { workerName, type RoomDirectory, type WorkerAddress } from '../directory/directory.js'
import { MemoryDirectory, PENDING_PER_ROOM } from '../directory/memory.js'
import { WORKER_ENV, heartbeatMs, type MetricsSnapshot, type ToSupervisor, type ToWorker } from './ipc.js'
import { MetricsMerger } from './merge.js'
import { monitorCounters, mountMonitor } from '../monitor/http.js'
import { ClusterSource, MONITOR_WAIT_MS } from '../monitor/sources.js'
import { assertPortFree, freePort } from '../net/ports.js'

/** Restart backoff: the first replacement starts at once, the next after this, doubling per consecutive crash, up to the cap. */
export const RESTART_BASE_MS = 200
export const RESTART_CAP_MS = 10_000
/** A worker that lived this long before crashing starts the backoff over. */
const STABLE_MS = 30_000
/** After this many crashes in a row the supervisor logs the slot as crash-looping (and keeps retrying at the cap). */
const CRASH_LOOP = 5
/** How long a new worker may take to report ready. */
const START_TIMEOUT_MS = 15_000
/** How long a scrape waits for each worker before using its last snapshot. */
export const SCRAPE_WAIT_MS = 1000

export interface SupervisorOptions {
  /** Worker processes (>= 1). */
  readonly workers: number
  /** Script each worker runs; it must call `runWorker()`. Default: tickwire's own main.js (the reference game). */
  readonly script?: string
  /** Node options for the workers; default: the supervisor's own (`process.execArgv`, so `--cpu-prof` etc. reach them). */
  readonly execArgv?: readonly string[]
  readonly log: Logger
}

export interface WorkerInfo {
  readonly slot: number
  /** 0 while the slot is restarting. */
  readonly pid: number
  /** 0 until the worker is ready. */
  readonly directPort: number
}

export interface Supervisor {
  /** Public port, shared by every worker. */
  readonly port: number
  readonly metricsPort: number
  workers(): WorkerInfo[]
  /** Worker restarts since start. */
  readonly restarts: number
  /**
   * Drains every worker (not ready, listen sockets closed, players closed with
   * SHUTDOWN) and waits for them to exit, at most `drainTimeout`; kills what
   * is left. Resolves with the exit code to use: 0 if all exited on their own.
   */
  stop(): Promise<number>
}

interface Slot {
  readonly index: number
  /** Direct port to bind (0: a free one). */
  readonly wantDirect: number
  child: ChildProcess | null
  pid: number
  ready: boolean
  directPort: number
  startedAt: number
  crashes: number
  timer: NodeJS.Timeout | null
  /** When the worker last proved its event loop turns (any message; heartbeats when idle), performance.now() ms. */
  lastBeat: number
  /** Killed by the liveness check: not checked again until its exit is handled. */
  stalled: boolean
}

/** Starts `opts.workers` workers and the metrics endpoint; resolves once all workers serve. */
export async function startSupervisor(config: Config, opts: SupervisorOptions): Promise<Supervisor> {
  assertNativeUws() // fail here, once, rather than in every worker
  checkTls(config, opts.log) // a certificate that cannot be loaded: one clear error (and one expiry warning), before any fork
  const { log } = opts
  const n = opts.workers
  const script = opts.script ?? fileURLToPath(new URL('../main.js', import.meta.url))
  const secret = (config.resumeSecret !== '' ? Buffer.from(config.resumeSecret) : randomBytes(32)).toString('hex')
  const directBase = config.directPort !== 0 ? config.directPort : config.port !== 0 ? config.port + 1 : 0
  // uWS binds port 0 without SO_REUSEPORT, so the workers could not share it: pick a free port for all of them.
  if (config.port === 0) config = { ...config, port: await freePort(config.host) }
  if (directBase !== 0) {
    if (directBase + n - 1 > 65535) throw new ConfigError(`direct ports ${directBase}..${directBase + n - 1} (one per worker) exceed 65535; set --direct-port`)
    if (config.metricsPort >= directBase && config.metricsPort < directBase + n) {
      throw new ConfigError(`--metrics-port ${config.metricsPort} falls in the direct ports ${directBase}..${directBase + n - 1} (one per worker); set --direct-port`)
    }
  }
  const nodeId = config.nodeId !== '' ? config.nodeId : defaultNodeId(hostname())
  if (config.redisUrl !== '' && config.advertiseHost === '' && (config.host === '0.0.0.0' || config.host === '::')) {
    // The node record can only say "the host the client used", which is another machine (or the balancer).
    log.warn('--redis-url without --advertise-host on a wildcard --host: direct redirects to this machine name no host, so protocol-2 clients (and every client without --public-url) cannot follow them here; set --advertise-host', { host: config.host })
  }
  // Only this supervisor's workers may share the public port: refuse one another process holds (see ports.ts).
  await assertPortFree(config.host, config.port)
  // Fixed direct ports, or 0: each worker binds a free one itself (picking one here and binding it in the worker
  // would race other processes for it) and reports it when ready.
  const directPorts: number[] = []
  for (let i = 0; i < n; i++) directPorts.push(directBase !== 0 ? directBase + i : 0)
  // Without Redis the supervisor keeps the directory (one machine); with it, every worker talks to Redis itself.
  const directory = config.redisUrl === '' ? new MemoryDirectory(n, { maxPerAddress: config.maxRoomsPerAddress, maxPending: PENDING_PER_ROOM * config.maxRooms * n, maxRooms: config.maxRooms }) : null
  const addressOf = (slot: number): WorkerAddress | null => {
    const s = slots[slot]
    return s ? { name: workerName(nodeId, slot), host: config.advertiseHost, port: s.directPort || s.wantDirect } : null // '' host: the client's
  }
  const members: (RoomDirectory | null)[] = new Array<RoomDirectory | null>(n).fill(null)
  const merger = new MetricsMerger()
  const slots: Slot[] = Array.from({ length: n }, (_, i) => ({
    index: i,
    wantDirect: directPorts[i] as number,
    child: null,
    pid: 0,
    ready: false,
    directPort: 0,
    startedAt: 0,
    crashes: 0,
    timer: null,
    lastBeat: 0,
    stalled: false,
  }))
  const port = config.port
  let restarts = 0
  let stalls = 0
  let started = false
  let stopping: Promise<number> | null = null
  let onAllExited: () => void = () => {}
  let nextId = 1
  const metricsWaits = new Map<number, (s: MetricsSnapshot | null) => void>()
  const monitorWaits = new Map<number, (msg: ToSupervisor | null) => void>()

  const spawn = (slot: Slot): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = fork(script, [], {
        env: { ...process.env, [WORKER_ENV]: String(slot.index) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        execArgv: [...(opts.execArgv ?? process.execArgv)],
      })
      slot.child = child
      slot.pid = child.pid ?? 0
      slot.ready = false
      slot.stalled = false
      slot.startedAt = Date.now()
      const timer = setTimeout(() => {
        log.error('worker did not start in time; killing it', { worker: slot.index, pid: slot.pid, ms: START_TIMEOUT_MS })
        child.kill('SIGKILL')
      }, START_TIMEOUT_MS)
      let failure: Error | null = null
      child.on('message', (msg: ToSupervisor) => {
        // Node may deliver a dead child's last messages after its exit: they must not touch the slot's new worker.
        if (slot.child !== child) return
        slot.lastBeat = performance.now()
        if (msg.t === 'ready') {
          clearTimeout(timer)
          slot.ready = true
          slot.directPort = msg.directPort
          if (directory) {
            const m = directory.member(slot.index, addressOf)
            m.onLost = (room) => child.send({ t: 'lost', room } satisfies ToWorker)
            members[slot.index] = m
          }
          resolve()
        } else if (msg.t === 'failed') {
          failure = msg.config ? new ConfigError(msg.error) : new Error(msg.error)
        } else onMessage(slot, msg)
      })
      child.on('error', (err) => log.error('worker process error', { worker: slot.index, error: err.message }))
      child.on('exit', (code, signal) => {
        clearTimeout(timer)
        if (slot.child !== child) return
        const wasReady = slot.ready
        slot.child = null
        slot.pid = 0
        slot.ready = false
        void members[slot.index]?.close() // forgets the slot's rooms and stops placing rooms there
        members[slot.index] = null
        merger.retire(slot.index)
        if (!wasReady) reject(failure ?? new Error(`worker ${slot.index} exited before it was ready (code ${code}, signal ${signal})`))
        if (stopping) {
          if (slots.every((s) => s.child === null)) onAllExited()
          return
        }
        // At start-up a failing worker fails the start; later, even a replacement that dies before ready is retried.
        if (started) onCrash(slot, code, signal)
      })
      child.send({ t: 'init', slot: slot.index, name: workerName(nodeId, slot.index), config: { ...config, port, metricsPort: 0, workers: 1, nodeId }, directPort: slot.wantDirect, secret } satisfies ToWorker)
    })

  const onMessage = (slot: Slot, msg: ToSupervisor): void => {
    switch (msg.t) {
      case 'claim': {
        const m = members[slot.index]
        if (!m) return // not ready, or Redis mode (the worker asks Redis itself)
        void m.locate(msg.room, msg.create, msg.address).then((where) => {
          if (where === 'address_limit') slot.child?.send({ t: 'placed', id: msg.id, where: null, refused: where } satisfies ToWorker) // the worker counts and logs it
          else slot.child?.send({ t: 'placed', id: msg.id, where } satisfies ToWorker)
        })
        return
      }
      case 'room':
        if (msg.open) members[slot.index]?.opened(msg.room)
        else members[slot.index]?.closed(msg.room)
        return
      case 'load':
        if (slot.ready) directory?.setLoad(slot.index, msg.players, msg.rooms)
        return
      case 'publish':
        members[slot.index]?.publish(msg.rooms)
        return
      case 'list':
        if (directory) slot.child?.send({ t: 'listed', id: msg.id, rooms: directory.listRooms() } satisfies ToWorker)
        return
      case 'metrics':
        metricsWaits.get(msg.id)?.(msg.snapshot)
        return
      case 'monitor':
      case 'monitor-closed':
        monitorWaits.get(msg.id)?.(msg)
        return
      case 'beat': // lastBeat is set for every message
        return
    }
  }

  const onCrash = (slot: Slot, code: number | null, signal: NodeJS.Signals | null): void => {
    restarts++
    if (Date.now() - slot.startedAt > STABLE_MS) slot.crashes = 0
    slot.crashes++
    const delay = slot.crashes === 1 ? 0 : Math.min(RESTART_BASE_MS * 2 ** (slot.crashes - 2), RESTART_CAP_MS)
    const fields = { worker: slot.index, code, signal, crashes: slot.crashes, restartInMs: delay }
    if (slot.crashes >= CRASH_LOOP) log.error('worker keeps crashing; the other workers keep serving', fields)
    else log.warn('worker exited; replacing it', fields)
    slot.timer = setTimeout(() => {
      slot.timer = null
      if (stopping) return
      spawn(slot).then(
        () => log.info('worker replaced', { worker: slot.index, pid: slot.pid, directPort: slot.directPort }),
        (err: Error) => log.error('replacement worker failed to start', { worker: slot.index, error: err.message }),
      )
    }, delay)
  }

  const sweep = setInterval(() => directory?.sweep(Date.now()), 5000)
  sweep.unref()

  // Liveness: a ready worker silent for --worker-stall-timeout has a blocked event loop (a game's endless loop, a
  // decode bomb, SIGSTOP): it serves nobody, so kill it; its exit goes through the usual crash path (directory, restart).
  // Not while stopping: the drain timeout handles a worker slow to drain.
  const stallMs = config.workerStallTimeout * 1000
  const checkMs = heartbeatMs(config.workerStallTimeout)
  let lastCheck = performance.now()
  const liveness = setInterval(() => {
    const now = performance.now()
    // If the supervisor itself was blocked, heartbeats wait unread in the pipes (timers run before I/O): not the workers' fault.
    const selfStalled = now - lastCheck > 2 * checkMs + 100
    lastCheck = now
    if (stopping) return
    for (const s of slots) {
      if (!s.child || !s.ready || s.stalled) continue
      if (selfStalled) {
        s.lastBeat = Math.max(s.lastBeat, now - checkMs)
        continue
      }
      const silentMs = now - s.lastBeat
      if (silentMs < stallMs) continue
      s.stalled = true
      stalls++
      log.error('worker stalled: its event loop has not answered; killing it', { worker: s.index, pid: s.pid, silentSeconds: Math.round(silentMs / 100) / 10, workerStallTimeout: config.workerStallTimeout })
      s.child.kill('SIGKILL')
    }
  }, checkMs)
  liveness.unref()

  // The supervisor's own series; workers' series are merged in at scrape time.
  const own = new client.Registry()
  new client.Gauge({ name: 'tickwire_workers', help: 'Worker processes serving', registers: [own], collect() { this.set(slots.filter((s) => s.ready).length) } })
  new client.Gauge({ name: 'tickwire_workers_configured', help: 'Worker processes the supervisor keeps running (--workers)', registers: [own], collect() { this.set(n) } })
  counter(own, 'tickwire_worker_restarts_total', 'Workers replaced after they exited unexpectedly', () => restarts)
  counter(
    own,
    'tickwire_worker_stalls_total',
    'Workers killed because their event loop did not answer for --worker-stall-timeout (each is then replaced, and counted as a restart)',
    () => stalls,
  )
  // Set from the stop (SIGTERM) until the process exits: a drain lasts --drain-timeout at most, so a long 1 is a stuck one.
  flag(own, 'tickwire_draining', 'Whether the supervisor is draining its workers (1: stopping, SIGTERM or SIGINT seen; it exits within --drain-timeout)', () => stopping !== null)
  if (directory) {
    const d = directory
    new client.Gauge({ name: 'tickwire_directory_claims_pending', help: 'Room claims placed in the directory and not yet opened by their worker (budgeted per address and in all)', registers: [own], collect() { this.set(d.pending) } })
    new client.Gauge({ name: 'tickwire_directory_rooms', help: 'Rooms in the supervisor\'s room directory (open or being placed)', registers: [own], collect() { this.set(d.size) } })
  }
  const upGauge = new client.Gauge({ name: 'tickwire_worker_up', help: 'Whether the worker answered this scrape (1) or is busy, dead or restarting (0; its last figures are used)', labelNames: ['worker'], registers: [own] })

  const snapshotOf = (slot: Slot, answered: Set<number>): Promise<void> => {
    const child = slot.child
    if (!child || !slot.ready) return Promise.resolve()
    const id = nextId++
    const pid = slot.pid
    return new Promise<void>((resolve) => {
      const done = (snap: MetricsSnapshot | null) => {
        clearTimeout(timer)
        metricsWaits.delete(id)
        if (snap && slot.pid === pid) {
          merger.update(slot.index, pid, snap)
          answered.add(slot.index)
        }
        resolve()
      }
      const timer = setTimeout(() => done(null), SCRAPE_WAIT_MS)
      metricsWaits.set(id, done)
      child.send({ t: 'metrics', id } satisfies ToWorker)
    })
  }
  // Scrapes that overlap share one round of asking the workers (two Prometheus servers, or curl during a scrape).
  let inFlight: Promise<string> | null = null
  const render = (): Promise<string> => {
    inFlight ??= (async () => {
      const answered = new Set<number>()
      await Promise.all(slots.map((s) => snapshotOf(s, answered)))
      for (const s of slots) upGauge.set({ worker: String(s.index) }, answered.has(s.index) ? 1 : 0)
      return merger.render(own)
    })().finally(() => {
      inFlight = null
    })
    return inFlight
  }

  // The monitor page (--monitor): each ready worker asked over IPC, at most MONITOR_WAIT_MS each (monitor/sources.ts).
  const askMonitor = (slot: number, build: (id: number) => ToWorker): Promise<ToSupervisor | null> => {
    const s = slots[slot]
    const child = s?.child
    if (!s || !child || !s.ready) return Promise.resolve(null)
    const id = nextId++
    return new Promise((resolve) => {
      const done = (msg: ToSupervisor | null) => {
        clearTimeout(timer)
        monitorWaits.delete(id)
        resolve(msg)
      }
      const timer = setTimeout(() => done(null), MONITOR_WAIT_MS)
      monitorWaits.set(id, done)
      child.send(build(id))
    })
  }
  const monitor = config.monitor
    ? new ClusterSource({
        machine: nodeId,
        workers: n,
        shared: config.redisUrl !== '',
        ready: (slot) => slots[slot]?.ready === true,
        state: (slot, listing) => askMonitor(slot, (id) => ({ t: 'monitor', id, listing })).then((m) => (m?.t === 'monitor' ? { state: m.state, listing: m.listing } : null)),
        close: (slot, what) => askMonitor(slot, (id) => ({ t: 'monitor-close', id, ...what })).then((m) => (m?.t === 'monitor-closed' ? { room: m.room, closed: m.closed } : null)),
      })
    : null
  const extend = monitor ? mountMonitor({ source: monitor, token: config.monitorToken, registry: own, log }) : (monitorCounters(own), undefined)

  const killAll = () => {
    for (const s of slots) s.child?.kill('SIGKILL')
  }
  let endpoint: MetricsEndpoint | null = null
  try {
    // The metrics port first: a port in use fails before any worker starts.
    if (config.metricsPort !== 0) endpoint = await serveMetrics({ host: config.metricsHost, port: config.metricsPort, registry: own, render, log, token: config.metricsToken, cacheSeconds: config.metricsCache, ready: () => started && !stopping && slots.some((s) => s.ready), extend })
    const [first, ...rest] = slots
    await spawn(first as Slot) // one worker first: a port that cannot be bound fails once, clearly
    await Promise.all(rest.map(spawn))
  } catch (err) {
    stopping = Promise.resolve(1)
    clearInterval(sweep)
    clearInterval(liveness)
    killAll()
    endpoint?.close()
    throw err
  }
  started = true
  log.info('tickwire supervisor listening', {
    port,
    metricsPort: endpoint?.port ?? 0,
    workers: n,
    pids: slots.map((s) => s.pid),
    directPorts: slots.map((s) => s.directPort),
  })

  const stop = (): Promise<number> => {
    if (stopping) return stopping
    stopping = new Promise<number>((resolve) => {
      clearInterval(sweep)
      clearInterval(liveness)
      for (const s of slots) {
        if (s.timer) clearTimeout(s.timer)
        s.timer = null
      }
      const drainMs = Math.min(1000, (config.drainTimeout * 1000) / 2)
      const finish = (code: number) => {
        clearTimeout(deadline)
        endpoint?.close()
        resolve(code)
      }
      const deadline = setTimeout(() => {
        const left = slots.filter((s) => s.child !== null)
        log.error('workers did not exit within the drain timeout; killing them', { workers: left.map((s) => s.index), drainTimeout: config.drainTimeout })
        killAll()
        finish(1)
      }, config.drainTimeout * 1000)
      onAllExited = () => finish(0)
      for (const s of slots) s.child?.send({ t: 'drain', drainMs } satisfies ToWorker)
      if (slots.every((s) => s.child === null)) finish(0)
    })
    return stopping
  }

  return {
    port,
    metricsPort: endpoint?.port ?? 0,
    workers: () => slots.map((s) => ({ slot: s.index, pid: s.pid, directPort: s.ready ? s.directPort : 0 })),
    get restarts() {
      return restarts
    },
    stop,
  }
}

