/**
 * RedisDirectory on a real redis-server (Debian's): the shared directory
 * suite, then what only Redis has: leases, takeover timing, fencing epochs,
 * renewal, outages (killed, frozen, restarted empty), a worker cut off while
 * its room was taken over, and connect() without a Redis.
 */
import t, { type Test } from 'tap'
import { createClient } from 'redis'
import { DirectoryUnavailable, type WorkerAddress } from '../src/directory/directory.js'
import { RedisDirectory, type RedisDirectoryOptions } from '../src/directory/redis.js'
import { createLogger } from '../src/log.js'
import { freePort } from '../src/net/ports.js'
import { directorySuite, eventually, expected } from './helpers/directory-suite.js'
import { startRedis, startTcpProxy, type RedisServer } from './helpers/redis.js'

/** Short, so the tests are quick; every bound below is a generous multiple of it. */
const NODE_TTL = 600
const RENEW_EVERY = NODE_TTL / 3
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

const shared = await startRedis()
t.teardown(() => shared.stop())

async function rawClient(t: Test, url: string) {
  const c = createClient({ url })
  c.on('error', () => {}) // a test may kill its Redis; this client just reconnects
  await c.connect()
  t.teardown(() => c.destroy())
  return c
}
type Raw = Awaited<ReturnType<typeof rawClient>>
const raw = await rawClient(t, shared.url)

let worlds = 0
/** A fresh key prefix per test, so tests on the shared Redis do not see each other. */
const newPrefix = () => `t${++worlds}:`

const address = (i: number): WorkerAddress => ({ name: `m${i + 1}-0`, host: `127.0.1.${i + 1}`, port: 9101 + i })

/** A log that keeps its lines. */
function recorder(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = []
  return { log: createLogger('debug', (l) => lines.push(l)), lines }
}

async function handle(t: Test, o: Partial<RedisDirectoryOptions> & { url: string; keyPrefix: string; i: number }): Promise<RedisDirectory & { lines: string[] }> {
  const { log, lines } = recorder()
  const d = await RedisDirectory.connect({ self: address(o.i), nodeTtlMs: NODE_TTL, timeoutMs: 1000, log, ...o })
  t.teardown(() => d.close(500))
  return Object.assign(d, { lines })
}

const parseLease = (v: string | null) => {
  const [name, incarnation, epoch] = (v ?? '').split('|')
  return { name, incarnation, epoch: Number(epoch) }
}

async function waitNodeGone(r: Raw, prefix: string, name: string): Promise<void> {
  await eventually(async () => (await r.exists(`${prefix}node:${name}`)) === 0, `node record of ${name} to expire`)
}

directorySuite(t, 'redis', async (t, o) => {
  const keyPrefix = newPrefix()
  const dirs = await Promise.all(Array.from({ length: o.workers }, (_, i) => handle(t, { url: shared.url, keyPrefix, i, maxClaimsPerAddress: o.maxClaimsPerAddress })))
  return {
    dirs,
    kill: async (i: number) => {
      const d = dirs[i] as RedisDirectory
      d.abandon()
      await waitNodeGone(raw, keyPrefix, d.self.name)
    },
  }
})

t.test('keys: the node record and a lease as documented; the asker claims a new room', async (t) => {
  const keyPrefix = newPrefix()
  const a = await handle(t, { url: shared.url, keyPrefix, i: 0, claimTtlMs: 2000 })
  const node = JSON.parse((await raw.get(`${keyPrefix}node:m1-0`)) ?? 'null') as unknown
  t.same(node, { incarnation: a.incarnation, host: '127.0.1.1', port: 9101 })
  const pttl = await raw.pTTL(`${keyPrefix}node:m1-0`)
  t.ok(pttl > 0 && pttl <= NODE_TTL, `node record expires (${pttl} ms left)`)
  t.same(await a.locate('k1', true, '10.0.0.1'), { local: true }, 'Redis places a new room on the worker that asked')
  const lease = parseLease(await raw.get(`${keyPrefix}room:k1`))
  t.same([lease.name, lease.incarnation], ['m1-0', a.incarnation])
  t.ok(lease.epoch >= 1, 'an epoch from the counter')
  t.ok((await raw.pTTL(`${keyPrefix}room:k1`)) <= 2000, 'a claim lives claimTtlMs unless opened')
  a.opened('k1')
  await eventually(async () => (await raw.pTTL(`${keyPrefix}room:k1`)) > 2000, 'the opened lease to get the lease lifetime (default max(3 x nodeTtl, 10 s))')
  t.ok((await raw.pTTL(`${keyPrefix}room:k1`)) <= 10_000)
  t.equal(parseLease(await raw.get(`${keyPrefix}room:k1`)).epoch, lease.epoch, 'opening a claim keeps its epoch')
})

