/**
 * GET /rooms and the SDK's listRooms(): one process (meta validation, the
 * documented refusals), a real two-worker cluster (rooms of both workers
 * from either), and two machines sharing a real Redis.
 */
import t from 'tap'
import { listRooms, roomsUrl, type RoomListing } from '../src/client/rooms.js'
import { TickwireClient } from '../src/client/index.js'
import { arena } from '../src/games/arena.js'
import type { Game, GameRoom } from '../src/sim/game.js'
import { checkMeta, parseListQuery } from '../src/net/room-list.js'
import { startCluster } from './helpers/cluster.js'
import { startMachine } from './helpers/machines.js'
import { startRedis } from './helpers/redis.js'
import { freePort, parseSamples, sleep, startTest } from './helpers/server.js'

const get = async (url: string, init?: RequestInit) => {
  const res = await fetch(url, init)
  return { status: res.status, headers: res.headers, body: await res.text() }
}

async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 15_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await read().catch(() => undefined)
    if (v !== undefined && ok(v)) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(v)}`)
    await sleep(200)
  }
}

t.test('checkMeta and parseListQuery: what is accepted and what is refused', async (t) => {
  t.same(checkMeta({ map: 'dust', round: 3, ranked: false }), { map: 'dust', round: 3, ranked: false })
  t.equal(JSON.stringify(checkMeta(JSON.parse('{"__proto__":"x","a":1}'))), '{"__proto__":"x","a":1}', 'a __proto__ key stays a key')
  t.match(checkMeta(null), /plain object/)
  t.match(checkMeta([1]), /plain object/)
  t.match(checkMeta({ x: NaN }), /NaN/)
  t.match(checkMeta({ x: { y: 1 } }), /object/)
  t.match(checkMeta(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]))), /17 keys/)
  t.match(checkMeta({ s: 'x'.repeat(600) }), /bytes as JSON/)
  t.same(parseListQuery(''), { limit: 100, quickPlay: null })
  t.same(parseListQuery('limit=5&quickplay=1'), { limit: 5, quickPlay: true })
  for (const bad of ['limit=0', 'limit=501', 'limit=x', 'quickplay=2', 'room=a']) t.type(parseListQuery(bad), 'string', bad)
  t.equal(roomsUrl('wss://play.example.com:8443/play?room=a').href, 'https://play.example.com:8443/rooms')
})

t.test('one process: rooms with players and game meta; a bad meta is {} and logged once; 400, 405, 429; the SDK gets the same', async (t) => {
  let made = 0
  const metas: (() => unknown)[] = [() => ({ map: 'dust', round: 3 }), () => ({ bad: Infinity }), () => { throw new Error('boom') }]
  const game: Game = {
    ...arena,
    createRoom(ctx) {
      const r: GameRoom = arena.createRoom(ctx)
      const meta = metas[made++ % metas.length] as () => unknown
      return Object.assign(r, { meta: meta as () => Record<string, string> })
    },
  }
  const lines: string[] = []
  const { createLogger } = await import('../src/log.js')
  const tw = await startTest({}, { game, log: createLogger('warn', (l) => lines.push(l)) })
  t.teardown(() => tw.stop())
  const clients: TickwireClient[] = []
  t.teardown(() => clients.forEach((c) => c.close()))
  for (const room of ['good', 'good', 'nan', 'throws']) clients.push(await TickwireClient.connect(tw.url, { room, name: 'p', timeoutMs: 10_000 }))
  const base = `http://127.0.0.1:${tw.port}`
  const listing = await eventually(() => listRooms(tw.url), (l) => l.total === 3, 'three rooms')
  t.same(listing.rooms.map((r) => [r.id, r.players, r.capacity, r.quickPlay, r.meta]), [
    ['good', 2, tw.config.maxPlayersPerRoom, false, { map: 'dust', round: 3 }],
    ['nan', 1, tw.config.maxPlayersPerRoom, false, {}],
    ['throws', 1, tw.config.maxPlayersPerRoom, false, {}],
  ])
  for (let i = 0; i < 3; i++) await listRooms(tw.url)
  t.equal(lines.filter((l) => l.includes('room meta()')).length, 2, 'each bad meta logged once, however often listed')
  t.equal((await listRooms(tw.url, { limit: 1 })).rooms.length, 1)
  t.equal((await listRooms(tw.url, { quickPlay: true })).total, 0)

  const bad = await get(`${base}/rooms?limit=9999`)
  t.equal(bad.status, 400)
  t.match(bad.body, /limit must be an integer in 1\.\.500/)
  t.equal((await get(`${base}/rooms?x=1`)).status, 400)
  const post = await get(`${base}/rooms`, { method: 'POST' })
  t.equal(post.status, 405)
  t.equal(post.headers.get('allow'), 'GET, HEAD')
  const head = await fetch(`${base}/rooms`, { method: 'HEAD' })
  t.equal(head.status, 200)
  let limited = 0
  let retryAfter: string | null = null
  for (let i = 0; i < 40 && limited === 0; i++) {
    const r = await fetch(`${base}/rooms`)
    if (r.status === 429) {
      limited++
      retryAfter = r.headers.get('retry-after')
    }
    await r.text()
  }
  t.equal(limited, 1, 'a burst over the per-address rate gets 429')
  t.equal(retryAfter, '1')
  await t.rejects(listRooms(tw.url), /HTTP 429/, 'the SDK throws naming the status')
  const text = await tw.metrics.text()
  const m = parseSamples(text)
  t.ok((m.get('tickwire_room_list_requests_total{outcome="ok"}') ?? 0) >= 8)
  t.ok((m.get('tickwire_room_list_requests_total{outcome="bad_query"}') ?? 0) >= 2)
  t.equal(m.get('tickwire_room_list_requests_total{outcome="method"}'), 1)
  t.ok((m.get('tickwire_room_list_requests_total{outcome="rate_limited"}') ?? 0) >= 1)
  t.equal(m.get('tickwire_room_meta_invalid_total'), 2)
})

