/**
 * Entity storage for one room as a struct of arrays: one Float64Array per
 * declared field, indexed by entity id. Ids are slots in [0, capacity); a
 * slot's generation changes on every spawn so replication can tell a new
 * entity from an old one that had the same id.
 *
 * `F` is the union of field names (`World<'x' | 'y'>`), so a misspelt field
 * is a compile error; the accessors (`get`, `set`, `add`, `field`) compile
 * under `noUncheckedIndexedAccess`, where `column('x')[e]` reads as
 * `number | undefined`.
 *
 * @example
 * ```ts
 * createRoom: (ctx: RoomContext<'x' | 'y'>) => {
 *   const x = ctx.world.field('x') // once, at room creation
 *   return { ..., step: (dt) => { for (const e of movers) x.add(e, 10 * dt) } }
 * }
 * ```
 */
export class World<F extends string = string> {
  readonly capacity: number
  readonly fieldNames: readonly F[]
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

  /** Column and accessor per name, on a prototype-less object: `get` costs one keyed lookup, no search. */
  readonly #byName: Record<string, Float64Array | undefined> = Object.create(null)
  readonly #fields: Record<string, WorldField | undefined> = Object.create(null)

  constructor(capacity: number, fieldNames: readonly F[]) {
    this.capacity = capacity
    this.fieldNames = fieldNames
    this.columns = fieldNames.map(() => new Float64Array(capacity))
    fieldNames.forEach((name, i) => {
      const col = this.columns[i] as Float64Array
      this.#byName[name] = col
      this.#fields[name] = new WorldField(name, col)
    })
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
  column(name: F): Float64Array {
    const col = this.#byName[name]
    if (!col) throw new Error(`unknown field ${JSON.stringify(name)}`)
    return col
  }

  /**
   * A field's accessor (`get`, `set`, `add` by entity id), made once per
   * field: fetch it at room creation and use it in `step`. Throws for an
   * unknown name.
   */
  field(name: F): WorldField {
    const f = this.#fields[name]
    if (!f) throw new Error(`unknown field ${JSON.stringify(name)}`)
    return f
  }

  /** Entity `e`'s value of `field`. Throws RangeError for an id outside [0, capacity), Error for an unknown field. */
  get(e: number, field: F): number {
    return this.#col(field)[checkId(e, this.capacity)] as number
  }

  /** Sets entity `e`'s `field` to `v`. Throws as `get` does. */
  set(e: number, field: F, v: number): void {
    this.#col(field)[checkId(e, this.capacity)] = v
  }

  /** Adds `dv` to entity `e`'s `field` and returns the new value. Throws as `get` does. */
  add(e: number, field: F, dv: number): number {
    const col = this.#col(field)
    const i = checkId(e, this.capacity)
    return (col[i] = (col[i] as number) + dv)
  }

  #col(field: string): Float64Array {
    const col = this.#byName[field]
    if (col === undefined) throw new Error(`unknown field ${JSON.stringify(field)}`)
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

/** `e` if it is an entity id of a world of `capacity` slots; else a RangeError (a typed array would ignore the write). */
function checkId(e: number, capacity: number): number {
  if (e >>> 0 !== e || e >= capacity) throw new RangeError(`entity id ${e} is not an integer in [0, ${capacity})`)
  return e
}

/** One field's values by entity id (see `World.field`); ids are checked as `World.get` checks them. */
export class WorldField {
  readonly name: string
  /** The column itself, for loops that check ids themselves. */
  readonly column: Float64Array

  constructor(name: string, column: Float64Array) {
    this.name = name
    this.column = column
  }

  get(e: number): number {
    return this.column[checkId(e, this.column.length)] as number
  }

  set(e: number, v: number): void {
    this.column[checkId(e, this.column.length)] = v
  }

  /** Adds `dv` and returns the new value. */
  add(e: number, dv: number): number {
    const i = checkId(e, this.column.length)
    return (this.column[i] = (this.column[i] as number) + dv)
  }
}
