/**
 * One machine (a supervisor with 2 workers on 127.0.1.4) behind a real
 * HAProxy and a real nginx, with TLS, and no Redis: the embedded directory.
 * With --public-url, a friend sent to the worker that owns the room goes
 * through the balancer with a route, never to a direct port.
 */
import { unpack } from 'msgpackr'
import { SignJWT } from 'jose'
import t from 'tap'
import { WebSocket } from 'ws'
import { MsgType } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { freeDirectPort, startLb } from './helpers/lb.js'
import { startMachine } from './helpers/machines.js'
import { join, scrape, TrustedWs, waitTogether, type Player } from './helpers/players.js'

const WORKERS = 2

/** A protocol-2 join of room `solo` (no `v`): the REDIRECT frame it got, or the WELCOME's version if it was seated. */
function rawJoin(url: string, ca: string): Promise<{ redirect: unknown[] } | { welcomed: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?room=solo`, { ca })
    let redirect: unknown[] | null = null
    ws.on('message', (data: Buffer) => {
      const m = unpack(data) as unknown[]
      if (m[0] === MsgType.REDIRECT) redirect = m
      else if (m[0] === MsgType.WELCOME) {
        resolve({ welcomed: m[1] })
        ws.close()
      }
    })
    ws.on('close', () => resolve(redirect ? { redirect } : { welcomed: null }))
    ws.on('error', reject)
  })
}

for (const kind of ['haproxy', 'nginx'] as const) {
  t.test(`one machine without Redis behind ${kind}: redirects go through the public URL`, { timeout: 120_000 }, async (t) => {
    const host = '127.0.1.4'
    const port = await freeDirectPort([host], 1)
    let directPort = await freeDirectPort([host], WORKERS)
    while (directPort <= port && port < directPort + WORKERS) directPort = await freeDirectPort([host], WORKERS)
    const lb = await startLb({ kind, nodes: [{ id: 'solo', host }], workers: WORKERS, directPort, checkInterMs: 500 })
    t.teardown(() => lb.stop())
    let metricsPort = await freeDirectPort([host], 1)
    while (metricsPort === port || (metricsPort >= directPort && metricsPort < directPort + WORKERS)) metricsPort = await freeDirectPort([host], 1)
    const m = await startMachine({ id: 'solo', host, workers: WORKERS, port, directPort, metricsPort, publicUrl: lb.wsUrl, args: ['--aoi-radius', '100000', '--max-visible', '256'] })
    t.teardown(() => m.kill())
    if (kind === 'haproxy') for (const w of lb.workers) await lb.waitServer(w.name, 'UP', 30_000)
    TrustedWs.ca = lb.ca
    const players: Player[] = []
    t.teardown(() => {
      for (const p of players) p.c.close()
    })
    // Six friends, three at a time: the balancer spreads them over both workers, the directory keeps them together.
    for (let i = 0; i < 6; i += 3) await Promise.all([0, 1, 2].map((k) => join(lb.wsUrl, 'solo', `f${i + k}`, players)))
    await waitTogether(players, 20_000, 'the six friends to be together')
    const redirects = players.reduce((n, p) => n + p.c.redirects, 0)
    t.ok(redirects > 0, `${redirects} friends were redirected`)
    const metrics = await scrape(m)
    t.equal(metrics.get('tickwire_redirects_total{kind="route"}'), redirects, 'all through the balancer, with a route')
    t.equal(metrics.get('tickwire_redirects_total{kind="direct"}'), 0, 'none to a direct port')
    // A protocol-2 client (no `v`) cannot follow a route: it gets the owner's direct address, as before protocol 3.
    const joins = await Promise.all([0, 1, 2, 3].map(() => rawJoin(lb.wsUrl, lb.ca)))
    const got = joins.flatMap((j) => ('redirect' in j ? [j.redirect] : []))
    for (const j of joins) if ('welcomed' in j) t.equal(j.welcomed, 2, 'a protocol-2 client seated at once is welcomed in protocol 2')
    t.ok(got.length > 0, `${got.length} of 4 protocol-2 joins landed on the other worker`)
    for (const f of got) {
      t.equal(f?.length, 3, 'a protocol-2 REDIRECT has 3 elements')
      t.equal(f?.[2], '', 'naming no host (no --advertise-host: the host the client connected to, as before)')
      t.ok(m.workers.some((w) => w.port === f?.[1]), 'and a direct port of its workers')
    }
  })
}


t.test('behind HAProxy with TLS and --auth required: an authenticated player is redirected to its room and plays', { timeout: 120_000 }, async (t) => {
  const host = '127.0.1.4'
  const secret = 'an-hs256-secret-of-at-least-32-chars!'
  const port = await freeDirectPort([host], 1)
  let directPort = await freeDirectPort([host], WORKERS)
  while (directPort <= port && port < directPort + WORKERS) directPort = await freeDirectPort([host], WORKERS)
  const lb = await startLb({ kind: 'haproxy', nodes: [{ id: 'auth', host }], workers: WORKERS, directPort, checkInterMs: 500 })
  t.teardown(() => lb.stop())
  let metricsPort = await freeDirectPort([host], 1)
  while (metricsPort === port || (metricsPort >= directPort && metricsPort < directPort + WORKERS)) metricsPort = await freeDirectPort([host], 1)
  const m = await startMachine({
    id: 'auth', host, workers: WORKERS, port, directPort, metricsPort, publicUrl: lb.wsUrl,
    args: ['--aoi-radius', '100000', '--max-visible', '256', '--auth', 'required', '--auth-secret', secret, '--auth-audience', 'tickwire'],
  })
  t.teardown(() => m.kill())
  for (const w of lb.workers) await lb.waitServer(w.name, 'UP', 30_000)
  TrustedWs.ca = lb.ca
  const key = new TextEncoder().encode(secret)
  let minted = 0
  // A fresh short-lived token for every connection attempt and redirect hop, as a game backend would hand out.
  const tokenFor = (sub: string) => async () => {
    minted++
    return new SignJWT({ sub, name: sub.toUpperCase() }).setProtectedHeader({ alg: 'HS256' }).setAudience('tickwire').setExpirationTime('1m').sign(key)
  }
  const players: Player[] = []
  t.teardown(() => {
    for (const p of players) p.c.close()
  })
  for (let i = 0; i < 4; i++) await join(lb.wsUrl, 'club', `ignored${i}`, players, { getToken: tokenFor(`p${i}`) })
  await waitTogether(players, 20_000, 'the four authenticated friends to be together')
  const redirects = players.reduce((n, p) => n + p.c.redirects, 0)
  t.ok(redirects > 0, `${redirects} were redirected through the balancer, each hop with a fresh token`)
  t.equal(minted, 4 + redirects, 'one token per connection: first connects and redirect hops')
  const metrics = await scrape(m)
  t.equal(metrics.get('tickwire_auth_accepted_total'), 4 + redirects, 'every upgrade verified its token')
  t.equal(metrics.get('tickwire_redirects_total{kind="route"}'), redirects)
  // Without a token the balancer's public URL refuses the upgrade before any seat.
  const none = await TickwireClient.connect(lb.wsUrl, { room: 'club', WebSocket: TrustedWs, reconnect: false }).then(
    (c) => (c.close(), 0),
    (err: { status?: number }) => err.status ?? -1,
  )
  t.equal(none, 401, 'no token: 401 through the balancer')
})
