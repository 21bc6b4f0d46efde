/**
 * The Colyseus peer's room state, shared by the server (./server.mjs) and the
 * bots (./adapter.mjs). Plain JavaScript with @colyseus/schema 4's `schema()`
 * (no decorators), so the root `tsc` never sees Colyseus.
 *
 * Field types are the lean ones a developer who cares picks (float32
 * positions, small integers), not the default "number" (9 bytes per float):
 * the comparison should not be against a straw man. x and y hold the world's
 * values rounded to the arena's quantum (0.25), the precision tickwire sends,
 * so an entity that did not move sends nothing.
 */
import { MapSchema, schema } from '@colyseus/schema'

/** The one room type the server defines and the bots join. */
export const ROOM_TYPE = 'arena'

/** One entity of the world, keyed by its id (as a string) in `ArenaState.entities`. */
export const Entity = schema({ kind: 'uint8', x: 'float32', y: 'float32', score: 'uint32' }, 'Entity')

/** One player, keyed by sessionId in `ArenaState.players`: its avatar and the newest input seq applied. */
export const Player = schema({ entity: 'uint16', seq: 'uint32' }, 'Player')

export const ArenaState = schema(
  {
    width: 'uint16',
    height: 'uint16',
    entities: { map: Entity, default: new MapSchema() },
    players: { map: Player, default: new MapSchema() },
  },
  'ArenaState',
)