t.test('takeover: within nodeTtl of the owner stopping (not before its node record expired), a higher epoch, counted', async (t) => {
  const keyPrefix = newPrefix()
  const a = await handle(t, { url: shared.url, keyPrefix, i: 0 })
  const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
  const observed: string[] = []
  b.stats.observe = (op) => observed.push(op)
  a.opened('t1')
  await eventually(async () => (await b.locate('t1', false, '10.0.0.1')) !== null, 'b to see t1')
  await sleep(3 * RENEW_EVERY) // a few renewals
  const before = parseLease(await raw.get(`${keyPrefix}room:t1`))
  a.abandon()
  const t0 = performance.now()
  let elapsed = -1
  for (let i = 0; i < 1000 && elapsed < 0; i++) {
    const p = await b.locate('t1', true, '10.0.0.1')
    if (p !== null && p !== 'address_limit' && p.local) elapsed = performance.now() - t0
    else {
      t.same(p, expected(b, a), 'until then: still the old owner')
      await sleep(10)
    }
  }
  t.ok(elapsed >= 0, 'taken over')
  t.comment(`takeover ${Math.round(elapsed)} ms after the owner stopped (nodeTtl ${NODE_TTL} ms)`)
  t.ok(elapsed >= NODE_TTL - RENEW_EVERY - 50, `not before the node record could expire (${Math.round(elapsed)} ms)`)
  t.ok(elapsed <= 3 * (NODE_TTL + RENEW_EVERY), `within 3x (nodeTtl + one renewal period) (${Math.round(elapsed)} ms)`)
  const after = parseLease(await raw.get(`${keyPrefix}room:t1`))
  t.equal(after.name, 'm2-0')
  t.ok(after.epoch > before.epoch, `epoch ${before.epoch} -> ${after.epoch}`)
  t.equal(b.stats.takeovers, 1)
  t.ok(b.stats.ops.locate.ok > 0 && observed.includes('locate'), 'locates counted and timed')
})

t.test('a restarted worker (same name, new incarnation) takes over its predecessor\'s rooms at once', async (t) => {
  const keyPrefix = newPrefix()
  const old = await handle(t, { url: shared.url, keyPrefix, i: 0 })
  const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
  old.opened('inc')
  old.opened('inc-q')
  await eventually(async () => (await b.locate('inc-q', false, '10.0.0.1')) !== null, 'b to see inc-q')
  old.abandon()
  const fresh = await handle(t, { url: shared.url, keyPrefix, i: 0 })
  t.not(fresh.incarnation, old.incarnation)
  t.equal(await b.locate('inc', false, '10.0.0.1'), null, 'the old incarnation owns nothing, without waiting for its node record')
  t.same(await fresh.locate('inc', true, '10.0.0.1'), { local: true })
  t.equal(fresh.stats.takeovers, 1)
  fresh.opened('inc-q') // a quick-play id over the predecessor's lease: taken over by the registration
  await eventually(() => fresh.stats.takeovers === 2, 'the registration to take it over')
  t.same(await b.locate('inc-q', false, '10.0.0.1'), expected(b, fresh))
  t.notOk(fresh.lines.some((l) => l.includes('another process')), 'a restart is not a name clash')
})

