/**
 * Many machines behind one public endpoint, all real: Debian's redis-server
 * and HAProxy (TLS, a certificate made by openssl at test time), and three
 * "machines" (tickwire supervisors with 2 workers each, each bound to its own
 * loopback address 127.0.1.1-3). Players only ever know the balancer's
 * wss:// URL: they never learn a direct port.
 *
 * The subtests run in order on one deployment: joins and resume, a Redis
 * outage, kill -9 of one machine, SIGTERM of another.
 */
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { createClient } from 'redis'
import { freeDirectPort, startLb, upgradeStatus, type Lb } from './helpers/lb.js'
import { startMachine, type Machine } from './helpers/machines.js'
import { startRedis } from './helpers/redis.js'
import { join, roomPlayers, resetGaps, scrape, shuffle, TrustedWs, waitTogether, type Player } from './helpers/players.js'
import { DEFAULT_TOTAL_GAUGES } from '../src/metrics/registry.js'
import { dropTcp, parseSamples, sleep, waitFor } from './helpers/server.js'

const HOSTS = ['127.0.1.1', '127.0.1.2', '127.0.1.3'] as const
const WORKERS = 2
/** The documented takeover time (--node-ttl default, s) and the SDK's reconnect backoff after it. */
const NODE_TTL_S = 3

