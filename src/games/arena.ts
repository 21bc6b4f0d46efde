/**
 * The reference game: a top-down arena. Each player steers an avatar with a
 * move vector; avatars collide with the walls and with each other; orbs drift
 * around and bounce off the walls; touching an orb scores a point and the orb
 * respawns elsewhere (so entities appear and disappear all the time).
 *
 * Input `[mx, my]`: integers in [-100, 100], the stick position in percent of
 * full speed. The server clamps the vector's length to 100, so no input moves
 * an avatar faster than `AVATAR_SPEED`.
 */
import { MAX_NAME_BYTES } from '../../proto/index.js'
import type { Game, GameRoom, RoomContext, RoomLayout } from '../sim/game.js'
import type { Grid } from '../sim/grid.js'
import type { World } from '../sim/world.js'

/** Values of the `kind` field. */
export const Kind = { AVATAR: 0, ORB: 1 } as const

export const AVATAR_RADIUS = 20 // world units
export const AVATAR_SPEED = 220 // world units per second at full stick
export const ORB_RADIUS = 8 // world units
export const ORB_SPEED_MIN = 40 // world units per second
export const ORB_SPEED_MAX = 90 // world units per second
/** World side per sqrt(entity): about one entity per 130 x 130 units. */
const SPACING = 130

/**
 * An avatar's velocity (world units per second) for a stick input: the
 * vector's length is clamped to 100, so a diagonal is no faster. Shared with
 * the browser client's prediction, so both move an avatar alike.
 */
export function stickVelocity(mx: number, my: number, out: { vx: number; vy: number } = { vx: 0, vy: 0 }): { vx: number; vy: number } {
  const len = Math.sqrt(mx * mx + my * my)
  const k = len > 100 ? 100 / len : 1
  out.vx = ((mx * k) / 100) * AVATAR_SPEED
  out.vy = ((my * k) / 100) * AVATAR_SPEED
  return out
}

/** Scratch for `input`: no allocation per input. */
const velocity = { vx: 0, vy: 0 }

export function arenaLayout(maxPlayers: number): RoomLayout & { orbs: number } {
  const orbs = Math.max(60, 2 * maxPlayers)
  const side = Math.round(SPACING * Math.sqrt(maxPlayers + orbs))
  return { capacity: maxPlayers + orbs, width: side, height: side, orbs }
}

export const arena: Game = {
  name: 'arena',
  fields: [
    { name: 'kind', quantum: 1 },
    { name: 'x', quantum: 0.25 },
    { name: 'y', quantum: 0.25 },
    { name: 'score', quantum: 1 },
  ],
  input: [
    { name: 'mx', min: -100, max: 100 },
    { name: 'my', min: -100, max: 100 },
  ],
  position: ['x', 'y'],
  layout: arenaLayout,
  // Each avatar's player name (the join's name; '' when none), so pages can label avatars.
  props: [{ name: 'name', type: 'string', maxBytes: MAX_NAME_BYTES }],
  createRoom: (ctx) => new ArenaRoom(ctx),
}

class ArenaRoom implements GameRoom {
  readonly #world: World
  readonly #grid: Grid
  readonly #random: () => number
  readonly #side: number
  readonly #kind: Float64Array
  readonly #x: Float64Array
  readonly #y: Float64Array
  readonly #score: Float64Array
  readonly #vx: Float64Array
  readonly #vy: Float64Array
  readonly #setProps: RoomContext['setProps']

  constructor({ world, grid, random, maxPlayers, setProps }: RoomContext) {
    this.#setProps = setProps
    this.#world = world
    this.#grid = grid
    this.#random = random
    const { width, orbs } = arenaLayout(maxPlayers)
    this.#side = width
    this.#kind = world.column('kind')
    this.#x = world.column('x')
    this.#y = world.column('y')
    this.#score = world.column('score')
    this.#vx = new Float64Array(world.capacity)
    this.#vy = new Float64Array(world.capacity)
    for (let i = 0; i < orbs; i++) this.#spawnOrb()
  }

