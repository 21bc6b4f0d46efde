/**
 * Typed entity access in the SDK (issue 12, part 8): `client.entity<F>(id)`
 * gives an entity's fields by name in world units, against a real server;
 * with `FieldNames<typeof game>` a wrong field name does not compile (the
 * typecheck that `npm test` runs first checks the `@ts-expect-error` below).
 */
import t from 'tap'
import { TickwireClient, type FieldNames } from '../src/client/index.js'
import type { Game } from '../src/sim/game.js'
import { otherGame } from './fixtures/other-game.js'
import { startTest } from './helpers/server.js'

/** The dots game with its fields declared `as const`, and a quantum that is not 1 for y. */
const dots = {
  ...otherGame,
  fields: [
    { name: 'x', quantum: 1 },
    { name: 'y', quantum: 0.5 },
  ] as const,
} satisfies Game

t.test('entity() names the fields and scales by the quantum; FieldNames types them', async (t) => {
  const tw = await startTest({}, { game: dots })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { reconnect: false })
  t.teardown(() => c.close())
  const me = c.welcome.entityId
  await new Promise<void>((resolve) => c.on('state', () => c.table.entities.has(me) && resolve()))
  type F = FieldNames<typeof dots>
  const e = c.entity<F>(me)
  const raw = c.table.entities.get(me)
  t.ok(e && raw, 'my entity is in view')
  t.equal(e?.x, (raw?.[0] ?? NaN) * 1, 'x: the quantized value times quantum 1')
  t.equal(e?.y, (raw?.[1] ?? NaN) * 0.5, 'y: the quantized value times quantum 0.5')
  t.same(Object.keys(e ?? {}), ['x', 'y'], 'one key per field, in wire order')
  // @ts-expect-error: the dots game has no field z
  t.equal(e?.z, undefined)
  t.equal(c.entity(123456), undefined, 'an entity not in view: undefined')
})
