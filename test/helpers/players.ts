/**
 * Players and machines for the many-machines tests: SDK clients through a
 * load balancer (trusting its test certificate), watched for reconnects and
 * gaps between frames, and checks that a room's players are seated together.
 */
import { WebSocket as WsSocket } from 'ws'
import { TickwireClient, type ConnectOptions } from '../../src/client/index.js'
import type { Machine } from './machines.js'
import { parseSamples, sleep } from './server.js'

/** A player through the balancer, with what the test watches: reconnects, and the wall-clock gaps between STATE frames. */
export interface Player {
  readonly c: TickwireClient
  readonly room: string
  readonly codes: number[]
  rejoins: number
  resumes: number
  lastFrameAt: number
  maxGapMs: number
  maxTickGap: number
  lastTick: number
}

/** `ws` trusting the balancer's self-signed certificate (the SDK's WebSocket option). */
export class TrustedWs extends WsSocket {
  static ca = ''
  constructor(url: string, protocols?: string[]) {
    super(url, protocols, { ca: TrustedWs.ca })
  }
}

export async function join(url: string, room: string | undefined, name: string, players: Player[], more: ConnectOptions = {}): Promise<Player> {
  const c = await TickwireClient.connect(url, { room, name, timeoutMs: 10_000, maxReconnects: 30, WebSocket: TrustedWs, ...more })
  const p: Player = { c, room: c.welcome.roomId, codes: [], rejoins: 0, resumes: 0, lastFrameAt: performance.now(), maxGapMs: 0, maxTickGap: 0, lastTick: 0 }
  c.on('state', (frame) => {
    const now = performance.now()
    p.maxGapMs = Math.max(p.maxGapMs, now - p.lastFrameAt)
    if (p.lastTick !== 0) p.maxTickGap = Math.max(p.maxTickGap, frame.tick - p.lastTick)
    p.lastTick = frame.tick
    p.lastFrameAt = now
  })
  c.on('reconnecting', (code) => p.codes.push(code))
  c.on('rejoined', () => p.rejoins++)
  c.on('resumed', () => p.resumes++)
  players.push(p)
  return p
}

/** Starts watching for gaps afresh (joins and set-up are not what is measured). */
export function resetGaps(ps: readonly Player[]): void {
  const now = performance.now()
  for (const p of ps) {
    p.maxGapMs = 0
    p.maxTickGap = 0
    p.lastFrameAt = now
    p.lastTick = 0
  }
}

/** The players the room's PONG reports, asked afresh. */
export async function roomPlayers(c: TickwireClient): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      c.off('pong', on)
      reject(new Error('no PONG in 5 s'))
    }, 5000)
    const on = (_rtt: number, n: number) => {
      clearTimeout(timer)
      c.off('pong', on)
      resolve(n)
    }
    c.on('pong', on)
    c.ping()
  })
}

/** True when the players of `room` are seated together: each one's PONG counts them all, and each sees the others' entities. */
export async function together(ps: readonly Player[]): Promise<boolean> {
  for (const p of ps) {
    if (p.c.reconnecting || p.c.closed) return false
    if ((await roomPlayers(p.c)) !== ps.length) return false
    for (const q of ps) if (!p.c.table.entities.has(q.c.welcome.entityId)) return false
  }
  return true
}

export async function waitTogether(ps: readonly Player[], ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await together(ps).catch(() => false)) return
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(200)
  }
}

export function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j] as T, xs[i] as T]
  }
  return xs
}

/** A machine's /metrics, parsed. */
export async function scrape(m: Machine): Promise<Map<string, number>> {
  const res = await fetch(`http://${m.opts.host}:${m.opts.metricsPort}/metrics`)
  return parseSamples(await res.text())
}

