/**
 * The load generator's bot for the Colyseus peer (./server.mjs), on the
 * official SDK (@colyseus/sdk 0.17): its matchmaking, its Room, its schema
 * decoder. Every bot decodes every patch (the SDK always does, and the
 * applied seq lives in the state).
 *
 * One piece is ours: the room's WebSocket. The SDK's transport opens
 * `new WebSocket(url, { headers, protocols })` (`ws` in Node 20, which has no
 * global WebSocket) with no way to pass a source address, so each bot's Room
 * gets `BoundTransport`, the SDK's transport (same calls, same events) plus
 * `localAddress`, and the raw message sizes as received (the SDK exposes no
 * byte counts). The matchmaking HTTP request (one short POST per join) still
 * goes through `fetch` from the default source address.
 *
 * Payload bytes: ROOM_STATE (the full state on join) and ROOM_STATE_PATCH
 * messages are states; JOIN_ROOM, ROOM_DATA, PING, ... are other.
 */
import WebSocket from 'ws'
import { Client, Protocol, Room } from '@colyseus/sdk'
import { ArenaState, ROOM_TYPE } from './schema.mjs'

const KIND_AVATAR = 0

/** The SDK's WebSocketTransport with a source address and a hook on every raw message and on close. */
class BoundTransport {
  /**
   * @param {{ onopen?: Function, onmessage?: Function, onclose?: Function, onerror?: Function }} events the SDK Connection's event slots
   * @param {{ localAddress: string, message(bytes: number, code: number): void, failed(err: Error): void, closed(code: number): void }} hooks
   */
  constructor(events, hooks) {
    this.events = events
    this.hooks = hooks
    /** @type {WebSocket | undefined} */
    this.ws = undefined
    this.protocols = undefined
  }

  connect(url, headers) {
    const ws = new WebSocket(url, { headers, localAddress: this.hooks.localAddress, perMessageDeflate: false })
    this.ws = ws
    ws.binaryType = 'arraybuffer'
    ws.onopen = (ev) => this.events.onopen?.(ev)
    ws.onmessage = (ev) => {
      const data = ev.data
      // The SDK decodes first, so the hook sees the updated state. A message
      // the SDK cannot decode is reported, not thrown into the socket's stream.
      try {
        this.events.onmessage?.(ev)
        this.hooks.message(data.byteLength, new Uint8Array(data, 0, 1)[0])
      } catch (err) {
        this.hooks.failed(err instanceof Error ? err : new Error(String(err)))
      }
    }
    ws.onclose = (ev) => {
      this.events.onclose?.(ev)
      this.hooks.closed(ev.code)
    }
    ws.onerror = (ev) => this.events.onerror?.(ev)
  }

  send(data) {
    this.ws?.send(data)
  }

  sendUnreliable() {
    throw new Error('the WebSocket transport has no unreliable messages')
  }

  close(code, reason) {
    this.ws?.close(code, reason)
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN
  }
}

/** The SDK's Room; each Connection it creates gets a BoundTransport. */
class BotRoom extends Room {
  constructor(name, rootSchema, hooks) {
    super(name, rootSchema)
    let connection
    Object.defineProperty(this, 'connection', {
      configurable: true,
      enumerable: true,
      get: () => connection,
      set: (c) => {
        c.transport = new BoundTransport(c.events, hooks)
        connection = c
      },
    })
  }
}

/** The SDK's Client, creating BotRooms. One per bot (it is a small object: settings and an HTTP helper). */
class BotClient extends Client {
  constructor(endpoint, hooks) {
    super(endpoint)
    this.hooks = hooks
  }

  createRoom(roomName, rootSchema) {
    const room = new BotRoom(roomName, rootSchema, this.hooks)
    this.hooks.room = room
    return room
  }
}

/**
 * Checks the decoded state: own player and avatar present, every position
 * finite and inside the world. Throws naming the first problem.
 */
export function checkState(state, sessionId) {
  const me = state.players.get(sessionId)
  if (me === undefined) throw new Error(`own player ${sessionId} missing from the state`)
  const own = state.entities.get(String(me.entity))
  if (own === undefined) throw new Error(`own entity ${me.entity} missing from the state`)
  if (own.kind !== KIND_AVATAR) throw new Error(`own entity ${me.entity} has kind ${own.kind}, not an avatar`)
  const { width, height } = state
  if (!(width > 0 && height > 0)) throw new Error(`world size ${width} x ${height}`)
  state.entities.forEach((e, id) => {
    if (!Number.isFinite(e.x) || !Number.isFinite(e.y)) throw new Error(`entity ${id}: non-finite position (${e.x}, ${e.y})`)
    if (e.x < 0 || e.x > width || e.y < 0 || e.y > height) throw new Error(`entity ${id}: (${e.x}, ${e.y}) outside the ${width} x ${height} world`)
  })
}

/** @type {import('../../load/adapter.js').Adapter} */
export const colyseusAdapter = {
  name: 'colyseus',
  /**
   * @param {import('../../load/adapter.js').ConnectOptions} opts `url`: the server's ws:// address (its path is ignored)
   * @param {import('../../load/adapter.js').BotEvents} events
   */
  async connect(opts, events) {
    const u = new URL(opts.url)
    let started = false
    let closedByUs = false
    let lastSeq = 0
    /** Settles the wait for the first state (once). */
    let settle = () => {}
    const firstState = new Promise((resolve, reject) => {
      settle = (err) => {
        settle = () => {}
        if (err) reject(err)
        else resolve()
      }
    })
    const hooks = {
      localAddress: opts.localAddress,
      /** Set by BotClient.createRoom, before the socket opens. */
      room: null,
      message(bytes, code) {
        if (code !== Protocol.ROOM_STATE && code !== Protocol.ROOM_STATE_PATCH) {
          events.other(bytes)
          return
        }
        const room = hooks.room
        const state = room.state
        const me = state.players.get(room.sessionId)
        const seq = me === undefined ? 0 : me.seq
        if (seq < lastSeq) events.error(new Error(`seq went backwards: ${lastSeq}->${seq}`))
        lastSeq = seq
        if (opts.check) {
          try {
            checkState(state, room.sessionId)
          } catch (err) {
            events.error(err)
          }
        }
        events.state(bytes, lastSeq)
        if (!started) {
          started = true
          settle()
        }
      },
      failed(err) {
        events.error(err)
      },
      closed(code) {
        if (!started) settle(new Error(`colyseus: closed before the first state: ${code}`))
        else if (!closedByUs) events.close(code)
      },
    }
    firstState.catch(() => {}) // awaited below, unless joinOrCreate fails first
    const client = new BotClient(`http://${u.host}`, hooks)
    const room = await client.joinOrCreate(ROOM_TYPE, { room: opts.room ?? '', name: opts.name }, ArenaState)
    room.reconnection.enabled = false // a drop is reported, not hidden behind a reconnect
    const socket = () => room.connection.transport.ws?._socket
    /** @type {import('../../load/adapter.js').Bot} */
    const bot = {
      input(seq, mx, my) {
        if (!room.connection.isOpen) return
        room.send('input', { seq, mx, my })
        events.sent?.(false)
      },
      pause: () => socket()?.pause(),
      resume: () => socket()?.resume(),
      close() {
        closedByUs = true
        room.leave(true).catch(() => {})
      },
    }
    // joinOrCreate resolves on JOIN_ROOM; the full state follows in the next message.
    await firstState
    return bot
  },
}
