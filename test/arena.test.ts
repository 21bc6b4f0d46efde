/** The reference game's rules, on a real Room (no sockets). */
import t from 'tap'
import { AVATAR_RADIUS, AVATAR_SPEED, Kind, arena, arenaLayout } from '../src/games/arena.js'
import { Room } from '../src/sim/room.js'

function room(maxPlayers = 8): Room {
  return new Room('r', false, arena, maxPlayers, 300, 7)
}

/** A room with two seated avatars, and the position columns. */
function twoAvatars() {
  const r = room()
  const a = r.join(1, 'a')
  const b = r.join(2, 'b')
  if (!a || !b) throw new Error('no seat')
  return { r, a, b, xs: r.world.column('x'), ys: r.world.column('y') }
}

t.test('layout: orbs fill the rest, the world scales with the room', async (t) => {
  const small = arenaLayout(8)
  t.equal(small.orbs, 60)
  t.equal(small.capacity, 68)
  const big = arenaLayout(1000)
  t.equal(big.orbs, 2000)
  t.ok(big.width > small.width * 5)
  const r = room()
  t.equal(r.world.count, 60, 'orbs spawned at creation')
})

t.test('input is clamped: a diagonal at full stick moves no faster than straight', async (t) => {
  const { r, a, b, xs, ys } = twoAvatars()
  const side = arenaLayout(8).width
  // Far from walls, each other and (after this tick) whatever orbs: measure one short step.
  xs[a.entity] = side / 2
  ys[a.entity] = side / 4
  xs[b.entity] = side / 2
  ys[b.entity] = (3 * side) / 4
  a.input.set([100, 100])
  a.inputSeq = 1
  b.input.set([100, 0])
  b.inputSeq = 1
  const dt = 0.01
  const ax = xs[a.entity] as number
  const ay = ys[a.entity] as number
  const bx = xs[b.entity] as number
  r.step(dt, 1)
  const da = Math.hypot((xs[a.entity] as number) - ax, (ys[a.entity] as number) - ay)
  const db = Math.abs((xs[b.entity] as number) - bx)
  t.ok(Math.abs(da - AVATAR_SPEED * dt) < 1e-9, `diagonal: ${da}`)
  t.ok(Math.abs(db - AVATAR_SPEED * dt) < 1e-9, `straight: ${db}`)
  t.equal(a.appliedSeq, 1, 'the input was applied this tick')
})

t.test('walls stop avatars; avatars push each other apart', async (t) => {
  const { r, a, b, xs, ys } = twoAvatars()
  xs[a.entity] = AVATAR_RADIUS + 1
  ys[a.entity] = 300
  a.input.set([-100, 0])
  a.inputSeq = 1
  r.step(1, 1)
  t.equal(xs[a.entity], AVATAR_RADIUS, 'clamped at the left wall')
  a.input.set([0, 0])
  a.inputSeq = 2
  xs[a.entity] = 500
  ys[a.entity] = 500
  xs[b.entity] = 510
  ys[b.entity] = 500
  r.step(0.001, 2) // the grid is rebuilt after each step; collisions use the previous one
  r.step(0.001, 3)
  const d = Math.hypot((xs[b.entity] as number) - (xs[a.entity] as number), (ys[b.entity] as number) - (ys[a.entity] as number))
  t.ok(d >= 2 * AVATAR_RADIUS - 1e-6, `pushed apart to ${d.toFixed(2)}`)
})

t.test('touching an orb scores and respawns it as a new entity', async (t) => {
  const r = room()
  const a = r.join(1, 'a')
  if (!a) throw new Error('no seat')
  const kind = r.world.column('kind')
  const xs = r.world.column('x')
  const ys = r.world.column('y')
  let orb = -1
  for (let e = 0; e < r.world.capacity; e++) if (r.world.alive[e] === 1 && kind[e] === Kind.ORB) orb = e
  xs[a.entity] = xs[orb] as number
  ys[a.entity] = ys[orb] as number
  const gen = r.world.generation[orb]
  r.grid.rebuild()
  r.step(0.001, 1)
  t.equal(r.world.column('score')[a.entity], 1)
  t.equal(r.world.count, 61, 'one orb out, one in')
  t.not(r.world.generation[orb], gen, 'the freed slot was reused by a new orb (new generation)')
})
