/**
 * SDK input checks (issue 12): `sendInput` refuses values the server would
 * close the session for (BAD_INPUT), naming the input, without sending; and
 * `joinProblem`, the page's check of an invite link before it connects.
 */
import t from 'tap'
import { TickwireClient, joinProblem } from '../src/client/index.js'
import { parseSamples, startTest, waitFor } from './helpers/server.js'

t.test('a bad input throws a RangeError naming it; nothing is sent and the session stays open', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(`${tw.url}?room=inputs`, { reconnect: false })
  t.teardown(() => c.close())
  const spec = c.welcome.input
  t.equal(spec.length, 2, 'the arena takes two input values')
  const [mx, my] = spec as [(typeof spec)[number], (typeof spec)[number]]

  const bad: [string, number[], RegExp][] = [
    ['NaN', [NaN, 0], new RegExp(`^input "${mx.name}" \\(index 0\\) must be an integer from ${mx.min} to ${mx.max}, got NaN$`)],
    ['a float', [0, 1.5], new RegExp(`^input "${my.name}" \\(index 1\\) must be an integer .* got 1\\.5$`)],
    ['Infinity', [Infinity, 0], new RegExp(`^input "${mx.name}" \\(index 0\\) .* got Infinity$`)],
    ['above max', [0, my.max + 1], new RegExp(`^input "${my.name}" \\(index 1\\) .* got ${my.max + 1}$`)],
    ['below min', [mx.min - 1, 0], new RegExp(`^input "${mx.name}" \\(index 0\\) .* got ${mx.min - 1}$`)],
    ['too few', [0], new RegExp(`^sendInput takes 2 values \\("${mx.name}", "${my.name}"\\), got 1$`)],
    ['too many', [0, 0, 0], /^sendInput takes 2 values .*, got 3$/],
  ]
  for (const [what, values, message] of bad) {
    t.throws(() => c.sendInput(values), { name: 'RangeError', message }, `${what}: RangeError naming the input`)
  }
  t.equal(c.inputSeq, 0, 'no sequence number was spent on a refused input')

  const seq = c.sendInput([mx.max, my.min])
  t.equal(seq, 1)
  await waitFor(() => c.serverInputSeq >= seq, 10_000, 'the server to apply the valid input')
  t.notOk(c.closed, 'the session is still open')
  t.equal(c.serverInputSeq, seq, 'the valid input after the refused ones was applied')

  const m = parseSamples(await tw.metrics.text())
  const rejected = [...m].filter(([k]) => k.startsWith('tickwire_inputs_rejected_total'))
  t.ok(rejected.length > 0, 'the rejection counter is exported')
  t.same(
    rejected.filter(([, v]) => v !== 0),
    [],
    'the server rejected nothing',
  )
})

t.test('joinProblem: what the server refuses with HTTP 400, said before connecting', async (t) => {
  t.equal(joinProblem({}), null, 'quick play, no name')
  t.equal(joinProblem({ room: 'abc_DEF-123', name: 'ada' }), null)
  t.equal(joinProblem({ room: 'x'.repeat(32) }), null, '32 characters is the limit')
  t.match(joinProblem({ room: 'bad room!' }), /^invalid room code "bad room!": /)
  t.match(joinProblem({ room: '' }), /^invalid room code/)
  t.match(joinProblem({ room: 'x'.repeat(33) }), /^invalid room code/)
  t.equal(joinProblem({ name: 'é'.repeat(16) }), null, '32 bytes of UTF-8')
  t.match(joinProblem({ name: 'é'.repeat(17) }), /^invalid name: at most 32 bytes/)
  t.match(joinProblem({ name: 'a\nb' }), /^invalid name: .*control characters/)
})

t.test('joinProblem agrees with the server: the room it refuses gets HTTP 400, the one it passes joins', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const bad = 'bad room!'
  t.not(joinProblem({ room: bad }), null)
  await t.rejects(TickwireClient.connect(tw.url, { room: bad, reconnect: false }), { name: 'ConnectError', status: 400 }, 'the server refuses it with 400')
  t.equal(joinProblem({ room: 'ok-room' }), null)
  const c = await TickwireClient.connect(tw.url, { room: 'ok-room', reconnect: false })
  t.teardown(() => c.close())
  t.equal(c.welcome.roomId, 'ok-room')
})