t.test('behind a trusted proxy the rate limit is per client (X-Forwarded-For), not per balancer', async (t) => {
  const tw = await startTest({ trustedProxies: '127.0.0.1' })
  t.teardown(() => tw.stop())
  const as = (client: string) => get(`http://127.0.0.1:${tw.port}/rooms`, { headers: { 'x-forwarded-for': client } })
  const statuses: number[] = []
  for (let i = 0; i < 20; i++) statuses.push((await as('10.0.0.1')).status)
  t.ok(statuses.includes(429), 'one client over the rate: 429')
  t.equal((await as('10.0.0.2')).status, 200, 'another client through the same balancer is served')
})

const summary = (l: RoomListing) => l.rooms.filter((r) => !r.quickPlay).map((r) => `${r.id}:${r.players}@${r.worker}`).sort().join(' ')

t.test('two workers: rooms of both listed with right counts from either worker', { timeout: 120_000 }, async (t) => {
  const cluster = await startCluster(2)
  t.teardown(() => {
    cluster.child.kill('SIGKILL')
  })
  const clients: TickwireClient[] = []
  t.teardown(() => clients.forEach((c) => c.close()))
  // Named rooms through each worker's direct port: the directory places them; quick play lands where it is accepted.
  for (const [port, room] of [[cluster.directPorts[0], 'red'], [cluster.directPorts[1], 'red'], [cluster.directPorts[1], 'blue'], [cluster.directPorts[0], undefined], [cluster.directPorts[1], undefined]] as const) {
    clients.push(await TickwireClient.connect(`ws://127.0.0.1:${port}/play`, { room, name: 'p', timeoutMs: 10_000 }))
  }
  const workerOf = (id: string) => clients.find((c) => c.welcome.roomId === id)
  t.ok(workerOf('red') && workerOf('blue'))
  for (const port of cluster.directPorts) {
    const l = await eventually(
      () => listRooms(`ws://127.0.0.1:${port}/play`),
      (l) => l.total >= 3 && l.rooms.filter((r) => r.quickPlay).reduce((n, r) => n + r.players, 0) === 2 && /blue:1@\S+ red:2@\S+/.test(summary(l)),
      `worker on ${port} to list red (2), blue (1) and 2 quick-play players`,
    )
    t.ok(l.rooms.every((r) => /-[01]$/.test(r.worker)), 'each room names its worker')
    t.equal(l.rooms[0]?.id, 'red', 'most players first')
  }
  const metrics = await (await fetch(`http://127.0.0.1:${cluster.metricsPort}/metrics`)).text()
  t.ok((parseSamples(metrics).get('tickwire_room_list_requests_total{outcome="ok"}') ?? 0) >= 2, 'counted, merged across workers')
})

t.test('two machines sharing Redis: each lists the other\'s rooms', { timeout: 120_000 }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const hosts = ['127.0.1.1', '127.0.1.2'] as const
  const machines = []
  for (const [i, host] of hosts.entries()) {
    const port = await freePort(host)
    const directPort = await freePort(host)
    let metricsPort = await freePort(host)
    while (metricsPort === port || metricsPort === directPort) metricsPort = await freePort(host)
    const m = await startMachine({ id: `n${i + 1}`, host, workers: 1, port, directPort, metricsPort, redisUrl: redis.url })
    t.teardown(() => m.kill())
    machines.push(m)
  }
  const clients: TickwireClient[] = []
  t.teardown(() => clients.forEach((c) => c.close()))
  for (const [i, room] of [[0, 'on-one'], [1, 'on-two'], [1, 'on-two']] as const) {
    const m = machines[i] as (typeof machines)[number]
    clients.push(await TickwireClient.connect(`ws://${m.opts.host}:${m.opts.port}/play`, { room, name: 'p', timeoutMs: 10_000 }))
  }
  for (const m of machines) {
    await eventually(() => listRooms(`http://${m.opts.host}:${m.opts.port}/`), (l) => summary(l) === 'on-one:1@n1-0 on-two:2@n2-0', `${m.opts.id} to list both machines' rooms`)
  }
  t.pass('listed from either machine')
})
