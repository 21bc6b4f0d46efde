/**
 * Flow control and the send of one STATE frame: the per-socket backpressure
 * policy, decided before every frame, in this order:
 *  1. buffered bytes > hardBackpressure: close TOO_SLOW;
 *  2. ack window full (Viewer.canSend): skip this tick (reason ack_window);
 *  3. buffered bytes > softBackpressure: skip this tick (reason buffered);
 *  4. skipped without a break for maxStallSeconds: close TOO_SLOW.
 * A skipped frame needs no resend: the next one is encoded against the
 * client's ack, so it carries everything missed. A send that uWS reports as
 * dropped closes DESYNC rather than leaving the client desynced.
 *
 * The player's queued game messages and props (outbox.ts) leave in the same
 * corked send, just before the STATE frame, and only when a STATE is sent: a
 * skipped tick holds them back too, so they never pass the flow control.
 *
 * Knows sockets and the replicator, not sessions or rooms: the caller closes.
 */
import { FullStateReason, SkipReason, type Stats } from '../metrics/stats.js'
import { FullReason, type RoomReplicator, type Viewer } from '../replicate/replicator.js'
import type { Outbox } from './outbox.js'
import type { WebSocket } from './uws.js'

/** What `FrameSender.send` did. */
export const SendResult = { SENT: 0, SKIPPED: 1, TOO_SLOW: 2, DESYNC: 3 } as const
export type SendResult = (typeof SendResult)[keyof typeof SendResult]

export interface FlowOptions {
  readonly softBackpressure: number
  readonly hardBackpressure: number
  readonly maxStallSeconds: number
}

/** Per-socket flow state the sender keeps. */
export interface Flow {
  /** When the current run of skipped frames began (0: not skipping). */
  stallSince: number
}

export class FrameSender {
  readonly #opts: FlowOptions
  readonly #stats: Stats
  /** One encode buffer for every frame of the process, and one view of it per frame length (made once). */
  readonly #out: Uint8Array
  readonly #views: Uint8Array[] = []
  // State for the one cork callback (no closure per send).
  #corkWs: WebSocket<unknown> | null = null
  #corkFrame: Uint8Array = new Uint8Array(0)
  #corkOutbox: Outbox | null = null
  #corkTick = 0
  #corkResult = 0

  constructor(opts: FlowOptions, stats: Stats, encodeBytes: number) {
    this.#opts = opts
    this.#stats = stats
    this.#out = new Uint8Array(encodeBytes)
  }

  /**
   * Sends `viewer` its frame of the room's current snapshot, or skips it;
   * `inputSeq` is the seat's applied input. `outbox`'s unsent frames go first,
   * in the same cork.
   */
  send(ws: WebSocket<unknown>, flow: Flow, viewer: Viewer, rep: RoomReplicator, inputSeq: number, now: number, outbox: Outbox | null = null): SendResult {
    const buffered = ws.getBufferedAmount()
    if (buffered > this.#opts.hardBackpressure) return SendResult.TOO_SLOW
    let skip: SkipReason | null = null
    if (!viewer.canSend()) skip = SkipReason.ACK_WINDOW
    else if (buffered > this.#opts.softBackpressure) skip = SkipReason.BUFFERED
    if (skip !== null) {
      this.#stats.skipped[skip]++
      if (flow.stallSince === 0) flow.stallSince = now
      else if (now - flow.stallSince > this.#opts.maxStallSeconds * 1000) return SendResult.TOO_SLOW
      return SendResult.SKIPPED
    }
    flow.stallSince = 0
    const len = rep.encode(viewer, inputSeq, this.#out)
    if (viewer.lastFull === FullReason.JOIN) this.#stats.fullStates[FullStateReason.JOIN]++
    else if (viewer.lastFull === FullReason.BASELINE_EXPIRED) this.#stats.fullStates[FullStateReason.BASELINE_EXPIRED]++
    this.#corkWs = ws
    this.#corkFrame = this.#views[len] ??= this.#out.subarray(0, len)
    if (outbox) outbox.ack(viewer.ackTick)
    this.#corkOutbox = outbox !== null && outbox.hasUnsent ? outbox : null
    this.#corkTick = rep.tick
    ws.cork(this.#corkedSend)
    this.#corkWs = null
    this.#corkOutbox = null
    if (this.#corkResult === 2) return SendResult.DESYNC
    this.#stats.framesSent++
    this.#stats.messagesSent++
    this.#stats.bytesSent += len
    return SendResult.SENT
  }

  readonly #corkedSend = (): void => {
    const ws = this.#corkWs as WebSocket<unknown>
    const outbox = this.#corkOutbox
    if (outbox) {
      const stats = this.#stats
      for (let f = outbox.next(); f !== undefined; f = outbox.next()) {
        const r = ws.send(f, true)
        if (r === 2) {
          this.#corkResult = 2
          return
        }
        outbox.sent(this.#corkTick)
        stats.messagesSent++
        stats.bytesSent += f.byteLength
      }
    }
    this.#corkResult = ws.send(this.#corkFrame, true)
  }
}
