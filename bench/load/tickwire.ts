/**
 * The load generator's tickwire bot: a lean client that follows
 * proto/PROTOCOL.md over the raw WebSocket client (./rawws.ts). Every bot
 * reads each STATE header (tick, inputSeq) without decoding the body, and acks
 * as the SDK does: in its inputs, plus a standalone ACK every
 * ackEvery(ackWindow) frames; bots with `check` also apply every frame to an
 * EntityTable (the SDK's), which throws on any frame that does not fit their copy.
 */
import { CloseCode, MsgType, type InputSpec, type MessageSpec, PROTOCOL_VERSION, ackEvery, decodeServerMessage, encodeClientMessage, encodeInput, type Redirect, type StateFrame } from '../../proto/index.js'
import { redirectTarget } from '../../src/client/index.js'
import { EntityTable } from '../../src/client/table.js'
import type { Adapter, Bot, BotEvents, ConnectOptions } from './adapter.js'
import { openSocket, type BotSocket } from './rawws.js'

/** Reads the STATE header `[2, tick, baseAge, inputSeq, ...]` without decoding the body. Null if not a STATE. */
export function stateHeader(b: Uint8Array): { tick: number; inputSeq: number } | null {
  let o = 0
  const h = b[o++] as number
  if (h >= 0x90 && h <= 0x9f) {
    // fixarray
  } else if (h === 0xdc) o += 2
  else if (h === 0xdd) o += 4
  else return null
  const int = (): number => {
    const x = b[o++] as number
    if (x <= 0x7f) return x
    switch (x) {
      case 0xcc:
        return b[o++] as number
      case 0xcd:
        o += 2
        return ((b[o - 2] as number) << 8) | (b[o - 1] as number)
      case 0xce:
        o += 4
        return ((b[o - 4] as number) * 2 ** 24 + ((b[o - 3] as number) << 16)) + (((b[o - 2] as number) << 8) | (b[o - 1] as number))
      default:
        return -1
    }
  }
  if (int() !== MsgType.STATE) return null
  const tick = int()
  int() // baseAge
  const inputSeq = int()
  return tick < 0 || inputSeq < 0 ? null : { tick, inputSeq }
}

/** A bot's ack state, swept by the one shared timer below. */
interface AckState {
  unacked: number
  lastFrameAt: number
  quietMs: number
  ack(): void
}

const acking = new Set<AckState>()
let sweeper: NodeJS.Timeout | null = null
/**
 * One timer per bot process, not one per bot: acks a bot's unacked frames once
 * ~3 tick intervals passed with no new frame, so a server that resumes a paused
 * client only when everything is acked cannot stall it with a partial window.
 */
function watch(s: AckState): void {
  acking.add(s)
  if (sweeper) return
  sweeper = setInterval(() => {
    const now = performance.now()
    for (const a of acking) if (a.unacked > 0 && now - a.lastFrameAt >= a.quietMs) a.ack()
  }, 25)
  sweeper.unref()
}
function unwatch(s: AckState): void {
  acking.delete(s)
  if (acking.size === 0 && sweeper) {
    clearInterval(sweeper)
    sweeper = null
  }
}

export const tickwireAdapter: Adapter = {
  name: 'tickwire',
  connect(opts: ConnectOptions, events: BotEvents): Promise<Bot> {
    const u = new URL(opts.url)
    if (opts.room !== null) u.searchParams.set('room', opts.room)
    u.searchParams.set('name', opts.name)
    // Protocol 3: behind a load balancer (--public-url) redirects name the public URL with a route.
    u.searchParams.set('v', String(PROTOCOL_VERSION))
    return connectAt(u.toString(), opts, events, 0)
  },
}

