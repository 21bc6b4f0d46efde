/**
 * The client's copy of the replicated world: applies STATE frames to the
 * snapshot of their base tick. Keeps the snapshots of recent ticks, because
 * the server deltas against the last tick the client acknowledged, which may
 * be a few ticks older than the newest one applied.
 *
 * Snapshots share unchanged entity arrays, so keeping history costs one Map
 * per tick plus the entities that changed.
 */
import { ProtocolError, unzigzag, type FieldSpec, type StateFrame } from '../../proto/index.js'

/** Quantized field values of one entity, in field order (multiply by the field's quantum). */
export type EntityValues = Readonly<Int32Array>

export interface ApplyResult {
  readonly created: number[]
  readonly changed: number[]
  readonly removed: number[]
  /** True when the frame was a full state (baseTick 0). */
  readonly full: boolean
}

export class EntityTable {
  readonly fields: readonly FieldSpec[]
  readonly #keep: number
  readonly #history = new Map<number, Map<number, EntityValues>>()
  #current: Map<number, EntityValues> = new Map()
  #tick = 0

  /** @param keepTicks snapshots to keep: at least the server's `historyTicks`. */
  constructor(fields: readonly FieldSpec[], keepTicks: number) {
    this.fields = fields
    this.#keep = keepTicks
  }

  /** Forgets everything (a new connection starts from a full state). */
  reset(): void {
    this.#history.clear()
    this.#current = new Map()
    this.#tick = 0
  }

  /** Tick of the newest applied frame (0: none). */
  get tick(): number {
    return this.#tick
  }

  /** The entities as of the newest applied frame, by id. Do not mutate. */
  get entities(): ReadonlyMap<number, EntityValues> {
    return this.#current
  }

  /** Dequantized value of one field of one entity, or undefined. */
  get(id: number, field: string): number | undefined {
    const v = this.#current.get(id)
    const i = this.fields.findIndex((f) => f.name === field)
    if (!v || i < 0) return undefined
    return (v[i] as number) * (this.fields[i] as FieldSpec).quantum
  }

  /** Applies a STATE frame; throws ProtocolError when it does not fit (unknown base, bad layout). */
  apply(frame: StateFrame): ApplyResult {
    const F = this.fields.length
    let base: Map<number, EntityValues>
    if (frame.baseTick === 0) base = new Map()
    else {
      const b = this.#history.get(frame.baseTick)
      if (!b) throw new ProtocolError(`STATE ${frame.tick} is based on tick ${frame.baseTick}, which this client does not have`)
      base = b
    }
    if (frame.tick <= this.#tick) throw new ProtocolError(`STATE ${frame.tick} is not newer than ${this.#tick}`)
    const next = new Map(base)
    // Ids are gaps from the previous id of the same list (the first from 0).
    const removed: number[] = []
    let id = 0
    for (let i = 0; i < frame.removed.length; i++) {
      id = nextId(frame.tick, id, frame.removed[i] as number, i === 0)
      if (!next.delete(id)) throw new ProtocolError(`STATE ${frame.tick} removes unknown entity ${id}`)
      removed.push(id)
    }
    const changed: number[] = []
    const ch = frame.changed
    id = 0
    for (let i = 0; i < ch.length; ) {
      id = nextId(frame.tick, id, ch[i] as number, i++ === 0)
      const mask = ch[i++] as number
      const old = next.get(id)
      if (!old || mask === undefined) throw new ProtocolError(`STATE ${frame.tick} changes unknown entity ${id}`)
      const v = Int32Array.from(old)
      for (let f = 0; f < F; f++) {
        if ((mask & (1 << f)) === 0) continue
        const z = ch[i++]
        if (z === undefined) throw new ProtocolError(`STATE ${frame.tick}: changed list ends early`)
        v[f] = (v[f] as number) + unzigzag(z)
      }
      next.set(id, v)
      changed.push(id)
    }
    const created: number[] = []
    const cr = frame.created
    if (cr.length % (1 + F) !== 0) throw new ProtocolError(`STATE ${frame.tick}: created list length ${cr.length} is not a multiple of ${1 + F}`)
    id = 0
    for (let i = 0; i < cr.length; i += 1 + F) {
      id = nextId(frame.tick, id, cr[i] as number, i === 0)
      next.set(id, Int32Array.from(cr.slice(i + 1, i + 1 + F)))
      created.push(id)
    }
    this.#history.set(frame.tick, next)
    for (const t of this.#history.keys()) {
      if (t <= frame.tick - this.#keep) this.#history.delete(t)
    }
    this.#current = next
    this.#tick = frame.tick
    return { created, changed, removed, full: frame.baseTick === 0 }
  }
}

/** The id after `prev` given its gap; ids ascend strictly within a list, the first gap counts from 0. */
function nextId(tick: number, prev: number, gap: number, first: boolean): number {
  if (gap < (first ? 0 : 1)) throw new ProtocolError(`STATE ${tick}: entity ids must ascend (gap ${gap})`)
  return prev + gap
}
