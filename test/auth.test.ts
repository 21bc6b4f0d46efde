import t, { type Test } from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { AuthFailure, roomAllowed, tokenOf, type AuthAlgorithm, type AuthOutcome, type Identity } from '../src/auth/auth.js'
import { createVerifier, MAX_TOKEN_CHARS, type VerifierOptions } from '../src/auth/jwt.js'
import { createLogger } from '../src/log.js'

const SECRET = 'a-test-secret-of-more-than-32-characters'
const ISS = 'https://auth.example.com'
const AUD = 'tickwire-test'
const now = (): number => Math.floor(Date.now() / 1000)
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')

const dir = mkdtempSync(join(tmpdir(), 'tickwire-auth-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
function file(content: string): string {
  const p = join(dir, `f${files++}`)
  writeFileSync(p, content)
  return p
}

/** Every log line the verifiers write: a token must never be among them. */
const logged: string[] = []
const log = createLogger('debug', (l) => logged.push(l))

type Pair = { publicKey: CryptoKey; privateKey: CryptoKey; pem: string; jwk: JWK }
async function pair(alg: Exclude<AuthAlgorithm, 'HS256'>): Promise<Pair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  return { publicKey, privateKey, pem: await exportSPKI(publicKey), jwk: await exportJWK(publicKey) }
}
const keys = { ES256: await pair('ES256'), EdDSA: await pair('EdDSA'), RS256: await pair('RS256') }
const other = await pair('ES256')

function opts(algorithm: AuthAlgorithm, more: Partial<VerifierOptions> = {}): VerifierOptions {
  return { algorithm, secret: '', publicKeyFile: '', jwks: '', issuer: ISS, audience: AUD, clockToleranceSeconds: 5, log, ...more }
}
const pemOpts = (alg: Exclude<AuthAlgorithm, 'HS256'>, more: Partial<VerifierOptions> = {}) => opts(alg, { publicKeyFile: file(keys[alg].pem), ...more })

const signingKey = (alg: AuthAlgorithm): CryptoKey | Uint8Array => (alg === 'HS256' ? new TextEncoder().encode(SECRET) : keys[alg].privateKey)

/** A token as an issuer would mint it: iss, aud, iat, exp in 10 minutes, `claims` over those. */
async function token(alg: AuthAlgorithm, claims: JWTPayload = {}, key = signingKey(alg), kid?: string): Promise<string> {
  const body: JWTPayload = { sub: 'player-1', iss: ISS, aud: AUD, iat: now(), exp: now() + 600, ...claims }
  return new SignJWT(body).setProtectedHeader(kid ? { alg, kid } : { alg }).sign(key)
}

function refused(t: Test, out: AuthOutcome, reason: AuthFailure, status = 401): void {
  t.same(out, { ok: false, status, reason }, reason)
}

t.test('valid tokens of each algorithm verify to the right Identity', async (t) => {
  const verifiers = {
    HS256: await createVerifier(opts('HS256', { secret: SECRET })),
    ES256: await createVerifier(pemOpts('ES256')),
    EdDSA: await createVerifier(pemOpts('EdDSA')),
    RS256: await createVerifier(pemOpts('RS256')),
  }
  for (const [alg, v] of Object.entries(verifiers) as [AuthAlgorithm, (typeof verifiers)['HS256']][]) {
    const exp = now() + 600
    const out = await v.verify(await token(alg, { name: 'Ålice', roles: ['mod', 'beta'], room: 'lobby-*', exp }))
    t.same(out, { ok: true, identity: { sub: 'player-1', name: 'Ålice', roles: ['mod', 'beta'], room: 'lobby-*', expiresAt: exp * 1000 } }, alg)
  }
  // Defaults: name from sub (cut to 32 bytes on a character boundary), no roles, any room.
  const v = verifiers.HS256
  const sub = 'é'.repeat(20) // 40 bytes
  const exp = now() + 600
  const out = await v.verify(await token('HS256', { sub, exp }))
  t.ok(out.ok, JSON.stringify(out))
  const id = (out as { identity: Identity }).identity
  t.equal(id.name, 'é'.repeat(16))
  t.equal(id.sub, sub)
  t.same(id.roles, [])
  t.equal(id.room, null)
  t.equal(id.expiresAt, exp * 1000)
  // A join token without `exp` would be good forever: refused.
  t.same(await v.verify(await token('HS256', { sub, exp: undefined })), { ok: false, status: 401, reason: 'malformed' }, 'no exp: refused')
  // Without --auth-issuer / --auth-audience those claims are not asked for.
  const open = await createVerifier(opts('HS256', { secret: SECRET, issuer: '', audience: '' }))
  t.ok((await open.verify(await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(signingKey('HS256')))).ok)
  // A closed verifier refuses everything.
  v.close()
  refused(t, await v.verify(await token('HS256')), AuthFailure.KEYS, 503)
  for (const w of [...Object.values(verifiers), open]) w.close()
})

t.test('the refusal matrix: each bad token with its reason and status', async (t) => {
  const es = await createVerifier(pemOpts('ES256'))
  const rs = await createVerifier(pemOpts('RS256'))
  const ed = await createVerifier(pemOpts('EdDSA'))
  const hs = await createVerifier(opts('HS256', { secret: SECRET }))

  refused(t, await es.verify(await token('ES256', { exp: now() - 60 })), AuthFailure.EXPIRED)
  refused(t, await es.verify(await token('ES256', { nbf: now() + 60 })), AuthFailure.NOT_YET_VALID)
  refused(t, await es.verify(await token('ES256', { iat: now() + 60 })), AuthFailure.NOT_YET_VALID)
  refused(t, await es.verify(await token('ES256', { aud: 'another-game' })), AuthFailure.AUDIENCE)
  refused(t, await es.verify(await token('ES256', { aud: undefined })), AuthFailure.AUDIENCE)
  refused(t, await es.verify(await token('ES256', { iss: 'https://evil.example.com' })), AuthFailure.ISSUER)
  refused(t, await es.verify(await token('ES256', {}, other.privateKey)), AuthFailure.SIGNATURE)
  refused(t, await hs.verify(await token('HS256', {}, new TextEncoder().encode('another-secret-of-more-than-32-characters'))), AuthFailure.SIGNATURE)

  // alg none, hand-built, with and without a signature part.
  const body = b64({ sub: 'player-1', iss: ISS, aud: AUD, exp: now() + 600 })
  for (const v of [es, hs, ed]) {
    refused(t, await v.verify(`${b64({ alg: 'none' })}.${body}.`), AuthFailure.ALGORITHM)
    refused(t, await v.verify(`${b64({ alg: 'none', typ: 'JWT' })}.${body}`), AuthFailure.MALFORMED)
  }
  // Algorithm confusion: HS256 keyed with the public key's PEM bytes, where ES256/RS256 is configured.
  for (const [alg, v] of [['ES256', es], ['RS256', rs]] as const) {
    refused(t, await v.verify(await token('HS256', {}, new TextEncoder().encode(keys[alg].pem))), AuthFailure.ALGORITHM)
  }
  refused(t, await ed.verify(await token('HS256')), AuthFailure.ALGORITHM)
  refused(t, await ed.verify(await token('ES256')), AuthFailure.ALGORITHM)

  // Tampered payload: one character of the payload part flipped.
  const good = await token('EdDSA', { name: 'bob' })
  const [h, p, s] = good.split('.') as [string, string, string]
  const i = Math.floor(p.length / 2)
  const flipped = `${h}.${p.slice(0, i)}${p[i] === 'A' ? 'B' : 'A'}${p.slice(i + 1)}.${s}`
  refused(t, await ed.verify(flipped), AuthFailure.SIGNATURE)
  t.ok((await ed.verify(good)).ok, 'the untampered one verifies')

  for (const garbage of ['', 'garbage', 'a.b.c', '...', `${b64('not an object')}.${body}.${s}`]) {
    refused(t, await es.verify(garbage), AuthFailure.MALFORMED)
  }
  // A bad payload part is not even decoded when the signature does not match.
  refused(t, await ed.verify(`${h}.%%%.${s}`), AuthFailure.SIGNATURE)
  // A payload that is not JSON, signed properly.
  refused(t, await hs.verify(await signRaw('HS256', Buffer.from('not json'))), AuthFailure.MALFORMED)

  // Over-long: refused before any crypto, even when it would otherwise verify.
  const long = await token('HS256', { pad: 'x'.repeat(MAX_TOKEN_CHARS) })
  t.ok(long.length > MAX_TOKEN_CHARS)
  refused(t, await hs.verify(long), AuthFailure.MALFORMED)
  refused(t, await hs.verify('x'.repeat(100_000)), AuthFailure.MALFORMED)

  // Claims of the wrong shape (all signed with the right key).
  const bad: JWTPayload[] = [
    { sub: undefined },
    { sub: 42 as unknown as string },
    { sub: '' },
    { name: 7 },
    { name: '' },
    { name: 'x'.repeat(33) },
    { name: 'é'.repeat(17) }, // 17 characters, 34 bytes
    { name: 'bad\nname' },
    { name: 'bell\u0007' },
    { name: 'lone\ud800' },
    { roles: 'admin' },
    { roles: ['ok', 3] },
    { room: 5 },
    { room: 'has space' },
    { room: 'x'.repeat(33) },
    { room: '' },
    { exp: 'soon' as unknown as number },
  ]
  for (const c of bad) refused(t, await hs.verify(await token('HS256', c)), AuthFailure.MALFORMED)
  t.ok((await hs.verify(await token('HS256', { name: 'x'.repeat(32), room: 'A-z_09*' }))).ok, 'exactly 32 bytes and every room character pass')
  // A control character in sub is replaced in the default name, the sub kept as is.
  const ctl = await hs.verify(await token('HS256', { sub: 'id\u0000x' }))
  t.same(ctl.ok && [ctl.identity.sub, ctl.identity.name], ['id\u0000x', 'id_x'])

  for (const v of [es, rs, ed, hs]) v.close()
})

/** A compact JWS over arbitrary payload bytes (SignJWT only signs JSON). */
async function signRaw(alg: 'HS256', payload: Buffer): Promise<string> {
  const { createHmac } = await import('node:crypto')
  const input = `${b64({ alg })}.${payload.toString('base64url')}`
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`
}

t.test('clock tolerance: 3 s late passes with 5 s of tolerance, 10 s late does not', async (t) => {
  const v = await createVerifier(pemOpts('ES256', { clockToleranceSeconds: 5 }))
  t.ok((await v.verify(await token('ES256', { exp: now() - 3 }))).ok, 'expired 3 s ago')
  refused(t, await v.verify(await token('ES256', { exp: now() - 10 })), AuthFailure.EXPIRED)
  t.ok((await v.verify(await token('ES256', { nbf: now() + 3, iat: now() + 3 }))).ok, 'valid in 3 s')
  refused(t, await v.verify(await token('ES256', { nbf: now() + 10 })), AuthFailure.NOT_YET_VALID)
  const strict = await createVerifier(pemOpts('ES256', { clockToleranceSeconds: 0 }))
  refused(t, await strict.verify(await token('ES256', { exp: now() - 3 })), AuthFailure.EXPIRED)
})

t.test('a JWKS file with two keys picks the one the kid names', async (t) => {
  const second = await pair('ES256')
  const set = { keys: [{ ...keys.ES256.jwk, kid: 'k1', use: 'sig' }, { ...second.jwk, kid: 'k2' }, { ...keys.RS256.jwk, kid: 'r1' }] }
  const v = await createVerifier(opts('ES256', { jwks: file(JSON.stringify(set)) }))
  t.ok((await v.verify(await token('ES256', { sub: 'a' }, keys.ES256.privateKey, 'k1'))).ok, 'k1')
  t.ok((await v.verify(await token('ES256', { sub: 'b' }, second.privateKey, 'k2'))).ok, 'k2')
  refused(t, await v.verify(await token('ES256', {}, second.privateKey, 'k1')), AuthFailure.SIGNATURE)
  refused(t, await v.verify(await token('ES256', {}, keys.ES256.privateKey, 'k9')), AuthFailure.SIGNATURE)
  // No kid: both EC keys fit; each is tried.
  t.ok((await v.verify(await token('ES256', {}, second.privateKey))).ok, 'no kid, second key')
  refused(t, await v.verify(await token('ES256', {}, other.privateKey)), AuthFailure.SIGNATURE)
  refused(t, await v.verify(await token('HS256', {}, new TextEncoder().encode(SECRET), 'k1')), AuthFailure.ALGORITHM)
})

/** A JWKS server on 127.0.0.1 that counts requests; `mode` says how it answers. */
async function jwksServer(t: Test, body: () => unknown) {
  const state = { requests: 0, mode: 'ok' as 'ok' | 'silent' | 'error' }
  const sockets = new Set<Socket>()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.requests++
    if (state.mode === 'silent') return // never answers
    if (state.mode === 'error') return void res.writeHead(500).end('oops')
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(body()))
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { state, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json` }
}