function connectAt(url: string, opts: ConnectOptions, events: BotEvents, hops: number): Promise<Bot> {
  return new Promise((resolve, reject) => {
    let ws: BotSocket | null = null
    let table: EntityTable | null = null
    let entity = -1
    let lastTick = 0
    let lastSeq = 0
    let started = false
    let closedByUs = false
    let redirect: Redirect | null = null
    // ackEvery(ackWindow) frames per standalone ACK; 1 (every frame) until a protocol 3 WELCOME says otherwise.
    let every = 1
    // One ACK buffer per bot, rewritten in place: the tick is its last field (a uint32 in msgpack).
    const ackBuf = new Uint8Array(ACK_BYTES)
    const inputBuf = new Uint8Array(STICK_INPUT_BYTES)
    const acks: AckState = {
      unacked: 0,
      lastFrameAt: 0,
      quietMs: 100,
      ack() {
        acks.unacked = 0
        if (!ws?.open) return
        ws.send(writeAck(ackBuf, lastTick))
        events.sent?.(true)
      },
    }
    const sendInput = (seq: number, values: readonly number[]): void => {
      if (!ws?.open) return
      ws.send(encodeInput(seq, lastTick, values))
      acks.unacked = 0 // the INPUT carries lastTick as its ack
      events.sent?.(false)
    }
    let schema: readonly InputSpec[] | undefined
    let messages: readonly MessageSpec[] | undefined
    const bot: Bot = {
      input(seq, mx, my) {
        // Sent at once (as a key press would be), carrying the newest ack; written into the bot's own buffer.
        if (!ws?.open) return
        ws.send(writeStickInput(inputBuf, seq, lastTick, mx, my))
        acks.unacked = 0
        events.sent?.(false)
      },
      get schema() {
        return schema
      },
      inputValues(seq, values) {
        sendInput(seq, values)
      },
      get messages() {
        return messages
      },
      message(kind, values) {
        if (!ws?.open) return
        ws.send(encodeClientMessage(kind, values))
        events.sent?.(false)
      },
      pause: () => ws?.pause(),
      resume: () => ws?.resume(),
      close() {
        closedByUs = true
        ws?.close()
      },
    }
    const onMessage = (bytes: Uint8Array): void => {
      const head = stateHeader(bytes)
      if (head === null) {
        events.other(bytes.byteLength)
        try {
          const m = decodeServerMessage(bytes)
          if (m.type === MsgType.WELCOME) {
            entity = m.entityId
            schema = m.input
            messages = m.clientMessages
            every = ackEvery(m.ackWindow ?? 0)
            acks.quietMs = 3000 / m.tickHz
            if (opts.check) table = new EntityTable(m.fields, m.historyTicks + 2)
          } else if (m.type === MsgType.REDIRECT) redirect = m
        } catch (err) {
          events.error(err as Error)
        }
        return
      }
      if (table) {
        try {
          const frame = decodeServerMessage(bytes) as StateFrame & { type: 2 }
          table.apply(frame)
          if (!table.entities.has(entity)) throw new Error(`own entity ${entity} missing at tick ${frame.tick}`)
          for (const v of table.entities.values()) for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new Error('non-finite value')
        } catch (err) {
          events.error(err as Error)
        }
      }
      if (head.tick <= lastTick || head.inputSeq < lastSeq) events.error(new Error(`tick or inputSeq went backwards: ${lastTick}->${head.tick}, ${lastSeq}->${head.inputSeq}`))
      lastTick = head.tick
      lastSeq = head.inputSeq
      events.state(bytes.byteLength, head.inputSeq)
      acks.lastFrameAt = performance.now()
      if (++acks.unacked >= every) acks.ack()
      if (!started) {
        started = true
        watch(acks)
        resolve(bot)
      }
    }
    const onClose = (code: number): void => {
      unwatch(acks)
      if (!started) {
        if (code === CloseCode.REDIRECT && redirect && hops < 3) {
          let next: string
          try {
            next = redirectTarget(url, redirect)
          } catch (err) {
            reject(err as Error)
            return
          }
          connectAt(next, opts, events, hops + 1).then(resolve, reject)
        } else reject(new Error(`closed before the first state: ${code}`))
        return
      }
      if (!closedByUs) events.close(code)
    }
    openSocket(url, { localAddress: opts.localAddress }, { message: onMessage, close: onClose }).then((s) => {
      ws = s
    }, reject)
  })
}

/** A stick INPUT `[1, seq, ackTick, mx, my]`: fixarray(5), 1, two uint32s, two int8s. */
const STICK_INPUT_BYTES = 16

/** Writes INPUT(seq, ackTick, [mx, my]) into `buf` in one fixed layout (mx, my in -128..127), valid msgpack for any values. */
export function writeStickInput(buf: Uint8Array, seq: number, ackTick: number, mx: number, my: number): Uint8Array {
  buf[0] = 0x95
  buf[1] = MsgType.INPUT
  buf[2] = 0xce
  put32(buf, 3, seq)
  buf[7] = 0xce
  put32(buf, 8, ackTick)
  buf[12] = 0xd0
  buf[13] = mx & 0xff
  buf[14] = 0xd0
  buf[15] = my & 0xff
  return buf
}

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff
  b[at + 1] = (v >>> 16) & 0xff
  b[at + 2] = (v >>> 8) & 0xff
  b[at + 3] = v & 0xff
}

/** An ACK is `[3, tick]`: fixarray(2), positive fixint 3, then the tick as msgpack uint32 (0xce + 4 bytes). */
const ACK_BYTES = 7

/** Writes ACK(tick) into `buf` with the tick always as uint32, a valid msgpack encoding of any tick (the spec allows any int width). */
export function writeAck(buf: Uint8Array, tick: number): Uint8Array {
  buf[0] = 0x92
  buf[1] = MsgType.ACK
  buf[2] = 0xce
  put32(buf, 3, tick)
  return buf
}
