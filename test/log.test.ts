/**
 * Logs for machines: the real CLI with `--log-format json` and `--auth required`, real clients with
 * join tokens, a resume, bad tokens, a forged resume token, a refused origin and a kicked player.
 * Every stderr line must be one JSON object with the documented fields and types, and no token,
 * resume token or key used in the run may appear anywhere in the output. Also two workers (their
 * lines carry worker=N), and the pretty format as the human one-line format.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { MsgType, decodeServerMessage } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { ConfigError, parseConfig } from '../src/config.js'
import { createLogger, resolveLogFormat, scrub, withFields } from '../src/log.js'
import { dropTcp, freePort, waitFor } from './helpers/server.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))
const SECRET = 'log-test-hs256-secret-0123456789abcdef'
const RESUME_SECRET = 'log-test-resume-secret-0123456789abcdef'
const key = new TextEncoder().encode(SECRET)
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

function sign(claims: Record<string, unknown>, secret: Uint8Array = key, exp: string | number = '5m'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(secret)
}

interface Server {
  readonly child: ChildProcess
  readonly port: number
  readonly url: string
  err(): string
  stop(): Promise<number | null>
}

async function serve(workers: number, extra: string[] = []): Promise<Server> {
  const port = await freePort()
  const args = [main, '--workers', String(workers), '--port', String(port), '--metrics-port', '0', '--host', '127.0.0.1', '--log-format', 'json', '--log-level', 'debug', '--auth', 'required', '--resume-window', '5', ...extra]
  // Keys through the environment, as the README advises: they must not come back in the log either.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TICKWIRE_AUTH_SECRET: SECRET, TICKWIRE_RESUME_SECRET: RESUME_SECRET } })
  let err = ''
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const ready = workers > 1 ? 'supervisor listening' : 'tickwire listening'
  await waitFor(() => err.includes(ready) || child.exitCode !== null, 20000, 'the server to listen')
  if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${err}`)
  return {
    child,
    port,
    url: `ws://127.0.0.1:${port}/play`,
    err: () => err,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM')
      return exited
    },
  }
}

type Outcome = { status: number } | { code: number; ws: WebSocket }

/** One raw upgrade with `protocols` and `headers`: the HTTP status of a refusal, or the open socket after WELCOME. */
function attempt(url: string, query: Record<string, string>, protocols: string[], headers: Record<string, string> = {}): Promise<Outcome> {
  const u = new URL(url)
  u.searchParams.set('v', '3')
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v)
  const ws = new WebSocket(u, protocols, { headers })
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      resolve({ status: res.statusCode ?? 0 })
    })
    ws.on('message', (data: Buffer) => {
      if (decodeServerMessage(new Uint8Array(data)).type === MsgType.WELCOME) resolve({ code: 0, ws })
    })
    ws.on('close', (code) => resolve({ code, ws }))
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err)
    })
  })
}

const LEVELS = new Set(['error', 'warn', 'info', 'debug'])

/** Every line parsed (a non-JSON line fails the test), with the schema checked. */
function checkLines(t: Test, out: string): Record<string, unknown>[] {
  const lines = out.split('\n').filter((l) => l !== '')
  const parsed: Record<string, unknown>[] = []
  for (const line of lines) {
    let o: Record<string, unknown>
    try {
      o = JSON.parse(line) as Record<string, unknown>
    } catch {
      t.fail(`not a JSON line: ${line}`)
      continue
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      t.fail(`not a JSON object: ${line}`)
      continue
    }
    parsed.push(o)
    const bad: string[] = []
    if (!LEVELS.has(o.level as string)) bad.push('level')
    if (typeof o.time !== 'string' || !ISO.test(o.time)) bad.push('time')
    if (typeof o.msg !== 'string' || o.msg === '') bad.push('msg')
    if ('worker' in o && !Number.isInteger(o.worker)) bad.push('worker')
    if ('room' in o && typeof o.room !== 'string') bad.push('room')
    if ('player' in o && !Number.isInteger(o.player)) bad.push('player')
    if ('reason' in o && typeof o.reason !== 'string') bad.push('reason')
    if ('address' in o && typeof o.address !== 'string') bad.push('address')
    if ('code' in o && o.code !== null && !Number.isInteger(o.code)) bad.push('code')
    if ('error' in o && typeof o.error !== 'string') bad.push('error')
    if (bad.length > 0) t.fail(`fields ${bad.join(', ')} off the schema: ${line}`)
  }
  t.ok(parsed.length > 0 && parsed.length === lines.length, `${lines.length} lines, every one a JSON object`)
  return parsed
}

