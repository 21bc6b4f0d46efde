#!/usr/bin/env node
/**
 * The CLI: parses the command line, then runs one process (`start`, see
 * start.ts) or a supervisor with workers. Also the package root: it
 * re-exports the public API. Started by a supervisor, it runs as a worker.
 */
import { availableParallelism } from 'node:os'
import { WORKER_ENV } from './cluster/ipc.js'
import { startSupervisor, type Supervisor } from './cluster/supervisor.js'
import { runWorker } from './cluster/worker.js'
import { ConfigError, defaultConfig, helpText, parseConfig, type Config } from './config.js'
import { isEntry } from './entry.js'
import { createLogger, exitOnUncaught, resolveLogFormat, type LogFormat, type Logger } from './log.js'
import { loadGame } from './game-module.js'
import { start, type Tickwire } from './start.js'
/** Worker processes to run: `--workers`, or one per available core when it is 0. */
export function workerCount(config: Config): number {
  return config.workers !== 0 ? config.workers : availableParallelism()
}

/**
 * CLI entry: parse, start (a supervisor with workers, or one process with
 * `--workers 1`), stop gracefully on SIGINT/SIGTERM (exit 0). Exit 2 on bad
 * config, 1 on start failure. Started by a supervisor, it runs as a worker.
 */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (env[WORKER_ENV] !== undefined) {
    await runWorker()
    return
  }
  let config: Config
  try {
    const parsed = parseConfig(argv, env)
    if (parsed.help) {
      process.stdout.write(helpText())
      return
    }
    // The format is decided once, here, from this process's stderr: workers (whose stderr is ours) get it resolved.
    config = Object.freeze({ ...parsed.config, logFormat: resolveLogFormat(parsed.config.logFormat) })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tickwire: ${err.message}\n`)
      process.exitCode = 2
      return
    }
    throw err
  }
  const log = createLogger(config.logLevel, { format: config.logFormat as LogFormat })
  exitOnUncaught(log, config.logFormat as LogFormat)
  const workers = workerCount(config)
  // The room directory on Redis lives in the workers of a supervisor, so --redis-url takes one even with --workers 1.
  if (workers > 1 || config.redisUrl !== '') return supervise(config, workers, log)
  let tw: Tickwire
  try {
    tw = await start(config, { log, game: await loadGame(config.game), signals: false }) // handled below, with the drain timeout
  } catch (err) {
    log.error('tickwire failed to start', { error: (err as Error).message })
    process.exitCode = err instanceof ConfigError ? 2 : 1
    return
  }
  let stopping = false
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal: sig })
      process.exit(1)
    }
    stopping = true
    log.info('stopping', { signal: sig, players: tw.rooms.players })
    setTimeout(() => {
      log.error('not stopped within the drain timeout; exiting', { drainTimeout: config.drainTimeout })
      process.exit(1)
    }, config.drainTimeout * 1000).unref()
    tw.stop(Math.min(1000, (config.drainTimeout * 1000) / 2)).then(
      // The close frames are written to the kernel by now; a moment for good measure, then leave.
      () => setTimeout(() => process.exit(process.exitCode ?? 0), 20),
      (err: Error) => {
        log.error('stop failed', { error: err.message })
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

async function supervise(config: Config, workers: number, log: Logger): Promise<void> {
  let sup: Supervisor | null = null
  let stopping = false
  const stop = () => {
    void (sup as Supervisor).stop().then((code) => {
      log.info('stopped', { code })
      process.exit(code)
    })
  }
  // Installed before the workers start: a SIGTERM during start-up drains them once they are up.
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      log.warn('second signal: killing workers and exiting now', { signal: sig })
      for (const w of sup?.workers() ?? []) if (w.pid) process.kill(w.pid, 'SIGKILL')
      process.exit(1)
    }
    stopping = true
    log.info('stopping: draining workers', { signal: sig, drainTimeout: config.drainTimeout })
    if (sup) stop()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    sup = await startSupervisor(config, { workers, log })
  } catch (err) {
    log.error('tickwire failed to start', { error: (err as Error).message })
    process.exitCode = err instanceof ConfigError ? 2 : 1
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    return
  }
  if (stopping) stop()
}

export { defaultConfig }
export { start, type StartOptions, type Tickwire } from './start.js'
export { startSupervisor, type Supervisor, type SupervisorOptions, type WorkerInfo } from './cluster/supervisor.js'
export { runWorker, type WorkerOptions } from './cluster/worker.js'
export { ConfigError, parseConfig, type Config } from './config.js'
export { arena } from './games/arena.js'
export { createLogger, withFields, type Logger, type LoggerOptions, type LogFormat, type LogLevel } from './log.js'
export type { Game, GameRoom, JoinOptions, JoinRefused, PlayerIdentity, RoomContext, RoomLayout, RoomMeta } from './sim/game.js'
export type { DataOf, FieldSpec, InputSpec, MessageData, MessageSpec, Value, ValueSpec } from '../proto/index.js'
export type { Grid } from './sim/grid.js'
export type { World } from './sim/world.js'


if (isEntry(import.meta.url)) {
  main(process.argv.slice(2), process.env).catch((err: Error) => {
    process.stderr.write(`tickwire: ${err.stack ?? err.message}\n`)
    process.exit(1)
  })
}
