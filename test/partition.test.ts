/**
 * A machine cut off from Redis while its room plays on (a network partition),
 * all real: Debian's redis-server, HAProxy with TLS, two tickwire machines
 * (2 workers each) on 127.0.1.1 and 127.0.1.2. Machine m1 reaches Redis only
 * through a TCP proxy, so the test can partition m1 alone while m2 keeps its
 * Redis: once by resetting m1's connections (`cut`), once by holding its
 * bytes with the connections open (`stall`: a silent partition).
 *
 * The designed behaviour (src/directory/redis.ts, src/net/server.ts):
 * - m1's players play on: a room needs no directory to tick.
 * - m1's node records lapse after --node-ttl; the directory then treats m1 as
 *   dead, and a join of the room that reaches m2 takes its lease over.
 * - Until m1 hears from Redis again, a join that reaches the worker running
 *   m1's copy is seated there (it has the room, it asks nobody): the split
 *   brain. A join that reaches m1's other worker needs the directory: 503.
 * - When m1 reaches Redis again, its re-registration finds the room held by a
 *   live m2 (`lost`), and m1 closes its copy's players with 4015 ROOM_MOVED;
 *   the SDK rejoins the same room id through the balancer and lands on m2,
 *   where everyone ends up together.
 */
import t, { type Test } from 'tap'
import { createClient } from 'redis'
import { CloseCode } from '../proto/index.js'
import { ConnectError } from '../src/client/index.js'
import { freeDirectPort, startLb, upgradeStatus, type Lb } from './helpers/lb.js'
import { startMachine, type Machine } from './helpers/machines.js'
import { join, resetGaps, roomPlayers, scrape, TrustedWs, waitTogether, type Player } from './helpers/players.js'
import { startRedis, startTcpProxy, type RedisServer, type TcpProxy } from './helpers/redis.js'
import { sleep } from './helpers/server.js'

const HOSTS = ['127.0.1.1', '127.0.1.2'] as const
const WORKERS = 2
/** --node-ttl in seconds: short, so the test is quick (the default is 3). Every wait below is a generous multiple. */
const NODE_TTL_S = 1
const TICK_HZ = 30

interface Deployment {
  readonly redis: RedisServer
  readonly proxy: TcpProxy
  readonly lb: Lb
  readonly m1: Machine
  readonly m2: Machine
  readonly players: Player[]
}

/** Redis, m1's proxy, HAProxy and both machines; everything stopped in `t`'s teardown. */
async function deploy(t: Test): Promise<Deployment> {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const proxy = await startTcpProxy(redis.port)
  t.teardown(() => proxy.stop())
  const port = await freeDirectPort(HOSTS, 1)
  let directPort = await freeDirectPort(HOSTS, WORKERS)
  while (directPort <= port && port < directPort + WORKERS) directPort = await freeDirectPort(HOSTS, WORKERS)
  let metricsPort = await freeDirectPort(HOSTS, 1)
  while (metricsPort === port || (metricsPort >= directPort && metricsPort < directPort + WORKERS)) metricsPort = await freeDirectPort(HOSTS, 1)
  const nodes = HOSTS.map((host, i) => ({ id: `m${i + 1}`, host }))
  const lb = await startLb({ kind: 'haproxy', nodes, workers: WORKERS, directPort, checkInterMs: 500 })
  t.teardown(() => lb.stop())
  const machines: Machine[] = []
  t.teardown(() => {
    for (const m of machines) m.kill()
  })
  for (const [i, n] of nodes.entries()) {
    machines.push(
      await startMachine({
        id: n.id,
        host: n.host,
        workers: WORKERS,
        port,
        directPort,
        metricsPort,
        // m1 through the proxy (the link the test partitions), m2 straight to Redis.
        redisUrl: i === 0 ? proxy.url : redis.url,
        publicUrl: lb.wsUrl,
        // Everyone in a room sees everyone (the test checks entities); the balancer names the client.
        args: ['--node-ttl', String(NODE_TTL_S), '--tick-hz', String(TICK_HZ), '--aoi-radius', '100000', '--max-visible', '256', '--trusted-proxies', '127.0.0.1'],
      }),
    )
  }
  for (const w of lb.workers) await lb.waitServer(w.name, 'UP', 30_000)
  TrustedWs.ca = lb.ca
  const players: Player[] = []
  t.teardown(() => {
    for (const p of players) p.c.close()
  })
  return { redis, proxy, lb, m1: machines[0] as Machine, m2: machines[1] as Machine, players }
}