function noSecrets(t: Test, out: string, secrets: readonly string[]): void {
  const found = secrets.filter((s) => s !== '' && out.includes(s))
  t.same(found, [], `none of ${secrets.length} tokens and keys appears in the output`)
  // The parts too: a JWT's signature, a resume token's MAC.
  const parts = secrets.flatMap((s) => s.split('.').filter((p) => p.length >= 16))
  t.same(parts.filter((p) => out.includes(p)), [], 'nor any signature or MAC of them')
}

t.test('one process, --log-format json: joins, a resume, bad tokens, a forged resume, a foreign origin and a kick', async (t) => {
  const s = await serve(1)
  t.teardown(() => void s.stop())
  const secrets: string[] = [SECRET, RESUME_SECRET]
  const good = await sign({ sub: 'ada', name: 'ada' })
  secrets.push(good)
  const c = await TickwireClient.connect(s.url, { room: 'logs', name: 'ada', token: good, timeoutMs: 10_000 })
  t.teardown(() => c.close())
  const first = c.welcome.resumeToken
  t.ok(first !== '', 'a resume token')
  secrets.push(first)
  // The connection drops: the SDK resumes the seat with its resume token.
  const resumed = new Promise<void>((r) => c.on('resumed', () => r()))
  dropTcp(c)
  await resumed
  secrets.push(c.welcome.resumeToken)

  // Bad join tokens: a wrong key, expired, garbage; as a subprotocol and as ?token=.
  const bad = [await sign({ sub: 'eve' }, new TextEncoder().encode('another-secret-another-secret-xxxx')), await sign({ sub: 'eve' }, key, Math.floor(Date.now() / 1000) - 60), 'not-a-jwt-but-secret-looking-0123456789']
  secrets.push(...bad)
  for (const token of bad) {
    t.match(await attempt(s.url, { room: 'logs' }, ['tickwire', `tickwire.bearer.${token}`]), { status: 401 }, 'bad token refused (subprotocol)')
    t.match(await attempt(s.url, { room: 'logs', token }, []), { status: 401 }, 'bad token refused (?token=)')
  }
  // A forged resume token for ada's seat: refused (and logged, without the token).
  const forged = `${first.slice(0, 11)}.7.${'A'.repeat(22)}`
  secrets.push(forged)
  const refusedResume = await attempt(s.url, { room: 'logs', player: String(c.welcome.playerId), resume: forged }, ['tickwire', `tickwire.bearer.${good}`])
  t.ok('code' in refusedResume && refusedResume.code !== 0, 'forged resume token refused')
  // A page on another site: 403, with a valid token in the query.
  const evil = await sign({ sub: 'mallory' })
  secrets.push(evil)
  t.match(await attempt(s.url, { room: 'logs', token: evil }, [], { origin: 'https://evil.example' }), { status: 403 }, 'foreign origin refused')
  // A kick: a player whose frame is garbage is closed by the server.
  const bob = await sign({ sub: 'bob', name: 'bob' })
  secrets.push(bob)
  const o = await attempt(s.url, { room: 'logs' }, ['tickwire', `tickwire.bearer.${bob}`])
  t.ok('ws' in o && o.code === 0, 'bob plays')
  if ('ws' in o) {
    const closed = new Promise<number>((r) => o.ws.on('close', (code) => r(code)))
    o.ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x13]))
    t.not(await closed, 1000, 'bob kicked for a malformed frame')
  }
  await waitFor(() => s.err().includes('bad client frame') && s.err().includes('resume refused'), 5000, 'the security lines')
  c.close()
  t.equal(await s.stop(), 0, 'drains and exits 0')

  const out = s.err()
  const lines = checkLines(t, out)
  noSecrets(t, out, secrets)
  const has = (msg: string) => lines.filter((l) => String(l.msg).includes(msg))
  t.ok(has('tickwire listening').length === 1, 'the start line')
  t.ok(has('join').some((l) => l.room === 'logs' && typeof l.player === 'number'), 'a join line names room and player')
  t.ok(has('resume').some((l) => l.msg === 'resume' && l.room === 'logs'), 'the resume line')
  t.ok(has('security: upgrade refused').some((l) => l.reason === 'auth' && typeof l.address === 'string'), 'a bad token: reason auth, with the address')
  t.ok(has('security: upgrade refused').some((l) => l.reason === 'origin'), 'the foreign origin')
  t.ok(has('security: resume refused').some((l) => l.reason === 'invalid token' && l.player === c.welcome.playerId), 'the forged resume token, by player')
  t.ok(has('security: bad client frame').some((l) => typeof l.reason === 'string' && typeof l.player === 'number'), 'the kick: reason and player')
  t.ok(has('leave').some((l) => typeof l.reason === 'string' && typeof l.code === 'number'), 'leave lines: reason and close code')
  t.ok(lines.every((l) => !('worker' in l)), 'a single process names no worker')
})