t.test('renewals keep a room owned across many lease lifetimes', async (t) => {
  const keyPrefix = newPrefix()
  const leaseTtlMs = 1000
  const a = await handle(t, { url: shared.url, keyPrefix, i: 0, leaseTtlMs })
  const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
  a.opened('long')
  await eventually(async () => (await b.locate('long', false, '10.0.0.1')) !== null, 'b to see long')
  const renewed0 = a.stats.ops.renew.ok
  const end = Date.now() + 5 * leaseTtlMs
  let checks = 0
  while (Date.now() < end) {
    const p = await b.locate('long', true, '10.0.0.1')
    if (JSON.stringify(p) !== JSON.stringify(expected(b, a))) t.fail(`lost after ${checks} checks: ${JSON.stringify(p)}`)
    const pttl = await raw.pTTL(`${keyPrefix}room:long`)
    if (!(pttl > 0 && pttl <= leaseTtlMs)) t.fail(`lease ttl ${pttl}`)
    checks++
    await sleep(100)
  }
  t.ok(checks > 20, `${checks} checks over 5 lease lifetimes, all at the owner`)
  t.ok(a.stats.ops.renew.ok - renewed0 >= 10, `${a.stats.ops.renew.ok - renewed0} renewals`)
  t.equal(a.stats.ops.renew.error, 0)
})

t.test('a claim that is never opened lapses by itself, and gives its budget back', async (t) => {
  const keyPrefix = newPrefix()
  const claimTtlMs = 800
  const a = await handle(t, { url: shared.url, keyPrefix, i: 0, claimTtlMs, maxClaimsPerAddress: 1 })
  const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
  t.same(await a.locate('c1', true, '10.1.0.1'), { local: true })
  const t0 = performance.now()
  t.same(await b.locate('c1', false, '10.1.0.1'), expected(b, a), 'claimed: others are sent to the claimer')
  t.equal(await a.locate('c2', true, '10.1.0.1'), 'address_limit')
  t.equal(a.pendingOf('10.1.0.1'), 1)
  await eventually(async () => (await b.locate('c1', false, '10.1.0.1')) === null, 'the claim to lapse')
  t.ok(performance.now() - t0 >= claimTtlMs - 200, 'not before its lifetime')
  await eventually(() => a.pendingOf('10.1.0.1') === 0, 'its budget to come back', 5000)
  b.opened('at-b')
  await eventually(async () => (await a.locate('at-b', false, '10.1.0.1')) !== null, 'a to see at-b')
  t.same(await a.locate('at-b', true, '10.1.0.1'), expected(a, b), 'a create of a room another worker has: a redirect')
  t.equal(a.pendingOf('10.1.0.1'), 0, 'and no budget spent')
  t.same(await a.locate('c2', true, '10.1.0.1'), { local: true }, 'the address may claim again')
})

t.test('Redis killed: locate rejects DirectoryUnavailable promptly, opened/closed never throw, counted, one warning; back: everything registered again', async (t) => {
  const redis = await ownRedis(t)
  const keyPrefix = newPrefix()
  const timeoutMs = 500
  const a = await handle(t, { url: redis.url, keyPrefix, i: 0, timeoutMs })
  const b = await handle(t, { url: redis.url, keyPrefix, i: 1, timeoutMs })
  a.opened('r1')
  a.opened('r-closed-while-down')
  await eventually(async () => (await b.locate('r1', false, '10.0.0.1')) !== null, 'b to see r1')
  redis.kill()
  await eventually(() => !a.stats.up, 'a to notice')
  const errors0 = a.stats.ops.locate.error
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now()
    const err = await a.locate(`x${i}`, true, '10.0.0.1').then(
      () => null,
      (e: Error) => e,
    )
    const ms = performance.now() - t0
    if (!(err instanceof DirectoryUnavailable)) t.fail(`locate ${i}: ${String(err)}`)
    if (ms > timeoutMs + 1000) t.fail(`locate ${i} took ${Math.round(ms)} ms`)
  }
  t.equal(a.stats.ops.locate.error - errors0, 20, 'every failed locate counted')
  const t0 = performance.now()
  a.opened('r2')
  a.closed('r-closed-while-down')
  t.ok(performance.now() - t0 < 50, 'opened/closed return at once')
  await sleep(3 * RENEW_EVERY)
  t.ok(a.stats.ops.heartbeat.error > 0 && a.stats.ops.register.error > 0, 'heartbeats and the registration failed, counted')
  t.equal(a.stats.up, false)
  t.equal(a.lines.filter((l) => l.includes(' warn ') && l.includes('unreachable')).length, 1, `one warning for the outage:\n${a.lines.join('\n')}`)
  await redis.restart()
  await eventually(async () => JSON.stringify(await b.locate('r2', false, '10.0.0.1').catch(() => null)) === JSON.stringify(expected(b, a)), 'r2 (opened during the outage) registered')
  t.same(await b.locate('r1', false, '10.0.0.1'), expected(b, a), 'r1 back too')
  t.equal(await b.locate('r-closed-while-down', false, '10.0.0.1'), null, 'the room closed during the outage is not')
  t.ok(a.stats.up)
  t.ok(a.lines.some((l) => l.includes(' info ') && l.includes('reachable again')), 'an info line when it is back')
})

