/**
 * Entity storage for one room as a struct of arrays: one Float64Array per
 * declared field, indexed by entity id. Ids are slots in [0, capacity); a
 * slot's generation changes on every spawn so replication can tell a new
 * entity from an old one that had the same id.
 */
export class World {
  readonly capacity: number
  readonly fieldNames: readonly string[]
  /** One column per field, in declaration order. */
  readonly columns: readonly Float64Array[]
  /** 1 while the slot holds an entity. */
  readonly alive: Uint8Array
  /** Spawn counter of each slot; 0 never spawned. */
  readonly generation: Uint32Array
  /** Called after a slot is freed (the room clears the entity's props there). */
  onDespawn: ((id: number) => void) | null = null
  #count = 0
  #spawns = 0
  readonly #free: Int32Array
  #freeTop: number

  constructor(capacity: number, fieldNames: readonly string[]) {
    this.capacity = capacity
    this.fieldNames = fieldNames
    this.columns = fieldNames.map(() => new Float64Array(capacity))
    this.alive = new Uint8Array(capacity)
    this.generation = new Uint32Array(capacity)
    this.#free = new Int32Array(capacity)
    // Pop order 0, 1, 2, ...: low ids first keeps ids (and their MessagePack encodings) small.
    for (let i = 0; i < capacity; i++) this.#free[i] = capacity - 1 - i
    this.#freeTop = capacity
  }

  get count(): number {
    return this.#count
  }

  /** The column of a field by name; throws for an unknown name (a set-up error). */
  column(name: string): Float64Array {
    const i = this.fieldNames.indexOf(name)
    const col = this.columns[i]
    if (!col) throw new Error(`unknown field ${JSON.stringify(name)}`)
    return col
  }

  /** Allocates an entity with every field 0; returns its id, or -1 when the world is full. */
  spawn(): number {
    if (this.#freeTop === 0) return -1
    const id = this.#free[--this.#freeTop] as number
    this.alive[id] = 1
    this.generation[id] = ++this.#spawns
    for (const col of this.columns) col[id] = 0
    this.#count++
    return id
  }

  despawn(id: number): void {
    if (this.alive[id] !== 1) return
    this.alive[id] = 0
    this.#free[this.#freeTop++] = id
    this.#count--
    this.onDespawn?.(id)
  }
}