/** One read of the directory: a key's value, or null. */
async function redisGet(redis: RedisServer, key: string): Promise<string | null> {
  const r = createClient({ url: redis.url })
  r.on('error', () => {})
  await r.connect()
  try {
    return await r.get(key)
  } finally {
    r.destroy()
  }
}

/** The machine whose worker holds `room`'s lease (null: none of them, or no lease), and the worker's name. */
async function ownerOf(d: Deployment, room: string): Promise<{ machine: Machine | null; worker: string }> {
  const worker = ((await redisGet(d.redis, `tickwire:room:${room}`)) ?? '').split('|')[0] ?? ''
  const machine = [d.m1, d.m2].find((m) => worker.startsWith(`${m.opts.id}-`)) ?? null
  return { machine, worker }
}

/** A counter from a machine's merged /metrics (0 when absent). */
async function metric(m: Machine, key: string): Promise<number> {
  return (await scrape(m)).get(key) ?? 0
}

/** A machine's /metrics once `ok` holds for it, or the last one after `ms` (the assertions then say what differs). */
async function scrapeUntil(m: Machine, ok: (x: Map<string, number>) => boolean, ms: number): Promise<Map<string, number>> {
  const end = Date.now() + ms
  for (;;) {
    const x = await scrape(m)
    if (ok(x) || Date.now() > end) return x
    await sleep(100)
  }
}

/** Warn and error lines a machine logged (the last `n`), for failure messages. */
function warnings(m: Machine, n = 40): string {
  return `${m.opts.id}:\n` + m.log().split('\n').filter((l) => / (warn|error) /.test(l)).slice(-n).join('\n')
}

/** Waits for `ps` to be together; on a time-out says where each one is and what the machines logged. */
async function settle(d: Deployment, ps: readonly Player[], ms: number, what: string): Promise<void> {
  try {
    await waitTogether(ps, ms, what)
  } catch (err) {
    const where = await Promise.all(
      ps.map(async (p) => `${p.c.welcome.roomId}/e${p.c.welcome.entityId}/p${p.c.welcome.playerId} reconnecting=${p.c.reconnecting} closed=${p.c.closed} codes=${p.codes.join(',')} roomPlayers=${await roomPlayers(p.c).catch((e: Error) => e.message)}`),
    )
    const gauges = await Promise.all([d.m1, d.m2].map(async (m) => { const x = await scrape(m).catch(() => new Map<string, number>()); return `${m.opts.id}: rooms=${x.get('tickwire_rooms')} players=${x.get('tickwire_players')}` }))
    throw new Error(`${(err as Error).message}\nplayers:\n${where.join('\n')}\n${gauges.join('\n')}\nlogs:\n${warnings(d.m1)}\n${warnings(d.m2)}`)
  }
}

