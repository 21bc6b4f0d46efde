/**
 * Client frames after the upgrade: the per-socket rate limit, the strict
 * decode (proto/strict.ts, no allocation), and what each message does to the
 * seat (INPUT, ACK, PING, CLIENT_MESSAGE: checked against the game's
 * declaration, rate-limited on its own, queued for the room's next tick). Any bad frame closes its own socket with a
 * documented code and is counted; it never reaches another player.
 */
import { ClientError, MsgType, encodePong, parseClientMessage, parseGameMessage, type CloseCode, type InputSpec, type MessageSpec } from '../../proto/index.js'
import type { EventLog } from '../log.js'
import { DisconnectReason, RejectReason, type Stats } from '../metrics/stats.js'
import { AckResult } from '../replicate/replicator.js'
import { closeConn, type Conn } from './conn.js'
import type { WebSocket } from './uws.js'

export interface InputOptions {
  readonly inputRate: number
  readonly inputBurst: number
  readonly messageRate: number
  readonly messageBurst: number
  readonly softBackpressure: number
}

export class InputHandler {
  readonly #opts: InputOptions
  readonly #stats: Stats
  readonly #events: EventLog
  readonly #input: readonly InputSpec[]
  readonly #kinds: readonly MessageSpec[]

  constructor(opts: InputOptions, input: readonly InputSpec[], kinds: readonly MessageSpec[], stats: Stats, events: EventLog) {
    this.#opts = opts
    this.#input = input
    this.#kinds = kinds
    this.#stats = stats
    this.#events = events
  }

  /** One client frame (uWS's message handler). */
  message(ws: WebSocket<Conn>, message: ArrayBuffer, isBinary: boolean): void {
    const conn = ws.getUserData()
    if (conn.closing) return
    const stats = this.#stats
    stats.messagesReceived++
    stats.bytesReceived += message.byteLength
    if (!isBinary) return this.reject(conn, RejectReason.TEXT_FRAME, 'TEXT_FRAME', DisconnectReason.TEXT_FRAME)
    // Token bucket: refill by elapsed time, one token per message.
    const now = performance.now()
    conn.tokens = Math.min(this.#opts.inputBurst, conn.tokens + ((now - conn.lastRefill) / 1000) * this.#opts.inputRate)
    conn.lastRefill = now
    if (conn.tokens < 1) return this.reject(conn, RejectReason.RATE_LIMITED, 'RATE_LIMITED', DisconnectReason.RATE_LIMITED)
    conn.tokens -= 1
    // Decoded synchronously: uWS frees `message` when this callback returns.
    const msg = conn.msg
    const err = parseClientMessage(new Uint8Array(message), this.#input, msg)
    if (err !== null) {
      if (err === ClientError.MALFORMED) return this.reject(conn, RejectReason.MALFORMED, 'BAD_MESSAGE', DisconnectReason.BAD_MESSAGE)
      return this.reject(conn, err === ClientError.RANGE ? RejectReason.RANGE : RejectReason.TYPE, 'BAD_INPUT', DisconnectReason.BAD_INPUT)
    }
    const seat = conn.seat
    const viewer = conn.viewer
    if (msg.type === MsgType.CLIENT_MESSAGE) return this.#gameMessage(conn, message)
    if (!seat || !viewer) return
    switch (msg.type) {
      case MsgType.INPUT:
        if (msg.seq <= conn.lastSeq) return this.reject(conn, RejectReason.SEQUENCE, 'BAD_INPUT', DisconnectReason.BAD_INPUT)
        if (viewer.ack(msg.ackTick) !== AckResult.OK) return this.reject(conn, RejectReason.BAD_ACK, 'BAD_ACK', DisconnectReason.BAD_ACK)
        conn.lastSeq = msg.seq
        seat.input.set(msg.values)
        seat.inputSeq = msg.seq
        stats.inputsApplied++
        return
      case MsgType.ACK:
        if (viewer.ack(msg.ackTick) !== AckResult.OK) return this.reject(conn, RejectReason.BAD_ACK, 'BAD_ACK', DisconnectReason.BAD_ACK)
        return
      case MsgType.PING: {
        // A client that does not read gets no pongs either: nothing grows without bound.
        if (ws.getBufferedAmount() > this.#opts.softBackpressure) return
        const pong = encodePong(msg.clientTime, seat.room.seats.length)
        ws.send(pong, true)
        stats.messagesSent++
        stats.bytesSent += pong.byteLength
        return
      }
    }
  }

  /**
   * A CLIENT_MESSAGE: its own token bucket (a message costs the game more
   * than an input), then the strict read against the declared kinds, then
   * the room's inbox. Protocol 2 connections have no messages: BAD_MESSAGE.
   */
  #gameMessage(conn: Conn, message: ArrayBuffer): void {
    if (conn.version < 3 || this.#kinds.length === 0) return this.reject(conn, RejectReason.MALFORMED, 'BAD_MESSAGE', DisconnectReason.BAD_MESSAGE)
    const now = performance.now()
    conn.msgTokens = Math.min(this.#opts.messageBurst, conn.msgTokens + ((now - conn.msgRefill) / 1000) * this.#opts.messageRate)
    conn.msgRefill = now
    if (conn.msgTokens < 1) return this.reject(conn, RejectReason.MESSAGE_RATE, 'RATE_LIMITED', DisconnectReason.RATE_LIMITED)
    conn.msgTokens -= 1
    const m = parseGameMessage(new Uint8Array(message), this.#kinds)
    if (typeof m === 'string') {
      if (m === ClientError.MALFORMED) return this.reject(conn, RejectReason.MALFORMED, 'BAD_MESSAGE', DisconnectReason.BAD_MESSAGE)
      return this.reject(conn, m === ClientError.RANGE ? RejectReason.RANGE : RejectReason.TYPE, 'BAD_INPUT', DisconnectReason.BAD_INPUT)
    }
    const seat = conn.seat
    if (!seat) return
    this.#stats.gameMessagesReceived++
    seat.room.messages.receive(seat, m.kind, m.values)
  }

  /** Counts and logs (rate-limited) a bad frame, then closes its socket. */
  reject(conn: Conn, why: RejectReason, code: keyof typeof CloseCode, reason: DisconnectReason): void {
    this.#stats.rejected[why]++
    this.#events.warn('bad client frame', { address: conn.address, reason: why, player: conn.playerId })
    closeConn(conn, code, reason)
  }
}