t.test('two workers: worker lines are JSON objects of their own, with worker=N', async (t) => {
  const s = await serve(2)
  t.teardown(() => void s.stop())
  const secrets: string[] = [SECRET, RESUME_SECRET]
  const clients: TickwireClient[] = []
  for (const [i, room] of ['w-a', 'w-b', 'w-c', 'w-d'].entries()) {
    const token = await sign({ sub: `p${i}`, name: `p${i}` })
    secrets.push(token)
    const c = await TickwireClient.connect(s.url, { room, name: `p${i}`, token, timeoutMs: 10_000 })
    clients.push(c)
    secrets.push(c.welcome.resumeToken)
  }
  const bad = await sign({ sub: 'eve' }, new TextEncoder().encode('another-secret-another-secret-xxxx'))
  secrets.push(bad)
  t.match(await attempt(s.url, { room: 'w-a', token: bad }, []), { status: 401 })
  for (const c of clients) c.close()
  t.equal(await s.stop(), 0, 'drains and exits 0')
  const out = s.err()
  const lines = checkLines(t, out)
  noSecrets(t, out, secrets)
  const listening = lines.filter((l) => l.msg === 'tickwire listening')
  t.same(listening.map((l) => l.worker).sort(), [0, 1], 'each worker logs its start with its slot')
  t.ok(lines.some((l) => l.msg === 'tickwire supervisor listening' && !('worker' in l)), 'the supervisor line')
  const joins = lines.filter((l) => l.msg === 'join')
  t.equal(joins.length, clients.length, 'a join line per player')
  t.ok(joins.every((l) => (l.worker === 0 || l.worker === 1) && typeof l.room === 'string' && typeof l.player === 'number'), 'join lines carry their worker, room and player')
})

t.test('pretty is the human one-line format; json is one object per line; disabled levels write nothing', async (t) => {
  const lines: string[] = []
  const pretty = createLogger('info', { format: 'pretty', write: (l) => lines.push(l) })
  pretty.info('worker exited; replacing it', { worker: 0, code: null, signal: 'SIGKILL', rooms: ['a', 'b'] })
  pretty.debug('not shown')
  withFields(pretty, { worker: 2 }).warn('security: upgrade refused', { address: '127.0.0.1', reason: 'origin' })
  t.equal(lines.length, 2)
  t.match(lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info worker exited; replacing it worker=0 code=null signal=SIGKILL rooms=\["a","b"\]$/)
  t.match(lines[1], / warn security: upgrade refused worker=2 address=127\.0\.0\.1 reason=origin$/)
  // A function alone is the pretty format (how in-process tests capture lines).
  const legacy: string[] = []
  createLogger('debug', (l) => legacy.push(l)).debug('join', { player: 1, room: 'r' })
  t.match(legacy[0], / debug join player=1 room=r$/)
  const quiet = createLogger('warn', { format: 'json', write: () => t.fail('written') })
  t.equal(withFields(quiet, { worker: 1 }).debug, quiet.debug, 'a disabled level stays the one no-op through withFields')

  const json: string[] = []
  const j = createLogger('info', { format: 'json', write: (l) => json.push(l) })
  j.error('long', { error: 'x'.repeat(10_000) })
  j.info('fields', { worker: 1, msg: 'shadow', level: 'shadow' })
  for (const l of json) t.notMatch(l, /\n/, 'one line')
  const [long, fields] = json.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(Buffer.byteLength(json[0] ?? '') < 4096, 'a long line is cut below PIPE_BUF (atomic on a shared pipe)')
  t.equal(long?.truncated, true)
  t.match(fields, { level: 'info', msg: 'fields', worker: 1, msg_: 'shadow', level_: 'shadow' }, 'a field cannot overwrite level or msg')
  t.equal((json[1]?.match(/"msg":/g) ?? []).length, 1, 'no duplicate keys')
})

