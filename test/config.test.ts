import t from 'tap'
import { ConfigError, OPTIONS, defaultConfig, defaultNodeId, envName, flagName, helpText, parseConfig, redactUrl } from '../src/config.js'

t.test('defaults match the issue: port 9001, 30 Hz, metrics 9464', async (t) => {
  const c = defaultConfig()
  t.equal(c.port, 9001)
  t.equal(c.tickHz, 30)
  t.equal(c.metricsPort, 9464)
  t.ok(Object.isFrozen(parseConfig([]).config))
})

t.test('flags, --flag=value and environment, flags winning', async (t) => {
  const { config } = parseConfig(['--port', '7000', '--tick-hz=20'], { TICKWIRE_PORT: '8000', TICKWIRE_METRICS_PORT: '0' })
  t.equal(config.port, 7000)
  t.equal(config.tickHz, 20)
  t.equal(config.metricsPort, 0)
})

t.test('errors name the option, the value and what was expected', async (t) => {
  t.throws(() => parseConfig(['--port', '70000']), { name: 'ConfigError', message: /--port \(port\): got 70000, expected 0 to 65535/ })
  t.throws(() => parseConfig(['--tick-hz', 'fast']), { message: /--tick-hz \(tickHz\): got "fast", expected a number/ })
  t.throws(() => parseConfig(['--max-visible', '2.5']), { message: /expected an integer/ })
  t.throws(() => parseConfig([], { TICKWIRE_TICK_HZ: '0' }), { message: /TICKWIRE_TICK_HZ \(tickHz\): got 0, expected 1 to 240/ })
  t.throws(() => parseConfig(['--nope', '1']), { message: /unknown option "--nope"/ })
  t.throws(() => parseConfig(['--port']), { message: /--port needs a value/ })
  t.throws(() => parseConfig(['--soft-backpressure', '9000', '--hard-backpressure', '9000']), { message: /must be greater than --soft-backpressure/ })
  t.throws(() => parseConfig(['--ack-window', '40', '--history-ticks', '32']), { message: /must be less than --history-ticks/ })
  t.throws(() => parseConfig(['--log-level', 'loud']), { message: /expected one of error, warn, info, debug/ })
  t.throws(() => parseConfig(['--port', '9000', '--metrics-port', '9000']), ConfigError)
  t.throws(() => parseConfig([], { TICKWIRE_RESUME_SECRET: 'short' }), { message: /--resume-secret: got 5 characters, expected at least 32/ })
  t.throws(() => parseConfig(['--direct-port', '65535', '--workers', '2']), { message: /last direct port would exceed 65535/ })
  t.equal(parseConfig([], { TICKWIRE_RESUME_SECRET: 'x'.repeat(32) }).config.resumeSecret, 'x'.repeat(32))
})

t.test('--help lists every option with its flag, env var, default and unit', async (t) => {
  t.equal(parseConfig(['--help']).help, true)
  const text = helpText()
  for (const [key, spec] of Object.entries(OPTIONS)) {
    t.match(text, flagName(key), key)
    t.match(text, envName(key), key)
    if (spec.default !== '') t.match(text, String(spec.default), key)
  }
  t.equal(envName('metricsPort'), 'TICKWIRE_METRICS_PORT')
  t.equal(flagName('maxPlayersPerRoom'), '--max-players-per-room')
})