t.test('Redis frozen (SIGSTOP): locate rejects after timeoutMs, not before and not much later; close() still resolves within its timeout', async (t) => {
  const redis = await ownRedis(t)
  const keyPrefix = newPrefix()
  const timeoutMs = 400
  const a = await handle(t, { url: redis.url, keyPrefix, i: 0, timeoutMs })
  const c = await handle(t, { url: redis.url, keyPrefix, i: 2, timeoutMs })
  a.opened('f1')
  await eventually(async () => (await a.locate('f1', false, '10.0.0.1')) !== null, 'f1 registered')
  redis.freeze()
  t.teardown(() => redis.thaw())
  const t0 = performance.now()
  await t.rejects(a.locate('f2', true, '10.0.0.1'), DirectoryUnavailable)
  const ms = performance.now() - t0
  t.ok(ms >= timeoutMs - 20 && ms <= timeoutMs + 1500, `rejected after ${Math.round(ms)} ms (timeout ${timeoutMs})`)
  const t1 = performance.now()
  a.opened('f3')
  a.closed('f1')
  t.ok(performance.now() - t1 < 50, 'opened/closed return at once')
  const t2 = performance.now()
  await a.close(300)
  const closeMs = performance.now() - t2
  t.ok(closeMs <= 300 + 700, `close(300) resolved after ${Math.round(closeMs)} ms with Redis frozen`)
  await eventually(() => !c.stats.up, 'c to notice (its heartbeats time out)')
  redis.thaw()
  await eventually(() => c.stats.up, 'c to hear from Redis again')
  t.same(await c.locate('f1', false, '10.0.0.1'), null, "a's close released f1 once Redis read it, or never registered it")
  t.equal(c.lines.filter((l) => l.includes(' warn ')).length, 1, 'c: one warning')
  t.ok(c.lines.some((l) => l.includes(' info ') && l.includes('reachable again')), 'c: and an info when it answers again')
})

t.test('two processes with one worker name: logged as a clash; onLost that throws is logged, not thrown', async (t) => {
  const keyPrefix = newPrefix()
  const a1 = await handle(t, { url: shared.url, keyPrefix, i: 0 })
  const a2 = await handle(t, { url: shared.url, keyPrefix, i: 0 })
  await eventually(() => [a1, a2].some((d) => d.lines.some((l) => l.includes(' error ') && l.includes('another process heartbeats'))), 'a clash to be logged')
  const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
  const c = await handle(t, { url: shared.url, keyPrefix, i: 2 })
  b.opened('mine')
  await eventually(async () => (await c.locate('mine', false, '10.0.0.1')) !== null, 'c to see mine')
  c.onLost = () => {
    throw new Error('boom')
  }
  c.opened('mine')
  await eventually(() => c.lines.some((l) => l.includes('onLost threw') && l.includes('boom')), 'the throw to be logged')
  t.equal(c.stats.lost, 1)
})

t.test('close() resolves within its timeout with Redis gone', async (t) => {
  const redis = await ownRedis(t)
  const a = await handle(t, { url: redis.url, keyPrefix: newPrefix(), i: 0 })
  a.opened('g1')
  redis.kill()
  await eventually(() => !a.stats.up, 'a to notice')
  const t0 = performance.now()
  await a.close(300)
  t.ok(performance.now() - t0 <= 1000, `close(300) after ${Math.round(performance.now() - t0)} ms`)
})

