/**
 * Fixed-rate tick loop, drift-free: tick slot k is due at `epoch + k * period`
 * on the monotonic clock, and each wake-up is scheduled against that absolute
 * time, so timer lateness never accumulates (a `setInterval` loop drifts by
 * its lateness every tick).
 *
 * Catch-up policy, when the process falls behind (a long tick, a GC pause,
 * a stopped process): on one wake-up the loop runs the tick that is due plus
 * at most `maxCatchUpTicks` late ones back to back; slots beyond that are
 * skipped (counted in `skippedSlots`) and the simulation resumes on schedule.
 * Tick numbers stay contiguous: a skipped slot is not a simulation step, so
 * game time runs slower than wall time during an overload instead of jumping.
 *
 * Stalls: a wake-up that comes more than `stallThresholdMs(hz)` (the larger of
 * STALL_MIN_MS and STALL_PERIODS tick periods) after the slot it was armed for
 * means the event loop was blocked (a long tick, a synchronous decode, a
 * stopped process), not timer jitter or a slow tick: it is counted once per
 * wake-up in `stalls` and reported to `onStall`.
 *
 * Idle: when `idle()` says there is nothing to simulate (no rooms), the next
 * tick comes after `idleMs` instead of one period: on this kind of VM each
 * timer wake-up costs ~0.2 ms of CPU, so 30 empty ticks a second were most of
 * an idle process's cost. `wake()` (a room was created) ends the nap at once
 * and restarts the schedule from now: a nap is not lateness or skips, but a nap's
 * timer that fires a stall's length late (the event loop was blocked) is a stall.
 */
import type { Clock } from './clock.js'

/** A wake-up at least this late (ms) is a stall, whatever the tick rate... */
export const STALL_MIN_MS = 250
/** ...or this many tick periods late, if that is longer (at low tick rates a few late periods are ordinary catch-up). */
export const STALL_PERIODS = 5

/** How late (ms) a wake-up must be to count as an event-loop stall at `hz` ticks per second. */
export function stallThresholdMs(hz: number): number {
  return Math.max(STALL_MIN_MS, (STALL_PERIODS * 1000) / hz)
}

export interface TickLoopOptions {
  /** Ticks per second. */
  readonly hz: number
  /** Late ticks run back to back on one wake-up before the rest are skipped. */
  readonly maxCatchUpTicks: number
  readonly clock: Clock
  /** Runs one simulation step; `tick` starts at 1 and increases by 1. */
  readonly onTick: (tick: number) => void
  /** Called once per stalled wake-up with how late it came (ms), before the ticks it runs; for a log line (rate-limit it). */
  readonly onStall?: (lateMs: number) => void
  /** True when there is nothing to simulate: the loop then ticks every `idleMs` until `wake()`. Default: never idle. */
  readonly idle?: () => boolean
  /** Period of ticks while idle, ms (default 1000). */
  readonly idleMs?: number
}

export class TickLoop {
  /** Simulation steps run so far (= the last tick number). */
  tick = 0
  /** Ticks whose own run took longer than one period. */
  overruns = 0
  /** Ticks that ran late, back to back, to catch up. */
  catchUpTicks = 0
  /** Schedule slots dropped because the loop was too far behind. */
  skippedSlots = 0
  /** Wake-ups that came at least `stallThresholdMs` after their slot: the event loop was blocked that long. */
  stalls = 0
  /** Duration of the last tick, ms. */
  lastTickMs = 0
  /** How late the current (or last) tick started after its scheduled time, ms: timer jitter plus any backlog. */
  lastLatenessMs = 0

  readonly periodMs: number
  /** Lateness of a wake-up (ms) from which it counts as a stall. */
  readonly stallMs: number
  readonly #opts: TickLoopOptions
  #epoch = 0
  #slot = 0
  #timer: unknown = undefined
  #running = false
  /** The current timer is an idle nap (see idle). */
  #napping = false
  /** When the current nap's timer is due (clock ms): a nap's wake-up late by a stall is still a stall. */
  #napDue = 0

  constructor(opts: TickLoopOptions) {
    if (!(opts.hz > 0)) throw new RangeError(`tick rate must be > 0, got ${opts.hz}`)
    this.#opts = opts
    this.periodMs = 1000 / opts.hz
    this.stallMs = stallThresholdMs(opts.hz)
  }

  get running(): boolean {
    return this.#running
  }

  start(): void {
    if (this.#running) return
    this.#running = true
    this.#epoch = this.#opts.clock.now()
    this.#slot = 0
    this.#arm()
  }

  stop(): void {
    this.#running = false
    if (this.#timer !== undefined) this.#opts.clock.cancel(this.#timer)
    this.#timer = undefined
  }

  /** Napping (idle): tick now and go back to the tick rate. Otherwise nothing. */
  wake(): void {
    if (!this.#running || !this.#napping) return
    this.#opts.clock.cancel(this.#timer)
    this.#napDue = this.#opts.clock.now()
    this.#timer = this.#opts.clock.schedule(0, this.#wake)
  }

  /** Whether the loop is napping (idle, ticking every `idleMs`). */
  get napping(): boolean {
    return this.#napping
  }

  #arm(): void {
    const { clock, idle } = this.#opts
    if (idle?.()) {
      this.#napping = true
      this.#napDue = clock.now() + (this.#opts.idleMs ?? 1000)
      this.#timer = clock.schedule(this.#opts.idleMs ?? 1000, this.#wake)
      return
    }
    const due = this.#epoch + (this.#slot + 1) * this.periodMs
    this.#timer = clock.schedule(Math.max(0, due - clock.now()), this.#wake)
  }

  #wake = (): void => {
    this.#timer = undefined
    if (!this.#running) return
    const { clock, onTick, maxCatchUpTicks } = this.#opts
    let napLateMs = 0
    if (this.#napping) {
      // The schedule restarts: the next slot is due now. How late the nap's own timer fired still tells a stall.
      this.#napping = false
      napLateMs = clock.now() - this.#napDue
      this.#slot = 0
      this.#epoch = clock.now() - this.periodMs
    }
    const now = clock.now()
    // Measured against the slot this timer was armed for: that is how long the event loop kept it from firing.
    const lateMs = Math.max(napLateMs, now - (this.#epoch + (this.#slot + 1) * this.periodMs))
    if (lateMs >= this.stallMs) {
      this.stalls++
      this.#opts.onStall?.(lateMs)
      if (!this.#running) return // the callback stopped the loop
    }
    // The epsilon absorbs float error: a timer that fires exactly on time must count as due.
    const dueSlot = Math.floor((now - this.#epoch) / this.periodMs + 1e-9)
    let behind = dueSlot - this.#slot
    if (behind > 1 + maxCatchUpTicks) {
      const skip = behind - 1 - maxCatchUpTicks
      this.skippedSlots += skip
      this.#slot += skip
      behind -= skip
    }
    for (let i = 0; i < behind && this.#running; i++) {
      if (i > 0) this.catchUpTicks++
      this.#slot++
      const t0 = clock.now()
      this.lastLatenessMs = Math.max(0, t0 - (this.#epoch + this.#slot * this.periodMs))
      onTick(++this.tick)
      const ms = clock.now() - t0
      this.lastTickMs = ms
      if (ms > this.periodMs) this.overruns++
    }
    if (this.#running) this.#arm()
  }
}
