/**
 * Join tokens at the upgrade, over real sockets: a real tickwire with
 * `--auth`, tokens signed by jose in the test, raw `ws` clients. A refused
 * token gets its HTTP status before any seat or room is touched; a verified
 * one gives the game the player's identity and the wire the token's name;
 * resume tokens bind to `sub`; no token ever reaches the log.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, exportSPKI, generateKeyPair } from 'jose'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { MsgType, decodeServerMessage, type Welcome } from '../proto/index.js'
import { arena } from '../src/games/arena.js'
import { createLogger } from '../src/log.js'
import type { Game, GameRoom, PlayerIdentity } from '../src/sim/game.js'
import { parseSamples, startTest } from './helpers/server.js'

const SECRET = 'an-hs256-secret-of-at-least-32-chars!'
const key = new TextEncoder().encode(SECRET)

function sign(claims: Record<string, unknown>, opts: { exp?: string | number; secret?: Uint8Array } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .setIssuer('backend')
    .setAudience('tickwire')
    .sign(opts.secret ?? key)
}

/** The arena, recording the identity each join gets. */
function recordingArena(seen: (PlayerIdentity | undefined)[]): Game {
  return {
    ...arena,
    createRoom(ctx) {
      const room = arena.createRoom(ctx)
      return new Proxy(room, {
        get(target, prop) {
          if (prop === 'join') {
            return (name: string, identity?: PlayerIdentity) => {
              seen.push(identity)
              return identity ? target.join(name, identity) : target.join(name)
            }
          }
          const v = (target as unknown as Record<string | symbol, unknown>)[prop]
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
        },
      }) as GameRoom
    },
  }
}

type Outcome = { welcome: Welcome; ws: WebSocket; protocol: string } | { status: number; body: string } | { code: number }

/** One raw upgrade: the token as a subprotocol entry (`via: 'protocol'`), as the `token` parameter, or none. */
function attempt(url: string, query: Record<string, string>, token: string | null, via: 'protocol' | 'query' = 'protocol'): Promise<Outcome> {
  const u = new URL(url)
  u.searchParams.set('v', '3')
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v)
  if (token !== null && via === 'query') u.searchParams.set('token', token)
  const protocols = token !== null && via === 'protocol' ? ['tickwire', `tickwire.bearer.${token}`] : []
  const ws = new WebSocket(u, protocols)
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    ws.on('message', (data: Buffer) => {
      const m = decodeServerMessage(new Uint8Array(data))
      if (m.type === MsgType.WELCOME) resolve({ welcome: m, ws, protocol: ws.protocol })
    })
    ws.on('close', (code) => resolve({ code }))
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err)
    })
  })
}

async function authServer(t: Test, mode: 'optional' | 'required', seen: (PlayerIdentity | undefined)[] = []) {
  const lines: string[] = []
  const log = createLogger('debug', (l) => lines.push(l))
  const metricsPort = 0
  const tw = await startTest(
    { auth: mode, authSecret: SECRET, authIssuer: 'backend', authAudience: 'tickwire', resumeWindow: 5, metricsPort },
    { log, game: recordingArena(seen) },
  )
  t.teardown(() => tw.stop())
  return { tw, lines }
}

const isWelcome = (o: Outcome): o is { welcome: Welcome; ws: WebSocket; protocol: string } => 'welcome' in o

