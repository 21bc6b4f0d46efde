/**
 * A full worker claims no room it cannot open: two machines on Redis, the
 * first at --max-rooms. A join for a new room that reaches it is refused
 * SERVER_FULL at once, and leaves no claim behind, so the same room asked for
 * through the other machine is created there right away (before, the refused
 * claim pinned the id to the full machine for its 10 s lifetime).
 */
import { createClient } from 'redis'
import t from 'tap'
import { ConnectError, TickwireClient } from '../src/client/index.js'
import { freeDirectPort } from './helpers/lb.js'
import { startCluster } from './helpers/cluster.js'
import { SECRET, startMachine } from './helpers/machines.js'
import { startRedis } from './helpers/redis.js'

const HOSTS = ['127.0.1.7', '127.0.1.8'] as const

t.test('a worker at --max-rooms claims nothing: the room is created on the other machine at once', { timeout: 120_000 }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const port = await freeDirectPort(HOSTS, 1)
  let directPort = await freeDirectPort(HOSTS, 1)
  while (directPort === port) directPort = await freeDirectPort(HOSTS, 1)
  const [full, roomy] = await Promise.all(
    HOSTS.map((host, i) => startMachine({ id: `c${i + 1}`, host, workers: 1, port, directPort, metricsPort: 0, redisUrl: redis.url, args: i === 0 ? ['--max-rooms', '1'] : [] })),
  )
  t.teardown(() => {
    full?.kill()
    roomy?.kill()
  })
  const url = (host: string) => `ws://${host}:${port}/play`
  const first = await TickwireClient.connect(url(HOSTS[0]), { room: 'a', reconnect: false })
  t.teardown(() => first.close())
  t.equal(first.redirects, 0, 'room a lives on the first machine, now at --max-rooms 1')
  const refused = await TickwireClient.connect(url(HOSTS[0]), { room: 'b', reconnect: false }).then(
    (c) => {
      c.close()
      return null
    },
    (err: unknown) => err,
  )
  t.ok(refused instanceof ConnectError && refused.code === 4007, 'a new room asked of the full machine: SERVER_FULL')
  const t0 = performance.now()
  const other = await TickwireClient.connect(url(HOSTS[1]), { room: 'b', reconnect: false })
  t.teardown(() => other.close())
  t.equal(other.redirects, 0, 'the same room through the other machine is created there, not sent to the full one')
  t.ok(performance.now() - t0 < 5000, 'at once (no claim to wait out)')
  // A room that exists elsewhere is still found from the full machine.
  const friend = await TickwireClient.connect(url(HOSTS[0]), { room: 'b', reconnect: false })
  t.teardown(() => friend.close())
  t.equal(friend.redirects, 1, 'a friend asking the full machine for room b is redirected to where it lives')
})

t.test('Redis with direct ports the kernel picks: each node record names the port its worker bound, and redirects reach it', { timeout: 120_000 }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const c = await startCluster(2, ['--redis-url', redis.url, '--resume-secret', SECRET, '--node-id', 'picked'])
  t.teardown(() => c.child.kill('SIGKILL'))
  const r = createClient({ url: redis.url })
  await r.connect()
  t.teardown(() => r.destroy())
  const ports = await Promise.all([0, 1].map(async (i) => (JSON.parse((await r.get(`tickwire:node:picked-${i}`)) ?? '{}') as { port?: number }).port))
  t.same(ports, c.directPorts, `node records name the bound direct ports ${c.directPorts.join(', ')}`)
  // Friends of one room through the shared port: some land on the other worker and follow its direct port.
  const friends = await Promise.all(Array.from({ length: 6 }, () => TickwireClient.connect(c.url, { room: 'picked', reconnect: false })))
  t.teardown(() => {
    for (const f of friends) f.close()
  })
  // A friend closed instead of answering fails here with its close code, not as a 120 s timeout.
  const counts = await Promise.all(friends.map((f, i) => new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`friend ${i} got no PONG within 30 s and was not closed`)), 30_000)
    f.on('pong', (_rtt, n) => {
      clearTimeout(timer)
      resolve(n)
    })
    f.on('close', (code, reason, name) => {
      clearTimeout(timer)
      reject(new Error(`friend ${i} was closed ${code} ${name ?? ''} ${reason}`))
    })
    f.ping()
  })))
  t.same(counts, Array(6).fill(6), 'all six in one room')
})
