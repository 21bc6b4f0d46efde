/**
 * Join options and refusals (issue 12, part 3), over real sockets: the SDK's
 * `joinOptions` reach the game's `join` as a plain object, bad `opts` get HTTP
 * 400 before the upgrade, and a game's refusal reaches the client as
 * JOIN_REFUSED (4016) with the game's reason, counted, never retried.
 */
import t from 'tap'
import { CloseCode } from '../proto/index.js'
import { ConnectError, TickwireClient, joinProblem } from '../src/client/index.js'
import type { Game, GameRoom, JoinOptions, PlayerIdentity } from '../src/sim/game.js'
import { otherGame } from './fixtures/other-game.js'
import { upgradeStatusAt } from './helpers/lb.js'
import { sample, startTest } from './helpers/server.js'

/** The dots game, with a join that records what it got and keeps a team at most one player big. */
function teamGame(seen: { name: string; identity: PlayerIdentity | undefined; options: JoinOptions }[]): Game {
  return {
    ...otherGame,
    name: 'teams',
    createRoom(ctx) {
      const inner = otherGame.createRoom(ctx)
      const teams = new Map<number, string>()
      const room: GameRoom = {
        join(name, identity, options = {}) {
          seen.push({ name, identity, options })
          const team = options.team
          if (team !== undefined && typeof team !== 'string') return { refuse: 'team must be a string' }
          if (team !== undefined && [...teams.values()].includes(team)) return { refuse: `team ${team} is full` }
          if (options.long === true) return { refuse: 'é'.repeat(100) }
          const e = inner.join(name, identity, options)
          if (typeof e === 'number' && e >= 0 && team !== undefined) teams.set(e, team)
          return e
        },
        leave(e) {
          teams.delete(e)
          inner.leave(e)
        },
        input: (e, v) => inner.input(e, v),
        step: (dt, tick) => inner.step(dt, tick),
      }
      return room
    },
  }
}

t.test('join options reach the game; a refusal reaches the client with its reason', async (t) => {
  const seen: { name: string; identity: PlayerIdentity | undefined; options: JoinOptions }[] = []
  const tw = await startTest({}, { game: teamGame(seen) })
  t.teardown(() => tw.stop())

  const a = await TickwireClient.connect(tw.url, { room: 'r1', name: 'ann', joinOptions: { team: 'red', level: 3, ready: true }, reconnect: false })
  t.teardown(() => a.close())
  t.same(seen.at(-1)?.options, { team: 'red', level: 3, ready: true }, 'the game got the options as sent')
  t.equal(seen.at(-1)?.name, 'ann')
  t.equal(Object.getPrototypeOf(seen.at(-1)?.options), null, 'a plain object without a prototype (no __proto__ tricks)')

  const refused = await TickwireClient.connect(tw.url, { room: 'r1', name: 'bob', joinOptions: { team: 'red' }, reconnect: false }).then(
    () => null,
    (err: unknown) => err,
  )
  t.ok(refused instanceof ConnectError, 'connect rejects')
  t.equal((refused as ConnectError).code, CloseCode.JOIN_REFUSED, 'close code 4016')
  t.match((refused as ConnectError).message, /team red is full/, "the game's reason is in the error")

  // Without options the game gets {}: its default is never needed.
  const c = await TickwireClient.connect(tw.url, { room: 'r1', name: 'cy', reconnect: false })
  t.teardown(() => c.close())
  t.same(seen.at(-1)?.options, {}, 'no opts: an empty object')

  // A reason longer than a close frame allows is cut at a character boundary, never sent broken.
  const long = await TickwireClient.connect(tw.url, { room: 'r2', joinOptions: { long: true }, reconnect: false }).then(
    () => null,
    (err: unknown) => err as ConnectError,
  )
  t.equal(long?.code, CloseCode.JOIN_REFUSED)
  t.match(long?.message, /é{61}/, 'the reason arrives as valid UTF-8, cut to 123 bytes (61 two-byte characters)')
  t.notMatch(long?.message, /é{62}/)

  const text = await tw.metrics.text()
  t.equal(sample(text, 'tickwire_disconnects_total{reason="join_refused"}'), 2, 'refusals are counted')
})

t.test('bad opts get HTTP 400 with the rule before any upgrade', async (t) => {
  const tw = await startTest({}, { game: teamGame([]) })
  t.teardown(() => tw.stop())
  const status = (query: string) => upgradeStatusAt(`${tw.url}?${query}`)
  const bad = ['[1,2]', '{"a":{"b":1}}', '{"a":null}', '{"1a":1}', 'not json', `{"s":"${'x'.repeat(129)}"}`, JSON.stringify(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]))), `{"a":"${'x'.repeat(600)}"}`]
  for (const opts of bad) {
    const res = await status(`v=3&opts=${encodeURIComponent(opts)}`)
    t.equal(res.status, 400, `opts=${opts.slice(0, 40)} -> 400`)
    t.match(res.body, /^opts must be a JSON object/, 'the body states the rule')
  }
  t.equal((await status(`v=3&opts=${encodeURIComponent('{"team":"red"}')}`)).status, 0, 'good opts upgrade')
  t.equal(joinProblem({ joinOptions: { '1a': 1 } })?.startsWith('invalid join option name'), true, 'the SDK says so before connecting')
  t.equal(joinProblem({ joinOptions: { a: Number.NaN } }), 'invalid join option a: a string of at most 128 bytes, a finite number or a boolean')
  t.equal(joinProblem({ joinOptions: { team: 'red' } }), null)
})
