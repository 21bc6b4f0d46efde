/**
 * One player's reliable stream (protocol 3): the MESSAGE and PROPS frames
 * queued for them and not yet acknowledged. It lives in the Session, so it
 * survives a lost connection and a resume.
 *
 * Frames leave only inside the corked send of a STATE frame, written before
 * it (flow.ts), and each is tagged with that STATE's tick. A client's ack of
 * tick T means it read everything sent before STATE T on that connection, so
 * an ack drops the frames tagged T or lower. A frame never leaves twice on
 * one connection; on a resume the ones still here are sent again, and
 * WELCOME's `messageSeq` (the number of the oldest) lets the client drop
 * those it already applied.
 *
 * Bounded in bytes and frames (`--outbox-bytes`, `--outbox-frames`): a push
 * past either marks it overflowed (a newcomer's props snapshot is not
 * counted: its frames are the room's, shared, and a room's worth at most), and the server then closes the player
 * TOO_SLOW without holding the seat (a stream with a gap would be a silent
 * desync). Frames are shared between players (encoded once per room).
 */
const DELIVERED = new Uint8Array(0)

export interface OutboxLimits {
  readonly outboxBytes: number
  readonly outboxFrames: number
}

export class Outbox {
  readonly #limits: OutboxLimits
  #frames: Uint8Array[] = []
  /** Tick of the STATE each frame left with on this connection; 0: not sent yet. */
  #sentAt: number[] = []
  #head = 0
  /** Index of the first frame not sent on this connection. */
  #unsent = 0
  /** Stream number of `#frames[#head]`. */
  #firstSeq = 0
  #bytes = 0
  /** Frames below this index are a join's props snapshot, outside the bound; and their bytes. */
  #exemptEnd = 0
  #exemptBytes = 0
  /** Set by a push past a bound; nothing is queued after. */
  overflowed = false

  constructor(limits: OutboxLimits) {
    this.#limits = limits
  }

  /** Stream number of the oldest frame kept (the next one's when empty): WELCOME's `messageSeq`. */
  get firstSeq(): number {
    return this.#firstSeq
  }

  /** Frames kept (sent and unacked, or not sent yet). */
  get size(): number {
    return this.#frames.length - this.#head
  }

  /** Bytes kept. */
  get bytes(): number {
    return this.#bytes
  }

  /** Whether frames wait to be sent with the next STATE. */
  get hasUnsent(): boolean {
    return this.#unsent < this.#frames.length
  }

  /** Queues a frame; false (and overflowed) when it would pass a bound. `snapshot`: part of a join's props snapshot, not counted. */
  push(frame: Uint8Array, snapshot = false): boolean {
    if (this.overflowed) return false
    if (snapshot && this.#exemptEnd === this.#frames.length) {
      this.#frames.push(frame)
      this.#sentAt.push(0)
      this.#bytes += frame.byteLength
      this.#exemptBytes += frame.byteLength
      this.#exemptEnd++
      return true
    }
    const counted = this.size - Math.max(0, this.#exemptEnd - this.#head)
    if (counted + 1 > this.#limits.outboxFrames || this.#bytes - this.#exemptBytes + frame.byteLength > this.#limits.outboxBytes) {
      this.overflowed = true
      return false
    }
    this.#frames.push(frame)
    this.#sentAt.push(0)
    this.#bytes += frame.byteLength
    return true
  }

  /** Drops the frames that left with a STATE of tick `ackTick` or earlier (the client acknowledged that tick). */
  ack(ackTick: number): void {
    if (ackTick <= 0) return
    const sentAt = this.#sentAt
    let h = this.#head
    while (h < this.#unsent && (sentAt[h] as number) <= ackTick) {
      const n = (this.#frames[h] as Uint8Array).byteLength
      this.#bytes -= n
      if (h < this.#exemptEnd) this.#exemptBytes -= n
      this.#frames[h] = DELIVERED // not kept alive until the next compaction
      h++
    }
    if (h === this.#head) return
    this.#firstSeq += h - this.#head
    this.#head = h
    // Compact now and then: the arrays do not grow with the stream's length.
    if (h >= 64 && h * 2 >= this.#frames.length) {
      this.#frames = this.#frames.slice(h)
      this.#sentAt = this.#sentAt.slice(h)
      this.#unsent -= h
      this.#exemptEnd = Math.max(0, this.#exemptEnd - h)
      this.#head = 0
    }
  }

  /** The frame to send next, or undefined; `sent(tick)` marks it gone. */
  next(): Uint8Array | undefined {
    return this.#frames[this.#unsent]
  }

  sent(tick: number): void {
    this.#sentAt[this.#unsent++] = tick
  }

  /** A new connection took the seat over: every frame kept is sent again. */
  resend(): void {
    for (let i = this.#head; i < this.#frames.length; i++) this.#sentAt[i] = 0
    this.#unsent = this.#head
  }
}