t.test('Redis restarted empty: every worker\'s node record and rooms come back; new epochs stay above the old ones', async (t) => {
  const redis = await ownRedis(t)
  const r = await rawClient(t, redis.url)
  const keyPrefix = newPrefix()
  const a = await handle(t, { url: redis.url, keyPrefix, i: 0 })
  const b = await handle(t, { url: redis.url, keyPrefix, i: 1 })
  for (const id of ['p1', 'p2']) a.opened(id)
  b.opened('p3')
  await eventually(async () => JSON.stringify(await a.locate('p3', false, '10.0.0.1')) === JSON.stringify(expected(a, b)), 'a to see p3')
  await eventually(async () => (await b.locate('p2', false, '10.0.0.1')) !== null, 'b to see p2')
  // Push the counter up, so an empty Redis's counter (0) would be below the leases' epochs.
  for (let i = 0; i < 20; i++) await a.locate(`burn${i}`, true, '10.0.0.1')
  const oldEpochs = await Promise.all(['p1', 'p2', 'p3'].map(async (id) => parseLease(await r.get(`${keyPrefix}room:${id}`)).epoch))
  await r.set('marker', '1')
  redis.kill()
  await redis.restart()
  t.equal(await r.exists('marker'), 0, 'it came back empty')
  const t0 = performance.now()
  await eventually(async () => JSON.stringify(await b.locate('p1', false, '10.0.0.1').catch(() => null)) === JSON.stringify(expected(b, a)), 'p1 at a again')
  t.comment(`rooms back ${Math.round(performance.now() - t0)} ms after the restart`)
  t.same(await b.locate('p2', false, '10.0.0.1'), expected(b, a))
  t.same(await a.locate('p3', false, '10.0.0.1'), expected(a, b))
  t.ok((await r.exists(`${keyPrefix}node:m1-0`)) === 1 && (await r.exists(`${keyPrefix}node:m2-0`)) === 1, 'both node records')
  const newEpochs = await Promise.all(['p1', 'p2', 'p3'].map(async (id) => parseLease(await r.get(`${keyPrefix}room:${id}`)).epoch))
  t.same(newEpochs.map((e, i) => e > (oldEpochs[i] as number)), [true, true, true], `re-registered with higher epochs: ${oldEpochs.join(',')} -> ${newEpochs.join(',')}`)
  t.same(await b.locate('fresh', true, '10.0.0.1'), { local: true })
  const fresh = parseLease(await r.get(`${keyPrefix}room:fresh`)).epoch
  t.ok(fresh > Math.max(...newEpochs, ...oldEpochs), `a new claim's epoch (${fresh}) is above all of them`)
})

for (const how of ['cut', 'stall'] as const) {
  const what = how === 'cut' ? 'connections reset' : 'a silent partition: the hung connection is replaced'
  t.test(`a lease taken over while its owner was cut off (${what}): onLost once, when it is back`, async (t) => {
    const keyPrefix = newPrefix()
    const proxy = await startTcpProxy(shared.port)
    t.teardown(() => proxy.stop())
    const a = await handle(t, { url: proxy.url, keyPrefix, i: 0, timeoutMs: 300 })
    const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
    const lost: string[] = []
    a.onLost = (id) => lost.push(id)
    a.opened('moved')
    a.opened('stays')
    await eventually(async () => (await b.locate('moved', false, '10.0.0.1')) !== null, 'b to see moved')
    if (how === 'cut') proxy.cut()
    else proxy.stall()
    await waitNodeGone(raw, keyPrefix, 'm1-0')
    t.same(await b.locate('moved', true, '10.0.0.1'), { local: true }, 'b takes it over')
    b.opened('moved')
    if (how === 'stall') {
      // Long enough for a's heartbeat to count as unanswered: it replaces the connection (the new one hangs too, until restore).
      await eventually(() => !a.stats.up, 'a to notice the silence')
      await sleep(2 * RENEW_EVERY)
    }
    proxy.restore()
    await eventually(() => lost.length > 0, 'a to hear onLost')
    await sleep(4 * RENEW_EVERY)
    t.same(lost, ['moved'], 'once, for that room only')
    t.equal(a.stats.lost, 1)
    t.notOk(a.rooms.has('moved'), 'a forgot it')
    t.same(await a.locate('moved', false, '10.0.0.1'), expected(a, b), 'a now redirects to b')
    t.same(await b.locate('stays', false, '10.0.0.1'), expected(b, a), "a's other room is still a's")
    t.equal(a.lines.filter((l) => l.includes(' warn ') && l.includes('unreachable')).length, 1, `one warning for the outage:\n${a.lines.join('\n')}`)
    if (how === 'stall') t.ok(a.lines.some((l) => l.includes('replacing a connection that stopped answering')), 'the silent connection was noticed and replaced')
    t.ok(a.lines.some((l) => l.includes(' info ') && l.includes('reachable again')), 'and an info line when it was back')
  })
}