t.test('start-up checks the config against the game: memory, grid, backpressure caps', async (t) => {
  const { start } = await import('../src/main.js')
  const { silent } = await import('./helpers/server.js')
  const run = (o: Parameters<typeof defaultConfig>[0]) => start(defaultConfig({ port: 0, metricsPort: 0, ...o }), { log: silent })
  await t.rejects(run({ aoiRadius: 1 }), { name: 'ConfigError', message: /--aoi-radius 1 cuts the game's .* grid cells per room; at most 1000000/ })
  await t.rejects(run({ historyTicks: 4096, ackWindow: 12, maxPlayersPerRoom: 4096 }), { message: /--history-ticks 4096 with --max-players-per-room 4096 .* MiB per room; at most 1024 MiB/ })
  await t.rejects(run({ ackWindow: 4000, historyTicks: 4096, maxVisible: 512 }), { message: /--ack-window 4000 with --max-visible 512 needs \d+ MiB per player; at most 2 MiB/ })
  await t.rejects(run({ ackWindow: 2000, historyTicks: 4096, maxVisible: 512 }), { message: /--max-players 15000 at \d+ KiB each .* at most 8192 MiB/ })
  await t.rejects(run({ softBackpressure: 64 * 1024, hardBackpressure: 64 * 1024 + 100 }), { message: /must be at least --soft-backpressure plus one frame/ })
})

t.test('start-up validates the game definition', async (t) => {
  const { start, arena } = await import('../src/main.js')
  const { silent } = await import('./helpers/server.js')
  const run = (g: object) => start(defaultConfig({ port: 0, metricsPort: 0 }), { log: silent, game: { ...arena, ...g } })
  await t.rejects(run({ fields: [] }), { message: /game "arena": needs 1 to 7 replicated fields, has 0/ })
  await t.rejects(run({ fields: [{ name: 'x', quantum: 0 }, { name: 'y', quantum: 1 }] }), { message: /field x: quantum must be a finite number > 0/ })
  await t.rejects(run({ fields: [{ name: 'x', quantum: 1 }, { name: 'x', quantum: 1 }] }), { message: /field names must be unique/ })
  await t.rejects(run({ position: ['x', 'z'] }), { message: /position field "z" is not a replicated field/ })
  await t.rejects(run({ input: [{ name: 'a', min: 1, max: 0 }] }), { message: /input a: min and max must be 32-bit integers with min <= max/ })
  await t.rejects(run({ input: Array.from({ length: 257 }, (_, i) => ({ name: `i${i}`, min: 0, max: 1 })) }), { message: /at most 256 input values/ })
  await t.rejects(run({ layout: () => ({ capacity: 70000, width: 100, height: 100 }) }), { message: /capacity must be an integer in 1\.\.65536, got 70000/ })
  await t.rejects(run({ layout: () => ({ capacity: 10, width: 0, height: 100 }) }), { message: /width and height must be finite and > 0/ })
})

t.test('many-machines options: --redis-url needs --resume-secret; bad URLs and node ids name the option', async (t) => {
  const secret = 'x'.repeat(32)
  t.throws(() => parseConfig(['--redis-url', 'redis://127.0.0.1:6379']), { name: 'ConfigError', message: /--redis-url needs --resume-secret/ })
  t.equal(parseConfig(['--redis-url', 'redis://127.0.0.1:6379', '--resume-secret', secret]).config.redisUrl, 'redis://127.0.0.1:6379')
  t.equal(parseConfig([], { TICKWIRE_REDIS_URL: 'rediss://r.example:6380', TICKWIRE_RESUME_SECRET: secret }).config.redisUrl, 'rediss://r.example:6380')
  t.throws(() => parseConfig(['--redis-url', 'http://127.0.0.1:6379', '--resume-secret', secret]), { message: /--redis-url: got "http:\/\/127.0.0.1:6379", expected redis:\/\/host:port/ })
  const err = (() => {
    try {
      parseConfig(['--redis-url', 'redis://user:hunter2@ bad', '--resume-secret', secret])
    } catch (e) {
      return (e as Error).message
    }
    return ''
  })()
  t.match(err, /--redis-url/, 'a malformed URL is refused')
  t.notMatch(err, /hunter2/, 'without its password')
  t.equal(parseConfig(['--public-url', 'wss://play.example.com/play']).config.publicUrl, 'wss://play.example.com/play')
  for (const bad of ['https://play.example.com/play', 'wss://play.example.com/play?x=1', 'play.example.com']) {
    t.throws(() => parseConfig(['--public-url', bad]), { message: /--public-url: got .*, expected a ws:\/\/ or wss:\/\/ URL without query/ }, bad)
  }
  t.equal(parseConfig(['--node-id', 'eu-west.m1']).config.nodeId, 'eu-west.m1')
  for (const bad of ['m 1', 'a|b', 'x'.repeat(49), 'm/1']) t.throws(() => parseConfig(['--node-id', bad]), { message: /--node-id: got .*, expected 1-48 characters/ }, bad)
  t.equal(defaultNodeId('ip-10-0-0-1.ec2.internal'), 'ip-10-0-0-1.ec2.internal')
  t.equal(defaultNodeId('héllo wörld'), 'h_llo_w_rld', 'a host name is cut to what a node id may be')
  t.equal(defaultNodeId(''), 'node')
  t.equal(defaultNodeId(`tickwire-${'x'.repeat(60)}-7d9f8c6b5-x2x9k`), `${'x'.repeat(32)}-7d9f8c6b5-x2x9k`, 'a long name keeps its end, where generated names differ')
  t.equal(redactUrl('redis://default:s3cret@10.0.0.9:6379/0'), 'redis://default:***@10.0.0.9:6379/0')
  t.throws(() => parseConfig(['--node-ttl', '0.1']), { message: /--node-ttl \(nodeTtl\): got 0.1, expected 0.5 to 600 s/ })
  t.throws(() => parseConfig(['--directory-timeout', '0']), { message: /--directory-timeout/ })
})

t.test('TLS and auth options: pairs, modes, algorithms, keys; key material without --auth fails closed', async (t) => {
  const s32 = 's'.repeat(32)
  t.throws(() => parseConfig(['--tls-cert', 'a.pem']), { message: /--tls-cert and --tls-key go together/ })
  t.throws(() => parseConfig(['--tls-passphrase', 'x']), { message: /--tls-passphrase is for --tls-key/ })
  t.throws(() => parseConfig(['--auth', 'maybe']), { message: /--auth: got "maybe", expected one of off, optional, required/ })
  t.throws(() => parseConfig(['--auth', 'required', '--auth-algorithm', 'HS512', '--auth-secret', s32]), { message: /--auth-algorithm: got "HS512"/ })
  t.throws(() => parseConfig(['--auth', 'required']), { message: /needs --auth-secret of at least 32 characters/ })
  t.throws(() => parseConfig(['--auth', 'required', '--auth-algorithm', 'ES256']), { message: /needs exactly one of --auth-public-key and --auth-jwks/ })
  t.throws(() => parseConfig(['--auth', 'required', '--auth-algorithm', 'ES256', '--auth-public-key', 'k.pem', '--auth-secret', s32]), { message: /--auth-secret is for HS256 only/ })
  t.throws(() => parseConfig([], { TICKWIRE_AUTH_SECRET: s32 }), { message: /--auth-secret set but --auth is off \(anyone may join\)/ })
  t.equal(parseConfig(['--auth', 'required', '--auth-secret', s32]).config.auth, 'required')
})
