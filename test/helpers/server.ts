/** Test helpers: a real tickwire on port 0 in this process, and small waiting utilities. */
import { createServer } from 'node:net'
import { defaultConfig, type Config } from '../../src/config.js'
import type { TickwireClient } from '../../src/client/index.js'
import { createLogger } from '../../src/log.js'
import { start, type StartOptions, type Tickwire } from '../../src/main.js'

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

/** A port that was free a moment ago (for child processes that need a fixed one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address()
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

/** Parses Prometheus text into `name{labels}` -> value (samples only). */
export function parseSamples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)/.exec(line)
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`)
    out.set(m[1] as string, Number(m[2]))
  }
  return out
}

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
