/**
 * The naive encodings the codec is compared with, built from what a client
 * table holds after a frame: the full visible state as objects (for JSON) and
 * the frame's delta as objects (for msgpackr). Values are dequantized, as a
 * server without a custom codec would send them.
 */
import type { EntityTable, EntityValues } from '../../src/client/table.js'
import type { FieldSpec, StateFrame } from '../../proto/index.js'

type PlainEntity = Record<string, number>

/** `{id, <field>: value, ...}` with every field, e.g. `{id, kind, x, y, score}` for the reference game. */
function plainEntity(id: number, values: EntityValues, fields: readonly FieldSpec[]): PlainEntity {
  const o: PlainEntity = { id }
  for (let f = 0; f < fields.length; f++) {
    const spec = fields[f] as FieldSpec
    o[spec.name] = (values[f] as number) * spec.quantum
  }
  return o
}

function entityValues(table: EntityTable, id: number): EntityValues {
  const values = table.entities.get(id)
  if (!values) throw new Error(`entity ${id} is not in the client table`)
  return values
}

/** Every entity the table holds, as plain objects. */
export function plainFullState(table: EntityTable): PlainEntity[] {
  const out: PlainEntity[] = []
  for (const [id, values] of table.entities) out.push(plainEntity(id, values, table.fields))
  return out
}

/**
 * `frame` (already applied to `table`) as `{tick, base, inputSeq, removed: [id...],
 * changed: [{id, <changed field>: new value...}...], created: [{id, <field>: value...}...]}`.
 */
export function plainDelta(frame: StateFrame, table: EntityTable): object {
  const fields = table.fields
  // Frame ids are gaps from the previous id of the same list.
  const changed: PlainEntity[] = []
  let id = 0
  for (let i = 0; i < frame.changed.length; ) {
    id += frame.changed[i++] as number
    const mask = frame.changed[i++] as number
    const values = entityValues(table, id)
    const o: PlainEntity = { id }
    for (let f = 0; f < fields.length; f++) {
      if ((mask & (1 << f)) === 0) continue
      const spec = fields[f] as FieldSpec
      o[spec.name] = (values[f] as number) * spec.quantum
      i++
    }
    changed.push(o)
  }
  const created: PlainEntity[] = []
  id = 0
  for (let i = 0; i < frame.created.length; i += 1 + fields.length) {
    id += frame.created[i] as number
    created.push(plainEntity(id, entityValues(table, id), fields))
  }
  id = 0
  const removed = frame.removed.map((gap) => (id += gap))
  return { tick: frame.tick, base: frame.baseTick, inputSeq: frame.inputSeq, removed, changed, created }
}