t.test('--auth required: refusals get their status before any seat; a valid token plays with its identity and name', async (t) => {
  const seen: (PlayerIdentity | undefined)[] = []
  const { tw, lines } = await authServer(t, 'required', seen)
  const tokens: string[] = []
  const refusals: [string, string | null, number, RegExp][] = [
    ['missing', null, 401, /join token required/],
    ['garbage', 'not.a.jwt', 401, /join token invalid/],
    ['expired', await sign({ sub: 'ada' }, { exp: Math.floor(Date.now() / 1000) - 60 }), 401, /join token expired/],
    ['wrong key', await sign({ sub: 'ada' }, { secret: new TextEncoder().encode('another-secret-another-secret-xxxx') }), 401, /join token invalid/],
    ['alg none', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'ada', iss: 'backend', aud: 'tickwire' })).toString('base64url')}.`, 401, /join token invalid/],
    ['wrong audience', await new SignJWT({ sub: 'ada' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('backend').setAudience('other').setExpirationTime('5m').sign(key), 401, /join token invalid/],
  ]
  for (const [what, token, status, body] of refusals) {
    if (token) tokens.push(token)
    const o = await attempt(tw.url, { room: 'r1', name: 'x' }, token)
    t.ok('status' in o && o.status === status, `${what}: HTTP ${status}`)
    if ('body' in o) t.match(o.body, body, `${what}: says why`)
  }
  t.equal(tw.rooms.players, 0, 'no seat was taken')
  t.equal(tw.rooms.list.length, 0, 'and no room was made')
  t.same(seen, [], 'the game was never asked')
  const good = await sign({ sub: 'ada-42', name: 'Ada', roles: ['player', 'mod'] })
  tokens.push(good)
  const ok = await attempt(tw.url, { room: 'r1', name: 'mallory' }, good)
  if (!isWelcome(ok)) throw new Error(`not welcomed: ${JSON.stringify(ok)}`)
  t.equal(ok.protocol, 'tickwire', 'the answer names the tickwire subprotocol, never the bearer entry')
  t.equal(seen.length, 1)
  t.match(seen[0], { sub: 'ada-42', roles: ['player', 'mod'] }, 'the game got the identity')
  t.equal(tw.rooms.byId.get('r1')?.seats[0]?.name, 'Ada', 'the name on the wire is the token\'s, not the query\'s')
  ok.ws.close()
  // The token as a query parameter works too (for clients that cannot set a subprotocol).
  const viaQuery = await attempt(tw.url, { room: 'r1' }, await sign({ sub: 'bob' }), 'query')
  t.ok(isWelcome(viaQuery), 'a token in ?token= plays')
  if (isWelcome(viaQuery)) viaQuery.ws.close()
  const m = parseSamples(await tw.metrics.text())
  for (const reason of ['missing', 'malformed', 'expired', 'signature', 'algorithm', 'audience']) {
    t.ok((m.get(`tickwire_auth_refused_total{reason="${reason}"}`) ?? 0) >= 1, `counted: ${reason}`)
  }
  t.equal(m.get('tickwire_auth_accepted_total'), 2)
  t.equal(m.get('tickwire_http_rejected_total{reason="auth"}'), refusals.length)
  const logged = lines.join('\n')
  for (const tok of tokens) t.notOk(logged.includes(tok), 'no token in the log')
  t.match(logged, /reason=auth/, 'refusals are logged by reason')
})

t.test('a token bound to a room: that room only (403 for another, and for quick play)', async (t) => {
  const { tw } = await authServer(t, 'required')
  const token = await sign({ sub: 'cy', room: 'match-*' })
  const other = await attempt(tw.url, { room: 'lobby' }, token)
  t.ok('status' in other && other.status === 403, 'another room: 403')
  const quick = await attempt(tw.url, {}, token)
  t.ok('status' in quick && quick.status === 403, 'quick play: 403')
  const mine = await attempt(tw.url, { room: 'match-7' }, token)
  t.ok(isWelcome(mine), 'a room the pattern allows: plays')
  if (isWelcome(mine)) mine.ws.close()
  t.equal(parseSamples(await tw.metrics.text()).get('tickwire_auth_refused_total{reason="room"}'), 2)
})

t.test('resume tokens bind to sub: another player with a stolen resume token is refused; the owner resumes', async (t) => {
  const { tw } = await authServer(t, 'required')
  const ada = await sign({ sub: 'ada' })
  const first = await attempt(tw.url, { room: 'r' }, ada)
  if (!isWelcome(first)) throw new Error('not welcomed')
  const w = first.welcome
  ;(first.ws as unknown as { _socket: { destroy(): void } })._socket.destroy() // the seat is held for a resume
  const resume = { room: 'r', player: String(w.playerId), resume: w.resumeToken }
  const thief = await attempt(tw.url, resume, await sign({ sub: 'eve' }))
  t.same(thief, { code: 4010 }, 'eve, with ada\'s resume token: RESUME_INVALID')
  const back = await attempt(tw.url, resume, ada)
  if (!isWelcome(back)) throw new Error(`ada not resumed: ${JSON.stringify(back)}`)
  t.equal(back.welcome.entityId, w.entityId, 'ada resumes her own seat')
  back.ws.close()
})

t.test('--auth optional: no token plays as before; a token is checked when given', async (t) => {
  const { tw } = await authServer(t, 'optional')
  const anon = await attempt(tw.url, { room: 'o', name: 'anon' }, null)
  t.ok(isWelcome(anon), 'no token: plays')
  t.equal(tw.rooms.byId.get('o')?.seats[0]?.name, 'anon')
  const bad = await attempt(tw.url, { room: 'o' }, 'x.y.z')
  t.ok('status' in bad && bad.status === 401, 'a bad token is still refused')
  if (isWelcome(anon)) anon.ws.close()
})

t.test('--auth off (the default): a token is ignored and never echoed', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const o = await attempt(tw.url, { room: 'f' }, 'whatever.token.here')
  if (!isWelcome(o)) throw new Error('not welcomed')
  t.equal(o.protocol, 'tickwire', 'answered with the tickwire subprotocol')
  o.ws.close()
})

for (const alg of ['ES256', 'EdDSA'] as const) {
  t.test(`--auth-algorithm ${alg} with a public key file: a valid token plays; algorithm confusion, tampering, nbf and iss are refused before any seat`, async (t) => {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
    const pem = await exportSPKI(publicKey)
    const dir = mkdtempSync(join(tmpdir(), 'tickwire-auth-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'jwt.pub')
    writeFileSync(file, pem)
    const lines: string[] = []
    const tw = await startTest({ auth: 'required', authAlgorithm: alg, authPublicKey: file, authIssuer: 'backend' }, { log: createLogger('debug', (l) => lines.push(l)) })
    t.teardown(() => tw.stop())
    const signed = (claims: Record<string, unknown>, build: (j: SignJWT) => SignJWT = (j) => j) =>
      build(new SignJWT(claims).setProtectedHeader({ alg }).setIssuer('backend').setExpirationTime('5m')).sign(privateKey)
    const good = await signed({ sub: 'dee', name: 'Dee' })
    const [h, , sig] = good.split('.') as [string, string, string]
    const tampered = `${h}.${Buffer.from(JSON.stringify({ sub: 'admin', iss: 'backend', exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url')}.${sig}`
    // Algorithm confusion: HS256 "signed" with the public key's PEM bytes, as a naive verifier would accept.
    const confused = await new SignJWT({ sub: 'dee' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('backend').setExpirationTime('5m').sign(new TextEncoder().encode(pem))
    const cases: [string, string, string][] = [
      ['algorithm confusion', confused, 'algorithm'],
      ['tampered payload', tampered, 'signature'],
      ['not yet valid', await signed({ sub: 'dee' }, (j) => j.setNotBefore('10m')), 'not_yet_valid'],
      ['wrong issuer', await new SignJWT({ sub: 'dee' }).setProtectedHeader({ alg }).setIssuer('someone-else').setExpirationTime('5m').sign(privateKey), 'issuer'],
      ['no sub', await signed({ name: 'nobody' }), 'malformed'],
    ]
    for (const [what, token] of cases) {
      const o = await attempt(tw.url, { room: 'k' }, token)
      t.ok('status' in o && o.status === 401, `${what}: 401`)
    }
    t.equal(tw.rooms.players, 0, 'no seat taken by any of them')
    const m = parseSamples(await tw.metrics.text())
    for (const [what, , reason] of cases) t.ok((m.get(`tickwire_auth_refused_total{reason="${reason}"}`) ?? 0) >= 1, `${what}: counted as ${reason}`)
    const ok = await attempt(tw.url, { room: 'k', name: 'q' }, good)
    if (!isWelcome(ok)) throw new Error(`${alg} token not welcomed: ${JSON.stringify(ok)}`)
    t.equal(tw.rooms.byId.get('k')?.seats[0]?.name, 'Dee', `a valid ${alg} token plays, with its name`)
    ok.ws.close()
    const logged = lines.join('\n')
    for (const [, token] of cases) t.notOk(logged.includes(token), 'no token in the log')
    t.notOk(logged.includes(good), 'nor the good one')
  })
}
