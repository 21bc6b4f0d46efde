/**
 * Several workers behind one SO_REUSEPORT port, as real child processes:
 * spreading, room routing with redirects, resume across workers, crash
 * recovery, drain, and the supervisor's merged /metrics.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { CloseCode, type Welcome } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { DEFAULT_TOTAL_GAUGES } from '../src/metrics/registry.js'
import { alive, clientPort, listenerPids, serverPidsByClientPort, startCluster } from './helpers/cluster.js'
import { dropTcp, parseSamples, sleep, waitFor } from './helpers/server.js'

const scrape = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return res.text()
}

t.test('two workers: one listener each on the port, quick play lands on both, rooms route by id, resume crosses workers', async (t) => {
  const c = await startCluster(2, ['--aoi-radius', '5000', '--max-visible', '256', '--resume-window', '10'])
  t.teardown(() => c.child.kill('SIGKILL'))
  t.equal(c.pids.length, 2)
  t.same(listenerPids(c.port).sort(), [...c.pids].sort(), 'ss -tlnp: one listener on the public port per worker pid')
  for (const [i, dp] of c.directPorts.entries()) t.same(listenerPids(dp), [c.pids[i]], `worker ${i} alone on its direct port ${dp}`)

  const clients: TickwireClient[] = []
  t.teardown(() => clients.forEach((x) => x.close()))
  for (let i = 0; i < 100; i++) clients.push(await TickwireClient.connect(c.url, { reconnect: false }))
  const owners = serverPidsByClientPort(c.port)
  const perPid = new Map<number, number>()
  for (const x of clients) {
    const pid = owners.get(clientPort(x)) ?? 0
    perPid.set(pid, (perPid.get(pid) ?? 0) + 1)
  }
  t.same([...perPid.keys()].sort(), [...c.pids].sort(), `100 quick-play connections on both workers: ${JSON.stringify([...perPid])}`)
  t.equal(clients.reduce((n, x) => n + x.redirects, 0), 0, 'quick play never redirects')

  const before = parseSamples(await scrape(c.metricsPort)).get('tickwire_redirects_total{kind="direct"}') ?? 0
  // The same room id through each worker's own port: whoever does not own the room redirects.
  const a = await TickwireClient.connect(`ws://127.0.0.1:${c.directPorts[0]}/play`, { room: 'friends', name: 'a' })
  const b = await TickwireClient.connect(`ws://127.0.0.1:${c.directPorts[1]}/play`, { room: 'friends', name: 'b' })
  clients.push(a, b)
  t.equal(a.welcome.roomId, 'friends')
  t.equal(b.welcome.roomId, 'friends')
  t.ok(a.redirects + b.redirects >= 1, `at least one client was redirected (${a.redirects} + ${b.redirects})`)
  await waitFor(() => a.table.entities.has(b.welcome.entityId) && b.table.entities.has(a.welcome.entityId), 3000, 'a and b to see each other')
  t.pass('a and b, joined through different workers, see each other in one room')
  const after = parseSamples(await scrape(c.metricsPort)).get('tickwire_redirects_total{kind="direct"}') ?? 0
  t.equal(after - before, a.redirects + b.redirects, 'tickwire_redirects_total{kind="direct"} went up by the clients that needed a redirect (no --public-url: direct ports)')

  // Resume through the public port: whichever worker takes the connection, it reaches the room's owner.
  const firstEntity = a.welcome.entityId
  const resumed = new Promise<void>((r) => a.on('resumed', () => r()))
  dropTcp(a)
  await resumed
  t.equal(a.welcome.entityId, firstEntity, 'the dropped client resumed the same entity')
  await waitFor(() => b.table.entities.has(a.welcome.entityId) && a.table.tick > 0, 3000, 'play to go on')
  const m = parseSamples(await scrape(c.metricsPort))
  t.equal(m.get('tickwire_resumes_total{outcome="resumed"}'), 1)
})

t.test('kill -9 of one worker under load: replaced (about 1 s idle; ceiling 10 s), its players rejoin, the others notice nothing; /metrics stays whole', async (t) => {
  const tickHz = 30
  const c = await startCluster(2, ['--tick-hz', String(tickHz)])
  t.teardown(() => c.child.kill('SIGKILL'))
  interface Watch {
    client: TickwireClient
    pid: number
    lastTick: number
    lastAt: number
    maxTickGap: number
    maxMsGap: number
    events: string[]
    rejoinCode?: number
  }
  const watches: Watch[] = []
  t.teardown(() => watches.forEach((w) => w.client.close()))
  for (let i = 0; i < 60; i++) {
    const client = await TickwireClient.connect(c.url)
    const w: Watch = { client, pid: 0, lastTick: 0, lastAt: 0, maxTickGap: 0, maxMsGap: 0, events: [] }
    client.on('state', (f) => {
      const now = performance.now()
      if (w.lastTick !== 0 && f.tick > w.lastTick) {
        w.maxTickGap = Math.max(w.maxTickGap, f.tick - w.lastTick)
        w.maxMsGap = Math.max(w.maxMsGap, now - w.lastAt)
      }
      w.lastTick = f.tick
      w.lastAt = now
      if (client.table.tick % 5 === 0) client.sendInput([Math.round(Math.sin(f.tick) * 100), 50])
    })
    client.on('reconnecting', (code) => w.events.push(`reconnecting ${code}`))
    client.on('close', (code) => w.events.push(`close ${code}`))
    client.on('rejoined', (_w: Welcome, code) => {
      w.rejoinCode = code
      w.events.push('rejoined')
    })
    watches.push(w)
  }
  const owners = serverPidsByClientPort(c.port)
  for (const w of watches) w.pid = owners.get(clientPort(w.client)) ?? 0
  const victim = c.pids[0] as number
  const survivor = c.pids[1] as number
  const victims = watches.filter((w) => w.pid === victim)
  const survivors = watches.filter((w) => w.pid === survivor)
  t.ok(victims.length > 0 && survivors.length > 0, `players on both workers (${victims.length} / ${survivors.length})`)

  // Scrape all along: every scrape answers and no counter ever goes down.
  const watched = ['tickwire_connections_total', 'tickwire_sent_bytes_total', 'tickwire_ticks_total{worker="0"}', 'tickwire_ticks_total{worker="1"}', 'tickwire_state_frames_sent_total', 'process_cpu_seconds_total{worker="0"}']
  const last = new Map<string, number>()
  let scrapes = 0
  let scraping = true
  const problems: string[] = []
  const scraper = (async () => {
    while (scraping) {
      try {
        const m = parseSamples(await scrape(c.metricsPort))
        for (const k of watched) {
          const v = m.get(k)
          if (v === undefined) problems.push(`scrape ${scrapes}: no ${k}`)
          else if (v < (last.get(k) ?? 0)) problems.push(`scrape ${scrapes}: ${k} went down ${last.get(k)} -> ${v}`)
          else last.set(k, v)
        }
        scrapes++
      } catch (err) {
        problems.push(`scrape failed: ${(err as Error).message}`)
      }
      await sleep(50)
    }
  })()

  await sleep(500)
  for (const w of watches) {
    w.maxTickGap = 0
    w.maxMsGap = 0
  }
  const killedAt = performance.now()
  process.kill(victim, 'SIGKILL')
  // Watch the supervisor's log, not `ss` (a blocking call here would add gaps to the frames we time).
  await waitFor(() => c.stderr().includes('worker replaced'), 15000, 'a replacement worker')
  const replacedMs = performance.now() - killedAt
  // A ceiling, not the target: a new worker is a node process starting up, ~1 s on an idle core,
  // 3.5 s seen with the other core busy and the suite running beside it.
  t.ok(replacedMs < 10000, `replacement serving ${replacedMs.toFixed(0)} ms after kill -9 (ceiling: 10000 ms)`)
  const pids = listenerPids(c.port)
  t.ok(pids.length === 2 && pids.includes(survivor) && !pids.includes(victim), `two listeners again, the survivor and a new pid: ${pids}`)
  await waitFor(() => victims.every((w) => w.rejoinCode !== undefined), 10000, "the dead worker's players to rejoin")
  for (const w of victims) {
    t.equal(w.rejoinCode, CloseCode.RESUME_EXPIRED, 'told their seat is gone (RESUME_EXPIRED), then rejoined by quick play')
    t.equal(w.client.closed, false)
  }
  await sleep(1000)
  scraping = false
  await scraper
  let worstTicks = 0
  let worstMs = 0
  for (const w of survivors) {
    t.same(w.events, [], 'a player on the other worker saw no disconnect')
    worstTicks = Math.max(worstTicks, w.maxTickGap)
    worstMs = Math.max(worstMs, w.maxMsGap)
  }
  // On the server's side: survivors keep getting frames, at most 10 tick numbers (a third of a second) apart. A
  // generous ceiling: with the other core busy and the replacement worker starting, 5 was seen; a survivor
  // that noticed the kill (a reconnect) would show seconds.
  t.ok(worstTicks <= 10, `survivors' largest tick gap: ${worstTicks} ticks (at most 10)`)
  // Arrival times are taken in this test process, which shares the CI machine with other tests (and a browser):
  // a loose bound that still catches a stalled or restarted worker (seconds), not scheduling noise.
  t.ok(worstMs < 1000, `survivors' largest time between frames as this process saw them: ${worstMs.toFixed(0)} ms (tick interval ${(1000 / tickHz).toFixed(0)} ms)`)
  t.same(problems, [], `${scrapes} scrapes during the crash, every one whole and monotonic`)
  t.ok(scrapes > 10)
  const text = await scrape(c.metricsPort)
  const m = parseSamples(text)
  t.equal(m.get('tickwire_worker_restarts_total'), 1)
  t.equal(m.get('tickwire_workers'), 2)
  t.equal(m.get('tickwire_worker_up{worker="0"}'), 1)
  t.equal(m.get('tickwire_worker_up{worker="1"}'), 1)
  t.equal(m.get('tickwire_players'), 60, 'every player seated again')
  t.ok((m.get('process_cpu_seconds_total{worker="1"}') ?? 0) > 0, 'per-process series carry a worker label')
  t.match(c.stderr(), /worker exited; replacing it worker=0 code=null signal=SIGKILL/)
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  for (const [, name] of text.matchAll(/^# TYPE (tickwire_\S+)/gm)) t.match(readme, `\`${name}`, `README documents ${name}`)
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (promtool.error) t.fail(`promtool not runnable: ${promtool.error.message} (apt-get install prometheus)`)
  else {
    const issues = (promtool.stdout + promtool.stderr).split('\n').filter((l) => l.trim() !== '' && !DEFAULT_TOTAL_GAUGES.some((g) => l.startsWith(g)))
    t.same(issues, [], 'promtool check metrics: clean but for the documented allowlist')
  }
})

t.test('SIGTERM: every player gets SHUTDOWN, the supervisor exits 0 before the drain timeout, no worker is left', async (t) => {
  const c = await startCluster(2, ['--drain-timeout', '5'])
  t.teardown(() => c.child.kill('SIGKILL'))
  const clients: TickwireClient[] = []
  for (let i = 0; i < 20; i++) clients.push(await TickwireClient.connect(c.url, { reconnect: false }))
  const owners = serverPidsByClientPort(c.port)
  t.equal(new Set(clients.map((x) => owners.get(clientPort(x)))).size, 2, 'players on both workers')
  const codes = clients.map((x) => new Promise<number>((r) => x.on('close', (code) => r(code))))
  const t0 = performance.now()
  c.child.kill('SIGTERM')
  t.equal(await c.exited, 0, 'supervisor exit code 0')
  const ms = performance.now() - t0
  t.ok(ms < 5000, `exited after ${ms.toFixed(0)} ms (drain timeout 5 s)`)
  t.same(await Promise.all(codes), clients.map(() => CloseCode.SHUTDOWN), 'every client got SHUTDOWN (1001)')
  for (const pid of c.pids) t.notOk(alive(pid), `worker ${pid} is gone`)
  t.same(listenerPids(c.port), [], 'nothing listens on the port')
})
