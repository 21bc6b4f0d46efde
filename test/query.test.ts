/**
 * The `/play` upgrade query (src/net/query.ts): protocol 3's `v` and `route`,
 * and that protocol 2 queries (no `v`) still parse as before.
 */
import t from 'tap'
import { PROTOCOL_VERSION } from '../proto/index.js'
import { parseJoinOptions, parseJoinQuery, type JoinQuery } from '../src/net/query.js'

const V_PROBLEM = { problem: 'v must be an integer from 2 to 3' }
const ROUTE_PROBLEM = { problem: 'route must be 1-64 characters of A-Z a-z 0-9 _ . -' }

function ok(raw: string): JoinQuery {
  const q = parseJoinQuery(raw)
  if ('problem' in q) throw new Error(`${raw}: ${q.problem}`)
  return q
}

t.test('v: absent is protocol 2; 2 and 3 are accepted', async (t) => {
  t.same(ok(''), { version: 2, room: null, name: '', resume: null, route: null, token: null, options: {} }, 'an old client\'s empty query')
  t.same(ok('room=lobby&name=ada'), { version: 2, room: 'lobby', name: 'ada', resume: null, route: null, token: null, options: {} }, 'an old client\'s join')
  t.equal(ok('v=2').version, 2)
  t.equal(ok('v=3').version, 3)
  t.equal(ok(`v=${PROTOCOL_VERSION}`).version, PROTOCOL_VERSION, 'the SDK\'s version')
  t.equal(ok('v=3&v=9').version, 3, 'the first of a repeated parameter counts')
  t.same(ok('room=lobby&player=7&resume=tok&v=3'), { version: 3, room: 'lobby', name: '', resume: { player: 7, token: 'tok' }, route: null, token: null, options: {} }, 'a v3 resume')
})

t.test('v: anything but a supported decimal integer is refused, before the other parameters', async (t) => {
  for (const v of ['0', '1', '4', '10', '999', '-3', '+3', '3.0', '3e0', ' 3', '0x3', 'three', '', '99999999999999999999']) {
    t.same(parseJoinQuery(`v=${encodeURIComponent(v)}`), V_PROBLEM, JSON.stringify(v))
  }
  t.same(parseJoinQuery('v=4&room=bad%20room'), V_PROBLEM, 'the version problem is reported first')
})

t.test('route: a worker name, else a problem', async (t) => {
  t.equal(ok('route=m2-1').route, 'm2-1')
  t.equal(ok('v=3&room=lobby&route=node.a_B-0').route, 'node.a_B-0', 'letters, digits, _ . -')
  t.equal(ok(`route=${'r'.repeat(64)}`).route, 'r'.repeat(64), '64 characters')
  t.equal(ok('room=lobby').route, null, 'absent: null')
  for (const r of ['', 'r'.repeat(65), 'a/b', 'a b', 'a%00', 'é', 'a:1', 'a@b']) {
    t.same(parseJoinQuery(`room=lobby&route=${encodeURIComponent(r)}`), ROUTE_PROBLEM, JSON.stringify(r))
  }
})

t.test('a REDIRECT url\'s query, with the client\'s parameters added, parses', async (t) => {
  // What the SDK sends after a protocol 3 REDIRECT: the url's room and route, then its own name, v and resume.
  const u = new URL('wss://play.example.com/play?room=lobby&route=m2-1')
  for (const [k, v] of new URLSearchParams('name=ada&v=3&player=4&resume=abc')) u.searchParams.append(k, v)
  t.same(ok(u.search.slice(1)), { version: 3, room: 'lobby', name: 'ada', resume: { player: 4, token: 'abc' }, route: 'm2-1', token: null, options: {} })
})

t.test('token: a join token for clients that cannot set a subprotocol, 1-4096 characters', async (t) => {
  const q = parseJoinQuery('room=r&token=a.b.c')
  t.ok(!('problem' in q) && q.token === 'a.b.c', 'carried as given')
  t.same(parseJoinQuery('token='), { problem: 'token must be 1-4096 characters' })
  t.same(parseJoinQuery(`token=${'t'.repeat(4097)}`), { problem: 'token must be 1-4096 characters' })
})

t.test('opts: a flat JSON object of bounded strings, finite numbers and booleans', async (t) => {
  const o = ok(`opts=${encodeURIComponent('{"team":"red","lvl":2.5,"ready":false,"__proto__":"x"}')}`).options
  t.same(Object.entries(o), [['team', 'red'], ['lvl', 2.5], ['ready', false], ['__proto__', 'x']], 'values as sent')
  t.equal(Object.getPrototypeOf(o), null, 'no prototype: __proto__ is only data')
  t.ok(Object.isFrozen(o), 'frozen: the game cannot change what another reads')
  t.same(parseJoinOptions(`{"s":"${'é'.repeat(64)}"}`), { s: 'é'.repeat(64) }, '128 bytes is allowed')
  for (const bad of ['{"s":"' + 'é'.repeat(65) + '"}', '{"n":1e999}', '{"a":[1]}', '"str"', 'null', '{"a-b":1}', '{"' + 'k'.repeat(33) + '":1}']) {
    t.equal(parseJoinOptions(bad), null, bad.slice(0, 30))
  }
  t.match(parseJoinQuery('opts=%7B'), { problem: /^opts must be a JSON object/ })
})
