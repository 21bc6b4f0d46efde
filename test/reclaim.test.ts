/** The reclaimer: one full GC after the open rooms fell to half their peak, none otherwise. Real timers, real gc(). */
import t from 'tap'
import { createLogger } from '../src/log.js'
import { startReclaimer } from '../src/reclaim.js'
import { sleep, waitFor } from './helpers/server.js'

t.test('a full GC after rooms fall to half their peak (by at least minDrop), once per fall', async (t) => {
  const lines: string[] = []
  let open = 3
  const r = startReclaimer(() => open, createLogger('info', (l) => lines.push(l)), 20, 8)
  t.teardown(() => r.stop())
  await sleep(80)
  open = 30
  await sleep(80)
  open = 20 // a third gone: not yet
  await sleep(80)
  t.equal(r.collections, 0, 'no GC while most rooms are still open')
  // Garbage that only a major GC frees: the collection must actually run.
  let junk: number[][] | null = Array.from({ length: 2000 }, () => new Array<number>(500).fill(1))
  junk = null
  void junk
  const before = process.memoryUsage().heapUsed
  open = 10
  await waitFor(() => r.collections === 1, 5000, 'a collection after the fall')
  t.ok(process.memoryUsage().heapUsed < before, `the heap shrank: ${(before / 2 ** 20).toFixed(1)} -> ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} MiB`)
  t.match(lines.join('\n'), /info reclaimed memory after rooms closed rooms=10 peakRooms=30 gcMs=\d+/)
  await sleep(100)
  t.equal(r.collections, 1, 'the new peak is the low: no repeat')
  open = 4 // a drop of 6 < minDrop
  await sleep(100)
  t.equal(r.collections, 1, 'small drops are left to V8')
})
