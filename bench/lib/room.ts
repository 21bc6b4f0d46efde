/**
 * The benchmark's room: the reference game with every seat taken, players
 * steering like real clients, and the area of interest computed independently
 * of the replicator (to calibrate its size and to check what it sends).
 */
import { AVATAR_RADIUS, arena, arenaLayout } from '../../src/games/arena.js'
import type { Grid } from '../../src/sim/grid.js'
import { mulberry32 } from '../../src/sim/random.js'
import { Room, type Seat } from '../../src/sim/room.js'

/** A room of the reference game with all `players` seats taken and the grid current. */
export function fullRoom(players: number, cellSize: number, seed: number): Room {
  const room = new Room('bench', false, arena, players, cellSize, seed)
  for (let i = 1; i <= players; i++) {
    if (!room.join(i, `p${i}`)) throw new Error(`seat ${i} of ${players} refused`)
  }
  room.grid.rebuild()
  return room
}

/**
 * Fills `out` with the entities `entity` sees: everything in the 3x3 grid
 * cells around its own (itself included), the replicator's area of interest.
 */
export function neighborhood(grid: Grid, entity: number, out: number[]): number[] {
  out.length = 0
  const cell = grid.cellOf[entity] as number
  if (cell < 0) return out
  const cx = cell % grid.cols
  const cy = (cell - cx) / grid.cols
  for (let ny = Math.max(0, cy - 1); ny <= Math.min(grid.rows - 1, cy + 1); ny++) {
    for (let nx = Math.max(0, cx - 1); nx <= Math.min(grid.cols - 1, cx + 1); nx++) {
      const c = ny * grid.cols + nx
      for (let k = grid.cellStart[c] as number; k < (grid.cellStart[c + 1] as number); k++) out.push(grid.items[k] as number)
    }
  }
  return out
}

/** Seconds a player holds one stick direction. */
const HOLD_SECONDS = 2

/**
 * One tick of play: every player sends one input, like a client sending its
 * stick every frame (each holds a random direction at full speed and picks a
 * new one every HOLD_SECONDS, staggered over players), then the room steps.
 */
export function playTick(room: Room, tick: number, tickHz: number, random: () => number): void {
  const seats = room.seats
  const hold = HOLD_SECONDS * tickHz
  for (let i = 0; i < seats.length; i++) {
    const seat = seats[i] as Seat
    if (seat.inputSeq === 0 || (tick + i) % hold === 0) {
      const a = random() * 2 * Math.PI
      seat.input[0] = Math.round(100 * Math.cos(a))
      seat.input[1] = Math.round(100 * Math.sin(a))
    }
    seat.inputSeq++
  }
  room.step(1 / tickHz, tick)
}

/** Average number of entities a player of `room` sees. */
function averageVisible(room: Room): number {
  const ids: number[] = []
  let total = 0
  for (const seat of room.seats) total += neighborhood(room.grid, seat.entity, ids).length
  return total / room.seats.length
}

/** Average number of entities a player sees over ticks `settle + 1 .. settle + measure` of a full room's play. */
function playedAverageVisible(players: number, cellSize: number, seed: number, tickHz: number, settle: number, measure: number): number {
  const room = fullRoom(players, cellSize, seed)
  const random = mulberry32(seed)
  let sum = 0
  for (let tick = 1; tick <= settle + measure; tick++) {
    playTick(room, tick, tickHz, random)
    if (tick > settle) sum += averageVisible(room)
  }
  return sum / measure
}

/**
 * Grid cell size (the AOI radius) at which a full room's players see `target`
 * entities on average once play has settled, by bisection between the game's
 * smallest legal cell (two avatar radii, for its collision pass) and the
 * whole arena.
 */
export function calibrateCellSize(players: number, target: number, seed: number, tickHz: number): number {
  let lo = 2 * AVATAR_RADIUS
  let hi = arenaLayout(players).width
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (playedAverageVisible(players, mid, seed, tickHz, 10 * tickHz, 2 * tickHz) < target) lo = mid
    else hi = mid
  }
  return hi
}
