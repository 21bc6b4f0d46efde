import t from 'tap'
import type { Clock } from '../src/sim/clock.js'
import { STALL_MIN_MS, TickLoop, stallThresholdMs } from '../src/sim/loop.js'

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
  t.equal(loop.stalls, 0, 'timer jitter is never a stall')
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

t.test('event-loop stalls: a wake-up later than max(250 ms, 5 periods) counts once and reaches onStall', async (t) => {
  t.equal(stallThresholdMs(30), STALL_MIN_MS, '30 Hz: 5 periods are 167 ms, so the floor applies')
  t.equal(stallThresholdMs(2), 2500, '2 Hz: 5 periods')
  const clock = new FakeClock()
  const reported: number[] = []
  const loop: TickLoop = new TickLoop({
    hz: 30,
    maxCatchUpTicks: 3,
    clock,
    onStall: (ms) => reported.push(ms),
    onTick: (tick) => {
      if (tick === 10) clock.time += 200 // a slow tick, under the threshold: catch-up, no stall
      if (tick === 40) clock.time += 400 // the event loop blocked 400 ms (a synchronous decode, a game's loop)
    },
  })
  loop.start()
  clock.runUntil(clock.time + 3000)
  t.equal(loop.stalls, 1, 'one stall for one blocked stretch, however many slots it cost')
  t.equal(reported.length, 1)
  // Tick 40 ran at its slot (1333.3 ms after start) and blocked until 1733.3 ms; the timer was armed for slot 41 (1366.7 ms).
  t.equal(Math.round(reported[0] as number), 367, 'onStall gets how late the wake-up came, ms')
  t.ok(loop.skippedSlots > 0, 'the stall also skipped slots (counted there as before)')

  // A stopped process (SIGSTOP, a debugger) resumed: the timer comes seconds late.
  const c2 = new FakeClock()
  const l2 = new TickLoop({ hz: 2, maxCatchUpTicks: 3, clock: c2, onTick: () => {} })
  l2.start()
  c2.runUntil(c2.time + 1000)
  c2.time += 2000 // 2 s frozen at 2 Hz: under 5 periods (2.5 s), ordinary catch-up
  c2.runUntil(c2.time + 1)
  t.equal(l2.stalls, 0)
  c2.time += 5000
  c2.runUntil(c2.time + 1)
  t.equal(l2.stalls, 1, '5 s frozen at 2 Hz is a stall')
  l2.stop()

  // onStall may stop the loop: nothing runs after it.
  const c3 = new FakeClock()
  let ticks = 0
  const l3: TickLoop = new TickLoop({ hz: 30, maxCatchUpTicks: 3, clock: c3, onStall: () => l3.stop(), onTick: () => ticks++ })
  l3.start()
  c3.time += 1000
  c3.runUntil(c3.time + 1)
  t.equal(ticks, 0, 'a stop from onStall runs no tick')
  t.equal(l3.running, false)
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

t.test('idle: one tick per idleMs while idle() holds; wake() resumes at once, with no lateness, skips or stalls', async (t) => {
  const clock = new FakeClock()
  let idle = true
  const at: number[] = []
  const loop = new TickLoop({ hz: 30, maxCatchUpTicks: 3, clock, idle: () => idle, idleMs: 1000, onTick: () => at.push(clock.now()) })
  loop.start()
  clock.runUntil(1000 + 10_000)
  t.equal(at.length, 10, '10 ticks in 10 idle seconds (not 300)')
  t.ok(loop.napping)
  const before = at.length
  idle = false
  clock.time += 300 // mid-nap
  const woke = clock.now()
  loop.wake()
  clock.runUntil(woke + 1000)
  t.equal(at[before], woke, 'the first tick runs at once')
  t.ok(at.length - before >= 30 && at.length - before <= 31, `then the tick rate: ${at.length - before} ticks in the next second`)
  t.equal(loop.skippedSlots, 0, 'a nap is not skipped slots')
  t.equal(loop.stalls, 0, 'nor a stall')
  t.equal(loop.catchUpTicks, 0, 'nor catch-up')
  t.notOk(loop.napping)
  loop.wake() // not napping: nothing
  clock.runUntil(clock.now() + 100)
  t.equal(loop.catchUpTicks, 0)
  loop.stop()
})

t.test('idle: a nap whose timer fires a stall late (the event loop was blocked) counts as a stall; one on time does not', async (t) => {
  let late = 0
  // The next timer armed fires `late` ms after it is due; those after it on time.
  const clock = new FakeClock(() => {
    const l = late
    late = 0
    return l
  })
  const stalls: number[] = []
  const loop = new TickLoop({ hz: 30, maxCatchUpTicks: 3, clock, idle: () => true, idleMs: 1000, onTick: () => {}, onStall: (ms) => stalls.push(ms) })
  loop.start()
  clock.runUntil(1000 + 3000)
  t.equal(loop.stalls, 0, 'naps on time: no stall')
  late = 600
  clock.runUntil(clock.now() + 5000)
  t.equal(loop.stalls, 1, 'counted once')
  t.ok((stalls[0] ?? 0) >= 600, `reported as ${stalls[0]} ms late`)
  loop.stop()
})
