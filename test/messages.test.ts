/** Game messages and props at their edges: the props snapshot and the outbox bound, dead entities, a resume across protocol versions. */
import t from 'tap'
import { WebSocket } from 'ws'
import { CloseCode } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import type { Game, RoomContext } from '../src/sim/game.js'
import { Room } from '../src/sim/room.js'
import { dropTcp, sample, startTest, waitFor } from './helpers/server.js'

const NPCS = 40
let ctxOf: RoomContext | null = null

/** Players and NPCs that all carry a label prop; the NPCs get theirs when the room is made. */
const labelled: Game = {
  name: 'labelled',
  fields: [{ name: 'x', quantum: 1 }, { name: 'y', quantum: 1 }],
  input: [],
  props: [{ name: 'label', type: 'string', maxBytes: 16 }],
  messages: [{ name: 'note', fields: [{ name: 'n', type: 'int', min: 0, max: 1000 }] }],
  position: ['x', 'y'],
  layout: (maxPlayers) => ({ capacity: maxPlayers + NPCS, width: 100, height: 100 }),
  createRoom: (ctx) => {
    ctxOf = ctx
    for (let i = 0; i < NPCS; i++) ctx.setProps(ctx.world.spawn(), { label: `npc ${i}` })
    return {
      join: (name) => {
        const e = ctx.world.spawn()
        if (e >= 0) ctx.setProps(e, { label: name })
        return e
      },
      leave: (e) => ctx.world.despawn(e),
      input: () => {},
      step: () => {},
    }
  },
}

t.test('a newcomer\'s props snapshot is not counted against --outbox-frames; what comes after is', async (t) => {
  const tw = await startTest({ outboxFrames: 16, resumeWindow: 30 }, { game: labelled })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { room: 'npcs', name: 'ada' })
  t.teardown(() => c.close())
  await waitFor(() => c.props.size === NPCS + 1, 10_000, 'every label')
  t.equal(c.props.get(0)?.label, 'npc 0', 'an NPC\'s label, set before anyone joined')
  t.equal(c.props.get(c.welcome.entityId)?.label, 'ada')
  await new Promise((r) => setTimeout(r, 300))
  t.notOk(c.closed || c.reconnecting, `${NPCS + 1} snapshot frames with --outbox-frames 16: still playing`)
  t.equal(sample(await tw.metrics.text(), 'tickwire_outbox_overflows_total'), 0)
})

t.test('setProps of an entity that is not alive throws, naming it', async (t) => {
  new Room('r', false, labelled, 4, 50, 1)
  const ctx = ctxOf as RoomContext
  t.throws(() => ctx.setProps(-1, { label: 'x' }), { name: 'TypeError', message: /setProps: entity -1 is not alive/ })
  t.throws(() => ctx.setProps(NPCS + 3, { label: 'x' }), { name: 'TypeError', message: /is not alive/ }, 'a free slot')
  t.throws(() => ctx.setProps(0, { label: 'x'.repeat(17) }), { name: 'TypeError', message: /value label must be at most 16 bytes/ })
  t.throws(() => ctx.send(0, 'nope', {}), { name: 'TypeError', message: /unknown message "nope"/ })
  t.equal(ctx.send(0, 'note', { n: 1 }), false, 'to an entity no player plays: false')
})

t.test('a protocol 2 connection cannot resume a seat that has a message stream', async (t) => {
  const tw = await startTest({ resumeWindow: 30 }, { game: labelled })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { room: 'mixed', name: 'ada', reconnect: false })
  const { playerId, resumeToken } = c.welcome
  const gone = new Promise<void>((r) => c.on('close', () => r()))
  dropTcp(c)
  await gone
  await waitFor(() => tw.server.held === 1, 5000, 'the seat to be held')
  const old = new WebSocket(`${tw.url}?room=mixed&player=${playerId}&resume=${encodeURIComponent(resumeToken)}&v=2`)
  const code = await new Promise<number>((r) => old.on('close', (k) => r(k)))
  t.equal(code, CloseCode.RESUME_EXPIRED, 'refused: it would never read the stream')
})

t.test('validateGame refuses bad message and props declarations at start, naming what is wrong', async (t) => {
  const { validateGame } = await import('../src/sim/game.js')
  const bad = (over: Partial<Game>) => () => validateGame({ ...labelled, ...over }, 4)
  t.doesNotThrow(bad({}), 'the fixture itself is fine')
  const chat = (fields: unknown) => ({ messages: [{ name: 'chat', fields }] as never })
  t.throws(bad({ messages: [{ name: 'a', fields: [] }, { name: 'a', fields: [] }] }), { message: /messages: message a is declared twice/ })
  t.throws(bad({ messages: [{ name: '9lives', fields: [] }] }), { message: /messages: message name "9lives" must be 1-32 characters/ })
  t.throws(bad({ clientMessages: 'chat' as never }), { message: /clientMessages must be an array/ })
  t.throws(bad(chat([{ name: 'n', type: 'int', min: 5, max: 1 }])), { message: /messages chat: value n: int needs safe integers min <= max, got \[5, 1\]/ })
  t.throws(bad(chat([{ name: 's', type: 'string', maxBytes: 0 }])), { message: /value s: string needs maxBytes from 1 to 1024, got 0/ })
  t.throws(bad(chat([{ name: 'x', type: 'float' }])), { message: /value x: type must be 'int', 'number', 'string' or 'bool', got "float"/ })
  t.throws(bad(chat([{ name: 'x', type: 'bool' }, { name: 'x', type: 'bool' }])), { message: /messages chat: value x is declared twice/ })
  t.throws(bad(chat(Array.from({ length: 33 }, (_, i) => ({ name: `v${i}`, type: 'bool' })))), { message: /at most 32 values, has 33/ })
  t.throws(bad(chat(Array.from({ length: 5 }, (_, i) => ({ name: `s${i}`, type: 'string', maxBytes: 1000 })))), { message: /its largest frame would be \d+ bytes, more than 4096/ })
  t.throws(bad({ props: [{ name: 'p', type: 'int', min: 0, max: 1.5 }] }), { message: /props: value p: int needs safe integers/ })
})
