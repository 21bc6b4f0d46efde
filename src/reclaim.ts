/**
 * Gives memory back after a peak. A server that just lost most of its rooms
 * allocates almost nothing, so V8's next major GC (which would free the closed
 * rooms' replication buffers, ~8 KiB per player, and their objects) may not
 * come for minutes: RSS stays at the peak (bench/results/2026-12-01-memory.md).
 * Every `everyMs` this looks at the open room count; once it has fallen to at
 * most half of its recent peak, by at least `minDrop` rooms, it runs one full
 * GC (12-50 ms on the 2-core VM) outside the tick. With glibc most of the freed
 * memory still stays resident (its heap keeps freed chunks); with jemalloc it
 * returns to the OS.
 */
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import type { Logger } from './log.js'

export interface Reclaimer {
  /** Full GCs run so far. */
  readonly collections: number
  stop(): void
}

/** `gc()` from `--expose-gc`, or enabled now (the flag only makes the function reachable). */
function gcFunction(): () => void {
  const g = (globalThis as { gc?: () => void }).gc
  if (typeof g === 'function') return g
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

/** Starts watching `openRooms()`; the timer does not keep the process alive. */
export function startReclaimer(openRooms: () => number, log: Logger, everyMs = 10_000, minDrop = 8): Reclaimer {
  const gc = gcFunction()
  let peak = 0
  let collections = 0
  const timer = setInterval(() => {
    const open = openRooms()
    if (open > peak) peak = open
    if (peak - open >= minDrop && open <= peak / 2) {
      const t0 = performance.now()
      gc()
      collections++
      log.info('reclaimed memory after rooms closed', { rooms: open, peakRooms: peak, gcMs: Math.round(performance.now() - t0) })
      peak = open
    }
  }, everyMs)
  timer.unref()
  return {
    get collections() {
      return collections
    },
    stop: () => clearInterval(timer),
  }
}
