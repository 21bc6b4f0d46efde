/**
 * A monotonic clock and a one-shot timer: the tick loop's only view of time,
 * so tests can inject a fake one and run hours in milliseconds.
 */
export interface Clock {
  /** Monotonic milliseconds (fractional). Never jumps with wall-clock changes. */
  now(): number
  /** Calls `fn` once after about `ms` milliseconds; returns a handle for `cancel`. */
  schedule(ms: number, fn: () => void): unknown
  cancel(handle: unknown): void
}

/** The real clock: `performance.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => performance.now(),
  schedule: (ms, fn) => setTimeout(fn, ms),
  cancel: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}
