/** Test helpers: a real tickwire on port 0 in this process, and small waiting utilities. */
import { parseMetrics } from '../../bench/load/scrape.js'
import { defaultConfig, type Config } from '../../src/config.js'
import type { TickwireClient } from '../../src/client/index.js'
import { createLogger } from '../../src/log.js'
import { start, type StartOptions, type Tickwire } from '../../src/main.js'
export { freePort } from '../../src/net/ports.js'

export const silent = createLogger('error', () => {})

/** Starts tickwire on an ephemeral port with metrics disabled unless asked. */
export async function startTest(overrides: Partial<Config> = {}, opts: StartOptions = {}): Promise<Tickwire & { url: string }> {
  const config = defaultConfig({ port: 0, metricsPort: 0, host: '127.0.0.1', seed: 42, ...overrides })
  const tw = await start(config, { log: silent, ...opts })
  return Object.assign(tw, { url: `ws://127.0.0.1:${tw.port}/play` })
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Polls `cond` every 10 ms until true; rejects after `ms` with `what`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}


/** Parses Prometheus text into `name{labels}` -> value (samples only): the load generator's parser. */
export const parseSamples = parseMetrics

/** One sample's value from Prometheus text; throws if absent. */
export function sample(text: string, key: string): number {
  const v = parseSamples(text).get(key)
  if (v === undefined) throw new Error(`no sample ${key}`)
  return v
}

/** Cuts an SDK client's TCP connection without a close frame, as a network failure would (Node, `ws`). */
export function dropTcp(c: TickwireClient): void {
  ;(c.socket as { _socket: { destroy(): void } })._socket.destroy()
}