t.test('secrets are censored by key, in URLs and in free text', async (t) => {
  const json: string[] = []
  const j = createLogger('debug', { format: 'json', write: (l) => json.push(l) })
  const jwt = await sign({ sub: 'ada' })
  const resume = `${'a'.repeat(11)}.3.${'b'.repeat(22)}`
  j.info('keys', { token: jwt, resume, resumeToken: resume, authorization: `Bearer ${jwt}`, headers: { authorization: 'Basic dXNlcjpwYXNz', cookie: 'sid=1' }, secret: 's', password: 'p', ticket: 't', jwt })
  j.warn('urls', { url: `/play?room=a&token=${jwt}&name=x`, query: `resume=${resume}&player=3`, jwks: 'https://login.example.com/keys?access_token=abc123def456' })
  j.error(`free text with ${jwt} and ?token=${jwt}`, { error: `upgrade of ws://h/play?resume=${resume} failed; redis://user:hunter2hunter2@redis:6379 down` })
  const out = json.join('\n')
  for (const s of [jwt, resume, 'dXNlcjpwYXNz', 'sid=1', 'abc123def456', 'hunter2hunter2', jwt.split('.')[2] as string]) t.notOk(out.includes(s), `no ${s.slice(0, 12)}...`)
  const [keys, urls] = json.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(keys, { token: '[redacted]', resume: '[redacted]', authorization: '[redacted]', headers: { authorization: '[redacted]', cookie: '[redacted]' }, secret: '[redacted]' })
  t.match(urls, { url: '/play?room=a&token=[redacted]&name=x', query: 'resume=[redacted]&player=3' }, 'URLs keep what is not secret')
  t.equal(scrub('room=lobby player=3 reason=origin'), 'room=lobby player=3 reason=origin', 'ordinary fields untouched')
  // The pretty format goes through the same redaction.
  const lines: string[] = []
  createLogger('info', (l) => lines.push(l)).info('p', { token: jwt, url: `/play?token=${jwt}` })
  t.notOk(lines.join('\n').includes(jwt), 'pretty lines are redacted too')
})

t.test('--log-format: json | pretty, default by terminal, validated once', async (t) => {
  t.equal(resolveLogFormat('', true), 'pretty', 'a terminal: pretty')
  t.equal(resolveLogFormat('', false), 'json', 'a pipe or file: json')
  t.equal(resolveLogFormat('json', true), 'json')
  t.equal(resolveLogFormat('pretty', false), 'pretty')
  t.equal(parseConfig(['--log-format', 'json']).config.logFormat, 'json')
  t.equal(parseConfig([], { TICKWIRE_LOG_FORMAT: 'pretty' }).config.logFormat, 'pretty')
  t.throws(() => parseConfig(['--log-format', 'xml']), new ConfigError('--log-format: got "xml", expected one of json, pretty (or empty: pretty on a terminal, else json)'))
})

t.test('with JSON lines an uncaught exception or rejection is one error line, and the process exits 1', async (t) => {
  const log = new URL('../dist/src/log.js', import.meta.url).href
  for (const [what, fail] of [['exception', "setTimeout(() => { throw new Error('boom ?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln') })"], ['rejection', "Promise.reject(new Error('boom'))"]] as const) {
    const code = `import { createLogger, exitOnUncaught } from '${log}'; exitOnUncaught(createLogger('info', { format: 'json' }), 'json'); ${fail}`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 10000 })
    t.equal(r.status, 1, `${what}: exit 1`)
    const lines = r.stderr.split('\n').filter((l) => l !== '')
    t.equal(lines.length, 1, `${what}: one line (${r.stderr})`)
    const o = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>
    t.match(o, { level: 'error', msg: new RegExp(`^(uncaught exception|unhandled rejection): exiting$`), error: /boom/ })
    t.notMatch(r.stderr, /eyJzdWIiOiJhIn0/, 'scrubbed like any line')
  }
})