t.test("a lease taken over while its owner's node record lapsed but its connection stayed up (a stalled event loop): the next renewal calls onLost", async (t) => {
  const keyPrefix = newPrefix()
  const a = await handle(t, { url: shared.url, keyPrefix, i: 0 })
  const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
  const lost: string[] = []
  a.onLost = (id) => lost.push(id)
  a.opened('stolen')
  await eventually(async () => (await b.locate('stolen', false, '10.0.0.1')) !== null, 'b to see stolen')
  const registered = a.stats.ops.register.ok
  // What a's heartbeats missing for nodeTtl leaves behind: no node record. a's next heartbeat may race us: retry.
  let took = false
  for (let i = 0; i < 50 && !took; i++) {
    await raw.del(`${keyPrefix}node:m1-0`)
    const p = await b.locate('stolen', true, '10.0.0.1')
    took = p !== null && p !== 'address_limit' && p.local
  }
  t.ok(took, 'b took it over')
  b.opened('stolen')
  await eventually(() => lost.length > 0, 'a to hear onLost')
  t.same(lost, ['stolen'])
  t.equal(a.stats.ops.register.ok, registered, 'no reconnect, no registration: the renewal found it')
  t.ok(a.stats.ops.renew.ok > 0)
  t.same(await a.locate('stolen', false, '10.0.0.1'), expected(a, b))
})

t.test('connect(): without a Redis it resolves after timeoutMs with one warning, and works once Redis appears; invalid URLs reject', async (t) => {
  const port = await freePort()
  const { log, lines } = recorder()
  const t0 = performance.now()
  const a = await RedisDirectory.connect({ url: `redis://127.0.0.1:${port}`, self: address(0), nodeTtlMs: NODE_TTL, timeoutMs: 300, log })
  t.teardown(() => a.close(300))
  const ms = performance.now() - t0
  t.ok(ms >= 250 && ms < 2000, `resolved after ${Math.round(ms)} ms`)
  t.equal(a.stats.up, false)
  t.equal(lines.filter((l) => l.includes(' warn ')).length, 1, lines.join('\n'))
  await t.rejects(a.locate('n', true, '10.0.0.1'), DirectoryUnavailable)
  const redis = await startRedis({ port })
  t.teardown(() => redis.stop())
  const r = await rawClient(t, redis.url)
  await eventually(async () => (await r.exists('tickwire:node:m1-0')) === 1, 'the node record once Redis is there')
  t.same(await a.locate('n', true, '10.0.0.1'), { local: true })
  t.equal(lines.filter((l) => l.includes(' warn ')).length, 1, 'still one warning')

  const bad = ['http://127.0.0.1:6379', 'not a url', 'redis://user:hunter2@/0', 'redis://127.0.0.1:6379/x']
  for (const url of bad) {
    const err = await RedisDirectory.connect({ url, self: address(0), log }).then(
      (d) => (void d.close(100), null),
      (e: Error) => e,
    )
    t.ok(err instanceof Error && /redis:\/\//.test(err.message), `${url}: ${err?.message}`)
    t.notMatch(err?.message ?? '', /hunter2/, 'the password is not in the message')
  }
})

async function ownRedis(t: Test): Promise<RedisServer> {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  return redis
}

t.test('canHost false: a worker that could not create the room claims nothing, but still finds a room that lives elsewhere', async (t) => {
  const keyPrefix = newPrefix()
  const a = await handle(t, { url: shared.url, keyPrefix, i: 0 })
  const b = await handle(t, { url: shared.url, keyPrefix, i: 1 })
  t.equal(await a.locate('nope', true, '10.0.0.1', false), null, 'no live owner, and this worker may not host it: null')
  t.equal(await raw.exists(`${keyPrefix}room:nope`), 0, 'and no lease was written')
  t.same(await b.locate('here', true, '10.0.0.1'), { local: true })
  b.opened('here')
  t.same(await a.locate('here', true, '10.0.0.1', false), { local: false, ...address(1) }, 'a room that lives elsewhere is found')
  t.same(await b.locate('nope', true, '10.0.0.1', true), { local: true }, 'a worker with room claims it')
})
