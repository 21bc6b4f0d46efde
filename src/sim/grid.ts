/**
 * Uniform spatial grid, rebuilt each tick by counting sort (no allocation):
 * the entities of cell c are `items[cellStart[c] .. cellStart[c + 1])`.
 * Used for collision queries and for each player's area of interest.
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
