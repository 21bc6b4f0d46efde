import t from 'tap'
import type { Clock } from '../src/sim/clock.js'
import { TickLoop } from '../src/sim/loop.js'

/** A fake monotonic clock whose timers fire `lateness()` ms after they are due. */
class FakeClock implements Clock {
  time = 1000
  #timers: { at: number; fn: () => void; id: number }[] = []
  #id = 0
  constructor(readonly lateness: () => number = () => 0) {}
  now(): number {
    return this.time
  }
  schedule(ms: number, fn: () => void): unknown {
    const id = ++this.#id
    this.#timers.push({ at: this.time + ms + this.lateness(), fn, id })
    return id
  }
  cancel(h: unknown): void {
    this.#timers = this.#timers.filter((x) => x.id !== h)
  }
  /** Runs timers in order until `until`. */
  runUntil(until: number): void {
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at)
      const next = this.#timers[0]
      if (!next || next.at > until) break
      this.#timers.shift()
      this.time = Math.max(this.time, next.at)
      next.fn()
    }
    this.time = until
  }
}

t.test('drift-free: 3 simulated hours at 30 Hz with jittery, late timers give exactly the due tick count', async (t) => {
  let seed = 7
  const jitter = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 4 // 0-4 ms late
  const clock = new FakeClock(jitter)
  let ticks = 0
  const loop = new TickLoop({ hz: 30, maxCatchUpTicks: 3, clock, onTick: () => ticks++ })
  loop.start()
  const hours = 3
  // +10 ms: the last slot is due exactly at the end and its timer may fire up to 4 ms late.
  clock.runUntil(clock.time + hours * 3600 * 1000 + 10)
  loop.stop()
  t.equal(ticks, hours * 3600 * 30)
  t.equal(loop.tick, ticks)
  t.equal(loop.skippedSlots, 0)
  t.ok(loop.lastLatenessMs >= 0 && loop.lastLatenessMs <= 4, `lateness is the timer's: ${loop.lastLatenessMs} ms`)
})

t.test('a setInterval-style loop would drift: the same lateness accumulates', async (t) => {
  // The control: re-arming with a relative period loses the lateness every tick.
  const clock = new FakeClock(() => 1)
  let ticks = 0
  const tickRel = () => {
    ticks++
    clock.schedule(1000 / 30, tickRel)
  }
  clock.schedule(1000 / 30, tickRel)
  clock.runUntil(clock.time + 3600 * 1000)
  t.ok(ticks < 3600 * 30 * 0.98, `relative scheduling drifted to ${ticks} ticks in an hour`)
})

t.test('an overrun triggers bounded catch-up, then skips and counts', async (t) => {
  const clock = new FakeClock()
  const seen: number[] = []
  const late: number[] = []
  const loop: TickLoop = new TickLoop({
    hz: 10,
    maxCatchUpTicks: 2,
    clock,
    onTick: (tick) => {
      seen.push(tick)
      late.push(loop.lastLatenessMs)
      if (tick === 5) clock.time += 1000 // tick 5 takes a whole second: 10 periods
    },
  })
  loop.start()
  clock.runUntil(clock.time + 2000 + 1)
  loop.stop()
  t.equal(loop.overruns, 1, 'the long tick is an overrun')
  t.equal(loop.catchUpTicks, 2, 'two late ticks ran back to back')
  t.ok(loop.skippedSlots > 0, 'the rest of the missed slots were skipped')
  t.same(seen.slice(0, 8), [1, 2, 3, 4, 5, 6, 7, 8], 'tick numbers stay contiguous')
  t.equal(late[4], 0, 'tick 5 started on time')
  // Tick 5 ended at 1.5 s: slots 6-12 are skipped, slots 13-15 (due 1.3, 1.4, 1.5 s) run back to back.
  t.same(late.slice(5, 8).map(Math.round), [200, 100, 0], 'lateness is measured against the slot each tick fills')
  // 20 slots in 2 s; ticks run + slots skipped account for all of them.
  t.equal(loop.tick + loop.skippedSlots, 20)
})

t.test('stop() cancels the pending timer and rejects a bad rate', async (t) => {
  const clock = new FakeClock()
  let ticks = 0
  const loop = new TickLoop({ hz: 30, maxCatchUpTicks: 0, clock, onTick: () => ticks++ })
  loop.start()
  clock.runUntil(clock.time + 100)
  loop.stop()
  const before = ticks
  clock.runUntil(clock.time + 1000)
  t.equal(ticks, before)
  t.equal(loop.running, false)
  t.throws(() => new TickLoop({ hz: 0, maxCatchUpTicks: 0, clock, onTick: () => {} }), RangeError)
})