t.test('a JWKS URL: fetched once at start, cached, refetched for a new kid', async (t) => {
  let set: { keys: JWK[] } = { keys: [{ ...keys.EdDSA.jwk, kid: 'e1' }] }
  const srv = await jwksServer(t, () => set)
  const v = await createVerifier(opts('EdDSA', { jwks: srv.url, jwksCooldownMs: 0 }))
  t.teardown(() => v.close())
  t.ok((await v.verify(await token('EdDSA', { sub: 'a' }, keys.EdDSA.privateKey, 'e1'))).ok)
  t.ok((await v.verify(await token('EdDSA', { sub: 'b' }, keys.EdDSA.privateKey, 'e1'))).ok)
  t.equal(srv.state.requests, 1, 'one fetch for the start and both verifies')
  // Key rotation: a token with a kid the cache does not know makes one refetch.
  const next = await pair('EdDSA')
  set = { keys: [{ ...keys.EdDSA.jwk, kid: 'e1' }, { ...next.jwk, kid: 'e2' }] }
  t.ok((await v.verify(await token('EdDSA', {}, next.privateKey, 'e2'))).ok, 'rotated key')
  t.equal(srv.state.requests, 2)
  t.ok(logged.some((l) => l.includes('JWKS fetched')))
})

t.test('a JWKS URL that does not answer: keys_unavailable 503 within the timeout; old keys keep working', async (t) => {
  const srv = await jwksServer(t, () => ({ keys: [{ ...keys.ES256.jwk, kid: 'k1' }] }))
  srv.state.mode = 'silent'
  const v = await createVerifier(opts('ES256', { jwks: srv.url, jwksTimeoutMs: 300, jwksRetryMs: 0 }))
  t.teardown(() => v.close())
  const tok = await token('ES256', {}, keys.ES256.privateKey, 'k1')
  let start = performance.now()
  refused(t, await v.verify(tok), AuthFailure.KEYS, 503)
  t.ok(performance.now() - start < 5000, `answered in ${Math.round(performance.now() - start)} ms (timeout 300 ms)`)
  srv.state.mode = 'error'
  refused(t, await v.verify(tok), AuthFailure.KEYS, 503)
  // Back up: the keys are fetched and cached ...
  srv.state.mode = 'ok'
  t.ok((await v.verify(tok)).ok, 'server back')
  t.ok(logged.some((l) => l.includes('JWKS fetch failed')))

  // ... and once the cache is old and the server silent again, the last keys still answer.
  const w = await createVerifier(opts('ES256', { jwks: srv.url, jwksTimeoutMs: 300, jwksCacheMaxAgeMs: 1, jwksRetryMs: 60_000 }))
  t.teardown(() => w.close())
  t.ok((await w.verify(tok)).ok, 'fresh keys')
  srv.state.mode = 'silent'
  await new Promise((r) => setTimeout(r, 20))
  start = performance.now()
  t.ok((await w.verify(tok)).ok, 'stale keys while the server is down')
  const before = srv.state.requests
  t.ok((await w.verify(tok)).ok, 'and again, without waiting on a new fetch')
  t.equal(srv.state.requests, before, 'no fetch within the retry window')
  t.ok(performance.now() - start < 5000)
})

