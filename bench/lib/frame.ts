/**
 * Reading STATE frames on the client side of the benchmark: where the bytes
 * go, and whether a client table built from them matches the server.
 */
import type { EntityTable } from '../../src/client/table.js'
import type { RoomReplicator } from '../../src/replicate/replicator.js'

/** Bytes of each part of one STATE frame; the parts add up to the frame. */
export interface FrameSections {
  /** Array header, type, tick, base tick, input sequence. */
  readonly header: number
  /** Each list counts its MessagePack array header too. */
  readonly removed: number
  readonly changed: number
  readonly created: number
}

/** Splits a STATE frame `[2, tick, base, inputSeq, removed[], changed[], created[]]` into its parts by walking its bytes. */
export function frameSections(frame: Uint8Array): FrameSections {
  let p = 2 // fixarray header and type
  for (let i = 0; i < 3; i++) p += intSize(frame, p)
  const header = p
  const removed = intArraySize(frame, p)
  const changed = intArraySize(frame, (p += removed))
  const created = intArraySize(frame, (p += changed))
  if (p + created !== frame.length) throw new Error(`STATE frame of ${frame.length} bytes has ${p + created} bytes of sections`)
  return { header, removed, changed, created }
}

/** Size of the MessagePack integer at `p`. */
function intSize(buf: Uint8Array, p: number): number {
  const b = buf[p] as number
  if (b < 0x80 || b >= 0xe0) return 1
  if (b === 0xcc || b === 0xd0) return 2
  if (b === 0xcd || b === 0xd1) return 3
  if (b === 0xce || b === 0xd2) return 5
  throw new Error(`byte ${p}: 0x${b.toString(16)} is not a MessagePack integer`)
}

/** Size of the MessagePack array of integers at `p`, header included. */
function intArraySize(buf: Uint8Array, p: number): number {
  const b = buf[p] as number
  let count: number
  let q: number
  if ((b & 0xf0) === 0x90) {
    count = b & 0x0f
    q = p + 1
  } else if (b === 0xdc) {
    count = ((buf[p + 1] as number) << 8) | (buf[p + 2] as number)
    q = p + 3
  } else {
    throw new Error(`byte ${p}: 0x${b.toString(16)} is not an array header of a STATE list`)
  }
  for (let i = 0; i < count; i++) q += intSize(buf, q)
  return q - p
}

/**
 * Throws unless `table` holds exactly the entities `visible` at tick `tick`,
 * each existing on the server with the server's quantized values.
 */
export function checkTable(table: EntityTable, tick: number, visible: readonly number[], rep: RoomReplicator, who: string): void {
  const fail = (why: string): never => {
    throw new Error(`client table of ${who} diverged from the server at tick ${tick}: ${why}`)
  }
  if (table.tick !== tick) fail(`table is at tick ${table.tick}`)
  if (table.entities.size !== visible.length) fail(`${table.entities.size} entities, the server shows ${visible.length}`)
  for (const id of visible) {
    const values = table.entities.get(id)
    if (!values) fail(`entity ${id} missing`)
    else if (!rep.exists(id)) fail(`entity ${id} does not exist on the server`)
    else {
      for (let f = 0; f < values.length; f++) {
        if (values[f] !== rep.value(id, f)) fail(`entity ${id} field ${f} is ${values[f]}, the server has ${rep.value(id, f)}`)
      }
    }
  }
}
