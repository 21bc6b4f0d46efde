/**
 * Uniform spatial grid, rebuilt each tick by counting sort (no allocation):
 * the entities of cell c are `items[cellStart[c] .. cellStart[c + 1])`.
 * Used for collision queries and for each player's area of interest.
 *
 * Queries (`forEachNear`, `nearest`) take cell membership from the last
 * rebuild and distances from the position columns as they are now: an entity
 * spawned since the rebuild is not found, one despawned since is skipped, and
 * one that moved more than a cell since may be missed. tickwire rebuilds after
 * every step, so during `step` the grid holds the previous tick's positions.
 *
 * @example
 * ```ts
 * // Prepared once (a room field), so a query allocates nothing:
 * #hit = (e: number) => { if (e !== this.#me) this.#hits++ }
 * // In step():
 * this.#hits = 0
 * grid.forEachNear(x, y, 50, this.#hit)
 * const target = grid.nearest(x, y, 400, this.#isEnemy) // -1: none within 400 units
 * ```
 */
import type { World } from './world.js'

export class Grid {
  readonly cellSize: number
  readonly cols: number
  readonly rows: number
  readonly cellStart: Int32Array
  readonly items: Int32Array
  /** Cell of each entity at the last rebuild, -1 if not alive. */
  readonly cellOf: Int32Array
  readonly #xs: Float64Array
  readonly #ys: Float64Array
  readonly #world: World

  constructor(world: World, xField: string, yField: string, width: number, height: number, cellSize: number) {
    this.#world = world
    this.cellSize = cellSize
    this.cols = Math.max(1, Math.ceil(width / cellSize))
    this.rows = Math.max(1, Math.ceil(height / cellSize))
    this.cellStart = new Int32Array(this.cols * this.rows + 1)
    this.items = new Int32Array(world.capacity)
    this.cellOf = new Int32Array(world.capacity).fill(-1)
    this.#xs = world.column(xField)
    this.#ys = world.column(yField)
  }

  /** Cell index of a point, clamped to the grid (a NaN coordinate, a game bug, counts as 0). */
  cellAt(x: number, y: number): number {
    let cx = Math.floor(x / this.cellSize)
    let cy = Math.floor(y / this.cellSize)
    if (!(cx >= 0)) cx = 0
    else if (cx >= this.cols) cx = this.cols - 1
    if (!(cy >= 0)) cy = 0
    else if (cy >= this.rows) cy = this.rows - 1
    return cy * this.cols + cx
  }

  /**
   * Calls `fn(entity, distanceSquared)` for every live entity within `radius`
   * world units of (x, y), the point included (distance <= radius, exact).
   * Order: cell by cell (row-major), ascending ids within a cell. Allocates
   * nothing; cost grows with the cells the radius covers. A negative or NaN
   * radius, or a NaN point, finds nothing; an entity with a NaN position is
   * never found. `fn` may despawn entities (they are skipped once dead) but
   * an entity spawned during the query is not found.
   */
  forEachNear(x: number, y: number, radius: number, fn: (entity: number, distanceSquared: number) => void): void {
    if (!(radius >= 0) || x !== x || y !== y) return
    const cs = this.cellSize
    const cols = this.cols
    const x0 = clampIndex(Math.floor((x - radius) / cs), cols)
    const x1 = clampIndex(Math.floor((x + radius) / cs), cols)
    const y0 = clampIndex(Math.floor((y - radius) / cs), this.rows)
    const y1 = clampIndex(Math.floor((y + radius) / cs), this.rows)
    const r2 = radius * radius
    const { cellStart, items } = this
    const alive = this.#world.alive
    const xs = this.#xs
    const ys = this.#ys
    for (let cy = y0; cy <= y1; cy++) {
      for (let cx = x0; cx <= x1; cx++) {
        const cell = cy * cols + cx
        for (let k = cellStart[cell] as number, end = cellStart[cell + 1] as number; k < end; k++) {
          const e = items[k] as number
          if (alive[e] !== 1) continue
          const dx = (xs[e] as number) - x
          const dy = (ys[e] as number) - y
          const d2 = dx * dx + dy * dy
          if (d2 <= r2) fn(e, d2)
        }
      }
    }
  }

  /**
   * The live entity nearest to (x, y) within `radius` world units (and, when
   * given, for which `filter(entity)` is true), or -1 if there is none. Ties
   * go to the lower id. Allocates nothing; scans the cells the radius covers,
   * so prefer a radius that fits the question over Infinity.
   */
  nearest(x: number, y: number, radius: number, filter?: (entity: number) => boolean): number {
    if (!(radius >= 0) || x !== x || y !== y) return -1
    // The scan is forEachNear's, with one callback made once; saved and restored, so a filter may query too.
    const savedBest = this.#best
    const savedD2 = this.#bestD2
    const savedFilter = this.#filter
    this.#best = -1
    this.#bestD2 = radius * radius
    this.#filter = filter
    this.forEachNear(x, y, radius, this.#consider)
    const best = this.#best
    this.#best = savedBest
    this.#bestD2 = savedD2
    this.#filter = savedFilter
    return best
  }

  // nearest()'s running answer, and its candidate check for forEachNear.
  #best = -1
  #bestD2 = 0
  #filter: ((entity: number) => boolean) | undefined = undefined
  readonly #consider = (e: number, d2: number): void => {
    if (d2 > this.#bestD2 || (d2 === this.#bestD2 && this.#best !== -1 && e > this.#best)) return
    if (this.#filter !== undefined && !this.#filter(e)) return
    this.#best = e
    this.#bestD2 = d2
  }

  rebuild(): void {
    const { alive, capacity } = this.#world
    const start = this.cellStart
    const cellOf = this.cellOf
    start.fill(0)
    for (let e = 0; e < capacity; e++) {
      if (alive[e] === 1) {
        const c = this.cellAt(this.#xs[e] as number, this.#ys[e] as number)
        cellOf[e] = c
        start[c + 1]!++
      } else cellOf[e] = -1
    }
    for (let c = 1; c < start.length; c++) start[c]! += start[c - 1] as number
    // Fill back to front so each cell's slice ends up in ascending id order.
    for (let e = capacity - 1; e >= 0; e--) {
      const c = cellOf[e] as number
      if (c >= 0) this.items[--start[c + 1]!] = e
    }
    // Each start[c + 1] now holds the first index of cell c: shift left by one.
    const n = start.length - 1
    for (let c = 0; c < n; c++) start[c] = start[c + 1] as number
    start[n] = this.#world.count
  }
}

/** A cell coordinate clamped into [0, n): out-of-world positions live in the edge cells (see cellAt). */
function clampIndex(c: number, n: number): number {
  return c >= n ? n - 1 : c >= 0 ? c : 0
}
