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