t.test('start-up errors name the option', async (t) => {
  const missing = join(dir, 'no-such-key.pem')
  await t.rejects(createVerifier(opts('ES256', { publicKeyFile: missing })), { message: /--auth-public-key: cannot read .*ENOENT/ })
  await t.rejects(createVerifier(opts('ES256', { publicKeyFile: file('hello, not a key\n') })), { message: /--auth-public-key: .* is not a PEM public key/ })
  const { exportPKCS8 } = await import('jose')
  await t.rejects(createVerifier(opts('ES256', { publicKeyFile: file(await exportPKCS8(keys.ES256.privateKey)) })), { message: /--auth-public-key: .*this is a private key/ })
  await t.rejects(createVerifier(opts('ES256', { publicKeyFile: file(keys.RS256.pem) })), { message: /--auth-public-key: .* is not a public key for ES256/ })
  await t.rejects(createVerifier(opts('EdDSA', { publicKeyFile: file(keys.ES256.pem) })), { message: /--auth-public-key: .* is not a public key for EdDSA/ })
  await t.rejects(createVerifier(opts('RS256', { publicKeyFile: file('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n') })), { message: /--auth-public-key/ })
  await t.rejects(createVerifier(opts('ES256', { jwks: missing })), { message: /--auth-jwks: cannot read/ })
  await t.rejects(createVerifier(opts('ES256', { jwks: file('{not json') })), { message: /--auth-jwks: cannot read .* as JSON/ })
  await t.rejects(createVerifier(opts('ES256', { jwks: file('{"nokeys": []}') })), { message: /--auth-jwks .*: not a JWK Set/ })
  await t.rejects(createVerifier(opts('ES256', { jwks: file(JSON.stringify({ keys: [keys.RS256.jwk] })) })), { message: /--auth-jwks .*: no key in the set fits --auth-algorithm ES256/ })
  await t.rejects(createVerifier(opts('ES256', { jwks: file(JSON.stringify({ keys: [{ ...keys.ES256.jwk, x: 'AAAA' }] })) })), { message: /--auth-jwks .*: key 0 cannot be used for ES256/ })
  const priv = await exportJWK(keys.ES256.privateKey)
  await t.rejects(createVerifier(opts('ES256', { jwks: file(JSON.stringify({ keys: [priv] })) })), { message: /--auth-jwks .*: key 0 is a private or secret key/ })
  await t.rejects(createVerifier(opts('ES256', { jwks: 'http://keys.example.com/jwks.json' })), { message: /--auth-jwks: http:\/\/keys.example.com must be https:\/\// })
  await t.rejects(createVerifier(opts('ES256', { jwks: 'https://user:pw@keys.example.com/jwks.json' })), { message: /--auth-jwks: the URL must not carry credentials/ })
  await t.rejects(createVerifier(opts('HS256', { secret: 'short' })), { message: /--auth-secret/ })
})

t.test('tokens never reach the log', async (t) => {
  const v = await createVerifier(opts('HS256', { secret: SECRET }))
  const tok = await token('HS256', { exp: now() - 60 })
  refused(t, await v.verify(tok), AuthFailure.EXPIRED)
  t.ok(logged.some((l) => l.includes('reason=expired')), 'the reason is logged')
  const [, payload, sig] = tok.split('.') as [string, string, string]
  t.notOk(logged.some((l) => l.includes(payload) || l.includes(sig)), 'no token part in any line')
})

t.test('tokenOf: the subprotocol bearer entry, else the query token', async (t) => {
  t.same(tokenOf('', null), { token: null, protocol: '' })
  t.same(tokenOf('', 'q.q.q'), { token: 'q.q.q', protocol: '' })
  t.same(tokenOf('tickwire, tickwire.bearer.a.b.c', 'q'), { token: 'a.b.c', protocol: 'tickwire' })
  t.same(tokenOf('tickwire.bearer.a.b.c,tickwire', null), { token: 'a.b.c', protocol: 'tickwire' })
  t.same(tokenOf('tickwire.bearer.a.b.c', null), { token: 'a.b.c', protocol: '' }, 'never echoes the bearer entry')
  t.same(tokenOf('chat, tickwire.bearer.x', null), { token: 'x', protocol: 'chat' })
  t.same(tokenOf('tickwire.bearer.first, tickwire.bearer.second, tickwire', null), { token: 'first', protocol: 'tickwire' })
  t.same(tokenOf('tickwire', 'q'), { token: 'q', protocol: 'tickwire' }, 'no bearer entry: query token, header kept')
})

t.test('roomAllowed: exact ids, * patterns, quick play', async (t) => {
  const id = (room: string | null): Identity => ({ sub: 's', name: 's', roles: [], room, expiresAt: 0 })
  t.ok(roomAllowed(id(null), null))
  t.ok(roomAllowed(id(null), 'any'))
  t.ok(roomAllowed(id('r1'), 'r1'))
  t.notOk(roomAllowed(id('r1'), 'r12'))
  t.notOk(roomAllowed(id('r1'), null), 'a room-bound token does not allow quick play')
  t.ok(roomAllowed(id('lobby-*'), 'lobby-'))
  t.ok(roomAllowed(id('lobby-*'), 'lobby-eu_1'))
  t.notOk(roomAllowed(id('lobby-*'), 'xlobby-1'))
  t.ok(roomAllowed(id('*-eu'), 'a-b-eu'))
  t.notOk(roomAllowed(id('*-eu'), 'a-eu-x'))
  t.ok(roomAllowed(id('*'), 'anything_1'))
  t.notOk(roomAllowed(id('*'), null))
  t.ok(roomAllowed(id('a*b*c'), 'aXXbYc'))
  t.notOk(roomAllowed(id('a*c'), 'a.c'), '* stands for id characters only')
})

t.test('a storm past maxInFlight waits its turn: every token verifies, the bad ones are still refused', async (t) => {
  const v = await createVerifier(opts('HS256', { secret: SECRET, maxInFlight: 2 }))
  const good = await token('HS256')
  const bad = await token('HS256', { exp: now() - 60 })
  const outs = await Promise.all(Array.from({ length: 300 }, (_, i) => v.verify(i % 3 === 0 ? bad : good)))
  t.equal(outs.filter((o) => o.ok).length, 200)
  t.equal(outs.filter((o) => !o.ok && o.reason === AuthFailure.EXPIRED).length, 100)
  t.ok((await v.verify(good)).ok, 'slots are all given back')
})

t.test('a room pattern of many stars is matched in linear time (no regex backtracking)', async (t) => {
  const identity: Identity = { sub: 's', name: 's', roles: [], room: '*a'.repeat(16), expiresAt: 0 }
  const t0 = performance.now()
  t.notOk(roomAllowed(identity, `${'a'.repeat(31)}b`))
  t.ok(roomAllowed({ ...identity, room: '*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a' }, 'a'.repeat(32)))
  const ms = performance.now() - t0
  t.ok(ms < 50, `${ms.toFixed(2)} ms for the worst case (a backtracking regex took seconds)`)
})