  #spawnOrb(): number {
    const id = this.#world.spawn()
    if (id < 0) return id
    const r = this.#random
    this.#kind[id] = Kind.ORB
    this.#x[id] = ORB_RADIUS + r() * (this.#side - 2 * ORB_RADIUS)
    this.#y[id] = ORB_RADIUS + r() * (this.#side - 2 * ORB_RADIUS)
    const a = r() * Math.PI * 2
    const s = ORB_SPEED_MIN + r() * (ORB_SPEED_MAX - ORB_SPEED_MIN)
    this.#vx[id] = Math.cos(a) * s
    this.#vy[id] = Math.sin(a) * s
    return id
  }

  join(name: string): number {
    const id = this.#world.spawn()
    if (id < 0) return -1
    this.#setProps(id, { name })
    this.#kind[id] = Kind.AVATAR
    this.#x[id] = AVATAR_RADIUS + this.#random() * (this.#side - 2 * AVATAR_RADIUS)
    this.#y[id] = AVATAR_RADIUS + this.#random() * (this.#side - 2 * AVATAR_RADIUS)
    this.#vx[id] = 0
    this.#vy[id] = 0
    return id
  }

  leave(entity: number): void {
    this.#world.despawn(entity)
  }

  input(entity: number, values: Int32Array): void {
    stickVelocity(values[0] as number, values[1] as number, velocity)
    this.#vx[entity] = velocity.vx
    this.#vy[entity] = velocity.vy
  }

  step(dt: number): void {
    const world = this.#world
    const { alive, capacity } = world
    const kind = this.#kind
    const xs = this.#x
    const ys = this.#y
    const vx = this.#vx
    const vy = this.#vy
    const side = this.#side
    for (let e = 0; e < capacity; e++) {
      if (alive[e] !== 1) continue
      const r = kind[e] === Kind.AVATAR ? AVATAR_RADIUS : ORB_RADIUS
      let x = (xs[e] as number) + (vx[e] as number) * dt
      let y = (ys[e] as number) + (vy[e] as number) * dt
      const bounce = kind[e] === Kind.ORB
      if (x < r) {
        x = r
        if (bounce) vx[e] = -(vx[e] as number)
      } else if (x > side - r) {
        x = side - r
        if (bounce) vx[e] = -(vx[e] as number)
      }
      if (y < r) {
        y = r
        if (bounce) vy[e] = -(vy[e] as number)
      } else if (y > side - r) {
        y = side - r
        if (bounce) vy[e] = -(vy[e] as number)
      }
      xs[e] = x
      ys[e] = y
    }
    this.#collide()
  }

  /** Avatar-avatar push-apart and avatar-orb pickups, using last tick's grid (cells are >= 2 radii wide). */
  #collide(): void {
    const grid = this.#grid
    const { cellStart, items, cellOf, cols, rows } = grid
    const { alive, capacity } = this.#world
    const kind = this.#kind
    const xs = this.#x
    const ys = this.#y
    const side = this.#side
    for (let a = 0; a < capacity; a++) {
      if (alive[a] !== 1 || kind[a] !== Kind.AVATAR) continue
      const c = cellOf[a] as number
      if (c < 0) continue
      const cx = c % cols
      const cy = (c - cx) / cols
      for (let dy = -1; dy <= 1; dy++) {
        const ny = cy + dy
        if (ny < 0 || ny >= rows) continue
        for (let dx = -1; dx <= 1; dx++) {
          const nx = cx + dx
          if (nx < 0 || nx >= cols) continue
          const cell = ny * cols + nx
          for (let k = cellStart[cell] as number, end = cellStart[cell + 1] as number; k < end; k++) {
            const b = items[k] as number
            if (b === a || alive[b] !== 1) continue
            const ddx = (xs[b] as number) - (xs[a] as number)
            const ddy = (ys[b] as number) - (ys[a] as number)
            const d2 = ddx * ddx + ddy * ddy
            if (kind[b] === Kind.ORB) {
              const rr = AVATAR_RADIUS + ORB_RADIUS
              if (d2 < rr * rr) {
                this.#score[a] = (this.#score[a] as number) + 1
                this.#world.despawn(b)
                this.#spawnOrb()
              }
            } else if (b > a) {
              const rr = 2 * AVATAR_RADIUS
              if (d2 < rr * rr) {
                const d = Math.sqrt(d2) || 1e-6
                const push = (rr - d) / 2
                const ux = d2 > 0 ? ddx / d : 1
                const uy = d2 > 0 ? ddy / d : 0
                xs[a] = clamp((xs[a] as number) - ux * push, AVATAR_RADIUS, side - AVATAR_RADIUS)
                ys[a] = clamp((ys[a] as number) - uy * push, AVATAR_RADIUS, side - AVATAR_RADIUS)
                xs[b] = clamp((xs[b] as number) + ux * push, AVATAR_RADIUS, side - AVATAR_RADIUS)
                ys[b] = clamp((ys[b] as number) + uy * push, AVATAR_RADIUS, side - AVATAR_RADIUS)
              }
            }
          }
        }
      }
    }
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v
}