t.test('three machines behind HAProxy, rooms found through Redis', { timeout: 300_000 }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const port = await freeDirectPort(HOSTS, 1)
  let directPort = await freeDirectPort(HOSTS, WORKERS)
  while (directPort <= port && port < directPort + WORKERS) directPort = await freeDirectPort(HOSTS, WORKERS)
  let metricsPort = await freeDirectPort(HOSTS, 1)
  while (metricsPort === port || (metricsPort >= directPort && metricsPort < directPort + WORKERS)) metricsPort = await freeDirectPort(HOSTS, 1)
  const nodes = HOSTS.map((host, i) => ({ id: `m${i + 1}`, host }))
  const lb = await startLb({ kind: 'haproxy', nodes, workers: WORKERS, directPort, checkInterMs: 500 })
  t.teardown(() => lb.stop())
  const machines = await Promise.all(
    nodes.map((n) =>
      startMachine({
        id: n.id,
        host: n.host,
        workers: WORKERS,
        port,
        directPort,
        metricsPort,
        redisUrl: redis.url,
        publicUrl: lb.wsUrl,
        // Everyone in a room sees everyone, NPCs included (the test checks entities); the balancer names the client.
        args: ['--aoi-radius', '100000', '--max-visible', '256', '--trusted-proxies', '127.0.0.1'],
      }),
    ),
  )
  t.teardown(() => {
    for (const m of machines) m.kill()
  })
  for (const w of lb.workers) await lb.waitServer(w.name, 'UP', 30_000)
  // The SDK's WebSocket option: `ws` trusting the test's self-signed certificate.
  TrustedWs.ca = lb.ca
  const players: Player[] = []
  t.teardown(() => {
    for (const p of players) p.c.close()
  })
  /** Waits for `ps` to be together; on a time-out, says where each one is and what the machines logged. */
  const settle = async (ps: readonly Player[], ms: number, what: string): Promise<void> => {
    try {
      await waitTogether(ps, ms, what)
    } catch (err) {
      const where = await Promise.all(ps.map(async (p) => `${p.c.welcome.roomId}/e${p.c.welcome.entityId}/p${p.c.welcome.playerId} reconnecting=${p.c.reconnecting} closed=${p.c.closed} codes=${p.codes.join(',')} roomPlayers=${await roomPlayers(p.c).catch((e: Error) => e.message)} lastFrame=${Math.round(performance.now() - p.lastFrameAt)}ms ago`))
      const gauges = await Promise.all(machines.map(async (m) => { const x = await scrape(m).catch(() => new Map<string, number>()); return `${m.opts.id}: rooms=${x.get('tickwire_rooms')} players=${x.get('tickwire_players')} held=${x.get('tickwire_seats_held')}` }))
      const logs = [gauges.join('\n'), ...machines].map((m) => typeof m === 'string' ? m : `${m.opts.id}:\n` + m.log().split('\n').filter((l) => / (warn|error) /.test(l)).slice(-30).join('\n'))
      throw new Error(`${(err as Error).message}\nplayers:\n${where.join('\n')}\nlogs:\n${logs.join('\n')}`)
    }
  }
  const rooms = ['friends0', 'friends1', 'friends2', 'friends3', 'friends4']
  const byRoom = new Map<string, Player[]>(rooms.map((r) => [r, []]))

  await t.test('20 players, 5 named rooms, random order: each room on one worker with all its players', async (t) => {
    const order = shuffle(rooms.flatMap((r) => [r, r, r, r]))
    // In waves of 5 at once: friends racing to create the same room on different machines.
    for (let i = 0; i < order.length; i += 5) {
      const wave = await Promise.all(order.slice(i, i + 5).map((r, k) => join(lb.wsUrl, r, `p${i + k}`, players)))
      for (const p of wave) byRoom.get(p.room)?.push(p)
    }
    for (const [room, ps] of byRoom) {
      t.equal(ps.length, 4, `${room}: 4 players`)
      await settle(ps, 20_000, `${room}'s players to be together`)
      t.pass(`${room}: all 4 in one room, each seeing the others`)
    }
    // One room per id in the whole deployment: the machines' room gauges add up to 5.
    const counts = await Promise.all(machines.map(scrape))
    t.equal(counts.reduce((n, m) => n + (m.get('tickwire_rooms') ?? 0), 0), 5, 'five rooms in all, across three machines')
    t.equal(counts.reduce((n, m) => n + (m.get('tickwire_players') ?? 0), 0), 20, 'twenty players in all')
    const routed = counts.reduce((n, m) => n + (m.get('tickwire_redirects_total{kind="route"}') ?? 0), 0)
    const direct = counts.reduce((n, m) => n + (m.get('tickwire_redirects_total{kind="direct"}') ?? 0), 0)
    t.equal(direct, 0, 'no client was ever sent to a direct port')
    t.ok(routed > 0, `${routed} redirects through the public URL with a route`)
    t.equal(counts.reduce((n, m) => n + (m.get('tickwire_route_misses_total') ?? 0), 0), 0, 'HAProxy kept the route contract')
    for (const m of counts) t.equal(m.get('tickwire_directory_up'), 1, 'every machine reaches the directory')
    // What Prometheus scrapes from each machine: valid for its parser, with the directory's series.
    const text = await (await fetch(`http://${machines[0]?.opts.host}:${metricsPort}/metrics`)).text()
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
    if (lint.error) t.fail(`promtool not runnable: ${lint.error.message} (apt-get install prometheus)`)
    else {
      const problems = `${lint.stdout}\n${lint.stderr}`.split('\n').filter((l) => l.trim() !== '' && !DEFAULT_TOTAL_GAUGES.some((g) => l.startsWith(`${g} `)))
      t.same(problems, [], 'promtool check metrics: clean but for the documented allowlist')
    }
    const samples = parseSamples(text)
    for (const key of ['tickwire_directory_operations_total{op="locate",outcome="ok"}', 'tickwire_directory_operations_total{op="heartbeat",outcome="ok"}', 'tickwire_directory_operation_seconds_count{op="locate"}', 'tickwire_directory_takeovers_total', 'tickwire_directory_rooms_lost_total', 'tickwire_route_misses_total']) {
      t.ok(samples.has(key), key)
    }
  })

  await t.test('quick play works through the balancer', async (t) => {
    const q = await join(lb.wsUrl, undefined, 'quick', players)
    t.match(q.room, /^[A-Za-z0-9_-]{8}$/, 'a generated room id')
    const t0 = q.c.table.tick
    await waitFor(() => q.c.table.tick > t0 + 5, 10_000, 'quick-play state')
    // Registered in the directory too: a friend can join it by id from any machine.
    const friend = await join(lb.wsUrl, q.room, 'friend', players)
    await settle([q, friend], 20_000, 'the friend to join the quick-play room')
    t.pass('a friend joined the quick-play room by id')
  })

  await t.test('an abrupt TCP drop resumes the same entity through the balancer', async (t) => {
    const p = byRoom.get('friends0')?.[0] as Player
    const entity = p.c.welcome.entityId
    const resumed = new Promise<void>((r) => p.c.on('resumed', () => r()))
    dropTcp(p.c)
    await resumed
    t.equal(p.c.welcome.entityId, entity, 'same entity')
    await settle(byRoom.get('friends0') as Player[], 20_000, 'friends0 together again')
  })

  await t.test('Redis stopped for 5 s: rooms play on at their tick rate, named joins get 503, then the directory is whole again', async (t) => {
    const all = [...byRoom.values()].flat()
    const ticks0 = all.map((p) => p.c.table.tick)
    const w0 = performance.now()
    redis.kill()
    await sleep(500)
    const during = await upgradeStatus(lb, 'room=brandnew&v=3')
    t.equal(during.status, 503, 'a join of a new named room gets 503')
    t.match(during.body, /room directory unavailable/)
    await sleep(4500)
    const elapsedTicks = ((performance.now() - w0) / 1000) * 30
    for (const [i, p] of all.entries()) {
      const got = p.c.table.tick - (ticks0[i] as number)
      if (got < elapsedTicks * 0.6) t.fail(`${p.room}: ${got} ticks in an outage of ${Math.round(elapsedTicks)} tick periods`)
    }
    const hit = all.filter((p) => p.codes.length > 0 && p !== byRoom.get('friends0')?.[0])
    t.same(hit.map((p) => `${p.room}: ${p.codes.join(',')}`), [], 'nobody was disconnected by the outage (room: close codes)')
    await redis.restart()
    // After it: joins reach the existing rooms (the owners re-registered them in the empty Redis).
    for (const room of rooms) {
      const ps = byRoom.get(room) as Player[]
      let late: Player | null = null
      const end = Date.now() + 20_000
      while (!late) {
        try {
          late = await join(lb.wsUrl, room, `late-${room}`, players)
        } catch (err) {
          if (Date.now() > end) throw err
          await sleep(250)
        }
      }
      ps.push(late)
      await settle(ps, 20_000, `the late player to reach ${room}`)
    }
    t.pass('after the outage, a new player of each room reached that room')
    const ok = await Promise.all(machines.map(scrape))
    t.ok(ok.some((m) => (m.get('tickwire_directory_operations_total{op="locate",outcome="error"}') ?? 0) > 0), 'the failed lookups are counted')
    t.ok(ok.some((m) => (m.get('tickwire_http_rejected_total{reason="directory"}') ?? 0) > 0), 'and the 503s')
  })

  /** The machine whose workers own `room`, from the directory itself. */
  const ownerOf = async (room: string): Promise<Machine> => {
    const r = createClient({ url: redis.url })
    await r.connect()
    try {
      const v = (await r.get(`tickwire:room:${room}`)) ?? ''
      const name = v.split('|')[0] ?? ''
      const m = machines.find((x) => name.startsWith(`${x.opts.id}-`))
      if (!m) throw new Error(`room ${room}: owner ${JSON.stringify(v)} is none of the machines`)
      return m
    } finally {
      await r.quit()
    }
  }

  await t.test('kill -9 of one machine: its players are back together on another; the others see no disconnect and no gap', async (t) => {
    const victim = await ownerOf('friends1')
    const hit = [...byRoom.entries()].filter(([, ps]) => ps.length > 0)
    const owners = await Promise.all(hit.map(([room]) => ownerOf(room)))
    const theirs = hit.filter((_, i) => owners[i] === victim)
    const others = hit.filter((_, i) => owners[i] !== victim).flatMap(([, ps]) => ps)
    for (const p of others) p.codes.length = 0
    resetGaps(others)
    const t0 = performance.now()
    victim.kill()
    for (const [room, ps] of theirs) await settle(ps, 30_000, `${room}'s players to be back together`)
    const backMs = performance.now() - t0
    t.ok(backMs < 30_000, `the killed machine's players were back together in ${Math.round(backMs)} ms (documented: --node-ttl ${NODE_TTL_S} s plus a reconnect)`)
    for (const [room] of theirs) t.not(await ownerOf(room), victim, `${room} now lives on a live machine`)
    t.same(others.flatMap((p) => p.codes), [], 'players on the other machines saw no disconnect')
    const worstGap = Math.max(...others.map((p) => p.maxGapMs))
    t.ok(worstGap < 2000, `and no tick gap: the longest wait between two frames was ${Math.round(worstGap)} ms`)
    machines.splice(machines.indexOf(victim), 1)
  })

  await t.test('SIGTERM of one machine: its players get 1001 and rejoin elsewhere; the others play on', async (t) => {
    const live = [...byRoom.entries()]
    const owners = await Promise.all(live.map(([room]) => ownerOf(room)))
    // The surviving machine that owns the most rooms drains.
    const victim = machines.reduce((a, b) => (owners.filter((o) => o === b).length > owners.filter((o) => o === a).length ? b : a))
    const theirs = live.filter((_, i) => owners[i] === victim)
    const others = live.filter((_, i) => owners[i] !== victim).flatMap(([, ps]) => ps)
    for (const p of [...theirs.flatMap(([, ps]) => ps), ...others]) p.codes.length = 0
    resetGaps(others)
    victim.term()
    t.equal(await victim.exited, 0, 'the drained machine exits 0')
    for (const [room, ps] of theirs) {
      await settle(ps, 30_000, `${room}'s players to rejoin elsewhere`)
      t.ok(ps.every((p) => p.codes[0] === 1001), `${room}: every player was closed with 1001 (SHUTDOWN)`)
      t.not(await ownerOf(room), victim, `${room} now lives on another machine`)
    }
    t.same(others.flatMap((p) => p.codes), [], 'players on the other machines saw no disconnect')
    const worstGap = Math.max(0, ...others.map((p) => p.maxGapMs))
    t.ok(worstGap < 2000, `and no tick gap (${Math.round(worstGap)} ms at most between frames)`)
  })
})