for (const how of ['stall', 'cut'] as const) {
  const what = how === 'stall' ? 'its bytes held, connections open (a silent partition)' : 'its connections reset and refused'
  t.test(`m1 cut off from Redis (${what}): its room plays on, m2 takes the room over, and m1's players move to m2 when m1 is back`, { timeout: 240_000 }, async (t) => {
    const d = await deploy(t)
    const { m1, m2, lb, proxy, players } = d

    // A room whose lease is m1's: the first join creates it on whichever worker the balancer picked.
    let room = ''
    let first: Player | null = null
    for (let i = 0; i < 12 && !first; i++) {
      const name = i === 0 ? 'split' : `split${i}`
      const p = await join(lb.wsUrl, name, 'a0', players)
      if ((await ownerOf(d, name)).machine === m1) {
        room = name
        first = p
      } else p.c.close()
    }
    if (!first) throw new Error('12 rooms in a row landed on m2: the balancer never picked m1')
    t.comment(`room ${room} is on ${(await ownerOf(d, room)).worker}`)
    const originals = [first, await join(lb.wsUrl, room, 'a1', players), await join(lb.wsUrl, room, 'a2', players)]
    const label = new Map<Player, string>(originals.map((p, i) => [p, `a${i}`]))
    await settle(d, originals, 20_000, 'the three players to be together on m1')
    t.pass('three players together in one room on m1')
    const lost0 = await metric(m1, 'tickwire_directory_rooms_lost_total')
    const moved0 = await metric(m1, 'tickwire_disconnects_total{reason="room_moved"}')
    t.equal(lost0, 0, 'm1 has lost no room yet')

    // The partition: m1 alone loses Redis; m2 keeps it.
    for (const p of originals) p.codes.length = 0
    resetGaps(originals)
    const ticks0 = originals.map((p) => p.c.table.tick)
    const cutAt = performance.now()
    if (how === 'stall') proxy.stall()
    else proxy.cut()
    // m1's node records lapse nodeTtl after its last heartbeat: then the directory holds m1 for dead.
    const m1Nodes = m1.workers.map((w) => `tickwire:node:${w.name}`)
    const gone = Date.now() + 10_000 * NODE_TTL_S
    while ((await Promise.all(m1Nodes.map((k) => redisGet(d.redis, k)))).some((v) => v !== null)) {
      if (Date.now() > gone) throw new Error(`m1's node records still in Redis ${10 * NODE_TTL_S} s into the partition`)
      await sleep(100)
    }
    t.comment(`m1's node records lapsed ${Math.round(performance.now() - cutAt)} ms into the partition`)
    t.equal((await ownerOf(d, room)).machine, m1, "the lease still names m1 (it outlives the node record): only m1's liveness is gone")
    await sleep(500 * NODE_TTL_S)
    // m1's other worker does not run the room, so a join there needs the directory, which m1 cannot reach.
    const owner = (await ownerOf(d, room)).worker
    const other = m1.workers.find((w) => w.name !== owner)?.name as string
    const refusal = await upgradeStatus(lb, `room=${room}&v=3&route=${other}`)
    t.same(refusal, { status: 503, body: 'room directory unavailable\n' }, `a join routed to ${other} gets 503: it cannot reach the directory`)

    // New players of the room, through the balancer, until one has reached each machine. The balancer may send a join
    // to m2 (which takes the room over: its directory sees no live owner), to the worker running m1's copy (which seats
    // it there without asking anybody: the split brain this test is about), or to m1's other worker (which must ask
    // the directory and cannot: 503). Which machine seated a player: the one whose seated-player gauge went up.
    const splitBrain: Player[] = []
    const onM2: Player[] = []
    let refused = 0
    for (let i = 0; i < 24 && (splitBrain.length === 0 || onM2.length === 0); i++) {
      const before = await Promise.all([m1, m2].map((m) => metric(m, 'tickwire_players')))
      let p: Player
      try {
        p = await join(lb.wsUrl, room, `n${i}`, players)
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err
        refused++
        t.comment(`join ${i}: refused (${err.message}): m1's other worker cannot ask the directory`)
        await sleep(200)
        continue
      }
      label.set(p, `n${i}`)
      const want = (before[0] as number) + (before[1] as number) + 1
      const end = Date.now() + 5000
      let after = before
      while (Date.now() < end && (after[0] as number) + (after[1] as number) !== want) {
        await sleep(50)
        after = await Promise.all([m1, m2].map((m) => metric(m, 'tickwire_players')))
      }
      if (after[0] === (before[0] as number) + 1) {
        splitBrain.push(p)
        t.equal(await roomPlayers(p.c), originals.length + splitBrain.length, `n${i}: seated on m1, in its copy with the original players (split brain: m1 cannot know the room moved)`)
      } else if (after[1] === (before[1] as number) + 1) {
        onM2.push(p)
        t.equal(await roomPlayers(p.c), onM2.length, `n${i}: seated on m2, in a new copy of the room (${onM2.length === 1 ? 'alone' : 'with the others who reached m2'})`)
      } else throw new Error(`n${i} joined, yet the seated players went from ${before.join('+')} to ${after.join('+')} on m1+m2`)
    }
    t.ok(onM2.length > 0, `a new player reached m2 (${onM2.length} in ${splitBrain.length + onM2.length + refused} joins)`)
    t.ok(splitBrain.length > 0, `and one was seated on m1 during the split (${splitBrain.length}); ${refused} refused with 503 by m1's other worker`)
    if (onM2.length === 0 || splitBrain.length === 0) throw new Error(`24 joins did not reach both machines\n${warnings(m1)}\n${warnings(m2)}`)
    const newOwner = await ownerOf(d, room)
    t.equal(newOwner.machine, m2, `the directory gave the room to m2 (lease: ${newOwner.worker})`)

    // m1's players played on through the partition.
    const elapsed = ((performance.now() - cutAt) / 1000) * TICK_HZ
    for (const [i, p] of originals.entries()) {
      const got = p.c.table.tick - (ticks0[i] as number)
      t.ok(got > elapsed * 0.6, `${label.get(p)}: ${got} ticks in ${Math.round(elapsed)} tick periods of partition`)
    }
    t.same(originals.flatMap((p) => p.codes), [], 'no original player was disconnected by the partition')
    const worstGap = Math.max(...originals.map((p) => p.maxGapMs))
    t.ok(worstGap < 2000, `no gap in their frames (longest ${Math.round(worstGap)} ms)`)

    // m1 reaches Redis again: it finds the room held by a live m2 and sends its copy's players there.
    const onM1 = [...originals, ...splitBrain]
    for (const p of onM1) p.rejoins = 0
    const restoredAt = performance.now()
    proxy.restore()
    const all = [...onM1, ...onM2]
    await settle(d, all, 45_000, `all ${all.length} players to be together on m2`)
    t.comment(`together on m2 ${Math.round(performance.now() - restoredAt)} ms after m1 reached Redis again`)
    t.pass(`all ${all.length} players together in one room (PONG counts them all, each sees the others)`)
    for (const p of onM1) {
      t.equal(p.codes[0], CloseCode.ROOM_MOVED, `${label.get(p)} (on m1) was closed with 4015 ROOM_MOVED (codes: ${p.codes.join(',')})`)
      t.ok(p.rejoins >= 1, 'and rejoined')
      t.equal(p.c.welcome.roomId, room, 'the same room id')
    }
    t.same(onM2.flatMap((p) => p.codes), [], 'the players on m2 were not disturbed')
    t.equal((await ownerOf(d, room)).machine, m2, "the room is still m2's")
    const g2 = await scrapeUntil(m2, (x) => x.get('tickwire_players') === all.length, 5000)
    t.equal(g2.get('tickwire_players'), all.length, `m2 runs all ${all.length} players`)
    t.equal(g2.get('tickwire_rooms'), 1, 'in one room')
    const g1 = await scrapeUntil(m1, (x) => x.get('tickwire_rooms') === 0, 5000)
    t.equal(g1.get('tickwire_rooms'), 0, "m1's copy is gone")
    t.equal(g1.get('tickwire_players'), 0, 'and m1 runs nobody')
    t.ok((g1.get('tickwire_directory_rooms_lost_total') ?? 0) > lost0, `m1 counted the lost room (tickwire_directory_rooms_lost_total ${lost0} -> ${g1.get('tickwire_directory_rooms_lost_total')})`)
    const moved = (g1.get('tickwire_disconnects_total{reason="room_moved"}') ?? 0) - moved0
    t.equal(moved, onM1.length, `m1 counted ${onM1.length} room_moved disconnects`)
    t.ok(m1.log().includes('room taken over by another worker'), 'm1 logged why it closed them')
  })
}
