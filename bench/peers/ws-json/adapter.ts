/**
 * The load generator's bot for the ws-json peer (./server.ts). Every bot
 * reads each state's tick and its own applied seq straight from the bytes
 * (the frame starts with `{"type":"state","tick":`, and the only `"<player id>":`
 * in it is the bot's entry in `seqs`), so most bots never JSON.parse a
 * frame; bots with `check` parse every frame and check it all.
 */
import { WebSocket } from 'ws'
import type { Adapter, Bot, BotEvents, ConnectOptions } from '../../load/adapter.js'
import { STATE_PREFIX, type State, type Welcome } from './protocol.js'

const PREFIX = Buffer.from(STATE_PREFIX)
const KIND_AVATAR = 0
const COLON = 0x3a
const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39

/** The integer at `buf[at]` (digits, an optional leading minus), or NaN. */
export function readInt(buf: Buffer, at: number): number {
  let i = at
  let sign = 1
  if (buf[i] === MINUS) {
    sign = -1
    i++
  }
  let v = 0
  const start = i
  for (; i < buf.length; i++) {
    const c = buf[i] as number
    if (c < ZERO || c > NINE) break
    v = v * 10 + (c - ZERO)
  }
  return i === start ? NaN : sign * v
}

/** True when `buf` starts with `prefix`. */
function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
}

/** Checks one decoded state against what the bot knows; throws naming the first problem. */
export function checkState(s: State, welcome: Welcome): void {
  if (s.type !== 'state' || !Array.isArray(s.entities) || typeof s.seqs !== 'object' || s.seqs === null) throw new Error('state frame without tick, seqs or entities')
  let own = false
  for (const e of s.entities) {
    if (!Number.isFinite(e.x) || !Number.isFinite(e.y)) throw new Error(`entity ${e.id}: non-finite position (${e.x}, ${e.y}) at tick ${s.tick}`)
    if (e.x < 0 || e.x > welcome.width || e.y < 0 || e.y > welcome.height) {
      throw new Error(`entity ${e.id}: (${e.x}, ${e.y}) outside the ${welcome.width} x ${welcome.height} world at tick ${s.tick}`)
    }
    if (e.id === welcome.entity) {
      if (e.kind !== KIND_AVATAR) throw new Error(`own entity ${e.id} has kind ${e.kind}, not an avatar, at tick ${s.tick}`)
      own = true
    }
  }
  if (!own) throw new Error(`own entity ${welcome.entity} missing at tick ${s.tick}`)
  if (!Number.isInteger(s.seqs[welcome.player])) throw new Error(`own seq missing at tick ${s.tick}`)
}

export const wsJsonAdapter: Adapter = {
  name: 'ws-json',
  connect(opts: ConnectOptions, events: BotEvents): Promise<Bot> {
    const u = new URL(opts.url)
    if (opts.room !== null) u.searchParams.set('room', opts.room)
    u.searchParams.set('name', opts.name)
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(u, { localAddress: opts.localAddress, perMessageDeflate: false })
      ws.binaryType = 'nodebuffer'
      let welcome: Welcome | null = null
      /** `"<player id>":` once the welcome told the id. */
      let needle: Buffer | null = null
      let lastTick = 0
      let lastSeq = 0
      let started = false
      let closedByUs = false
      const socket = (): { pause(): void; resume(): void } | undefined => (ws as unknown as { _socket?: { pause(): void; resume(): void } })._socket
      const bot: Bot = {
        input(seq, mx, my) {
          if (ws.readyState !== WebSocket.OPEN) return
          ws.send(`{"type":"input","seq":${seq},"mx":${mx},"my":${my}}`)
          events.sent?.(false)
        },
        pause: () => socket()?.pause(),
        resume: () => socket()?.resume(),
        close() {
          closedByUs = true
          ws.close()
        },
      }
      ws.on('error', (err) => {
        if (!started) reject(err)
      })
      ws.on('message', (data: Buffer, isBinary) => {
        if (isBinary || !startsWith(data, PREFIX)) {
          events.other(data.length)
          if (welcome !== null) return
          try {
            const m = JSON.parse(data.toString()) as Welcome
            if (m.type !== 'welcome' || !Number.isInteger(m.player) || !Number.isInteger(m.entity)) throw new Error(`expected a welcome, got ${data.toString().slice(0, 80)}`)
            welcome = m
            needle = Buffer.from(`"${m.player}":`)
          } catch (err) {
            events.error(err as Error)
          }
          return
        }
        if (welcome === null || needle === null) {
          events.error(new Error('state before the welcome'))
          return
        }
        const tick = readInt(data, PREFIX.length)
        const at = data.indexOf(needle, PREFIX.length)
        const seq = at < 0 ? NaN : readInt(data, at + needle.length)
        if (Number.isNaN(tick) || Number.isNaN(seq)) events.error(new Error(`state without a tick or this player's seq: ${data.subarray(0, 80).toString()}`))
        else {
          if (tick <= lastTick || seq < lastSeq) events.error(new Error(`tick or seq went backwards: ${lastTick}->${tick}, ${lastSeq}->${seq}`))
          lastTick = tick
          lastSeq = seq
        }
        if (opts.check) {
          try {
            const s = JSON.parse(data.toString()) as State
            checkState(s, welcome)
            if (s.tick !== tick || s.seqs[welcome.player] !== seq) throw new Error(`bytes say tick ${tick} seq ${seq}, JSON says tick ${s.tick} seq ${s.seqs[welcome.player]}`)
          } catch (err) {
            events.error(err as Error)
          }
        }
        events.state(data.length, lastSeq)
        if (!started) {
          started = true
          resolve(bot)
        }
      })
      ws.on('close', (code, reason) => {
        if (!started) {
          reject(new Error(`ws-json: closed before the first state: ${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}`))
          return
        }
        if (!closedByUs) events.close(code)
      })
    })
  },
}
