/** The spatial grid's counting sort, including positions a buggy game might produce. */
import t from 'tap'
import { Grid } from '../src/sim/grid.js'
import { mulberry32 } from '../src/sim/random.js'
import { World } from '../src/sim/world.js'

t.test('every live entity is in exactly one cell, in ascending id order, whatever its position', async (t) => {
  const rnd = mulberry32(5)
  const world = new World(300, ['x', 'y'])
  const grid = new Grid(world, 'x', 'y', 1000, 800, 100)
  const xs = world.column('x')
  const ys = world.column('y')
  const odd = [NaN, -50, 1e9, -Infinity, Infinity]
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 40; i++) {
      const e = world.spawn()
      if (e >= 0) {
        xs[e] = rnd() < 0.1 ? (odd[Math.floor(rnd() * odd.length)] as number) : rnd() * 1000
        ys[e] = rnd() < 0.1 ? (odd[Math.floor(rnd() * odd.length)] as number) : rnd() * 800
      }
    }
    for (let e = 0; e < world.capacity; e++) if (world.alive[e] === 1 && rnd() < 0.1) world.despawn(e)
    grid.rebuild()
    const seen = new Map<number, number>()
    let ordered = true
    for (let c = 0; c < grid.cols * grid.rows; c++) {
      const start = grid.cellStart[c] as number
      const end = grid.cellStart[c + 1] as number
      if (start > end) ordered = false
      for (let k = start; k < end; k++) {
        const e = grid.items[k] as number
        seen.set(e, (seen.get(e) ?? 0) + 1)
        if (grid.cellOf[e] !== c) ordered = false
        if (k > start && (grid.items[k - 1] as number) >= e) ordered = false
      }
    }
    const alive = [...Array(world.capacity).keys()].filter((e) => world.alive[e] === 1)
    t.equal(grid.cellStart[grid.cols * grid.rows], world.count, `round ${round}: cells hold every live entity`)
    t.ok(alive.every((e) => seen.get(e) === 1) && seen.size === alive.length, `round ${round}: each exactly once`)
    t.ok(ordered, `round ${round}: cell slices consistent and ascending`)
  }
})

/** The oracle: every live entity, distance computed as the grid does. */
function bruteNear(world: World, x: number, y: number, radius: number): Map<number, number> {
  const xs = world.column('x')
  const ys = world.column('y')
  const out = new Map<number, number>()
  if (!(radius >= 0)) return out
  for (let e = 0; e < world.capacity; e++) {
    if (world.alive[e] !== 1) continue
    const dx = (xs[e] as number) - x
    const dy = (ys[e] as number) - y
    const d2 = dx * dx + dy * dy
    if (d2 <= radius * radius) out.set(e, d2)
  }
  return out
}

function bruteNearest(world: World, x: number, y: number, radius: number, filter?: (e: number) => boolean): number {
  let best = -1
  let bestD2 = Infinity
  for (const [e, d2] of bruteNear(world, x, y, radius)) {
    if (filter && !filter(e)) continue
    if (d2 < bestD2 || (d2 === bestD2 && e < best)) {
      best = e
      bestD2 = d2
    }
  }
  return best
}

t.test('forEachNear and nearest agree with a brute-force scan over random worlds', async (t) => {
  const rnd = mulberry32(11)
  const odd = [NaN, -50, 1e9, -Infinity, Infinity]
  let queries = 0
  let found = 0
  for (let w = 0; w < 30; w++) {
    const width = 200 + rnd() * 2000
    const height = 200 + rnd() * 2000
    const cell = 20 + rnd() * 300
    const world = new World(50 + Math.floor(rnd() * 300), ['x', 'y'])
    const grid = new Grid(world, 'x', 'y', width, height, cell)
    const xs = world.column('x')
    const ys = world.column('y')
    for (let i = 0; i < world.capacity; i++) {
      const e = world.spawn()
      // Some entities share a position exactly (ties for nearest), a few sit outside the world or at NaN.
      const r = rnd()
      xs[e] = r < 0.05 ? (odd[Math.floor(rnd() * odd.length)] as number) : r < 0.15 ? 100 : rnd() * width
      ys[e] = r < 0.05 ? (odd[Math.floor(rnd() * odd.length)] as number) : r < 0.15 ? 100 : rnd() * height
    }
    for (let e = 0; e < world.capacity; e++) if (rnd() < 0.2) world.despawn(e)
    grid.rebuild()
    // Despawned after the rebuild: the grid still lists it, the query must skip it.
    for (let e = 0; e < world.capacity; e++) if (world.alive[e] === 1 && rnd() < 0.05) world.despawn(e)
    let mismatches = 0
    for (let q = 0; q < 60; q++) {
      const x = q === 0 ? 100 : -100 + rnd() * (width + 200)
      const y = q === 0 ? 100 : -100 + rnd() * (height + 200)
      const radius = q === 1 ? Infinity : q === 2 ? 0 : q === 3 ? -1 : rnd() * cell * 3
      const want = bruteNear(world, x, y, radius)
      const got = new Map<number, number>()
      let dupes = 0
      grid.forEachNear(x, y, radius, (e, d2) => {
        if (got.has(e)) dupes++
        got.set(e, d2)
      })
      const same = dupes === 0 && got.size === want.size && [...want].every(([e, d2]) => got.get(e) === d2)
      const even = (e: number) => e % 2 === 0
      if (!same || grid.nearest(x, y, radius) !== bruteNearest(world, x, y, radius) || grid.nearest(x, y, radius, even) !== bruteNearest(world, x, y, radius, even)) mismatches++
      queries++
      found += want.size
    }
    t.equal(mismatches, 0, `world ${w} (${Math.round(width)} x ${Math.round(height)}, cells ${Math.round(cell)}): 60 queries match the oracle`)
  }
  t.ok(found > queries, `the queries found entities (${found} over ${queries} queries): the comparison is not vacuous`)
})

t.test('queries: a NaN point or radius finds nothing; an entity spawned after the rebuild is not found until the next one', async (t) => {
  const world = new World(4, ['x', 'y'])
  const grid = new Grid(world, 'x', 'y', 100, 100, 10)
  const a = world.spawn()
  world.column('x')[a] = 50
  world.column('y')[a] = 50
  grid.rebuild()
  const seen: number[] = []
  const push = (e: number) => void seen.push(e)
  grid.forEachNear(NaN, 50, 10, push)
  grid.forEachNear(50, 50, NaN, push)
  t.same(seen, [])
  t.equal(grid.nearest(50, NaN, 10), -1)
  const b = world.spawn()
  world.column('x')[b] = 51
  world.column('y')[b] = 50
  grid.forEachNear(50, 50, 5, push)
  t.same(seen, [a], 'b is not in the grid yet')
  grid.rebuild()
  t.equal(grid.nearest(52, 50, 5), b)
  t.equal(grid.nearest(52, 50, 5, (e) => e !== b), a, 'the filter skips b')
})
