/**
 * The README's own-game walkthrough, compiled and run: its `tag.ts` block is
 * built with tsc (strict, noUncheckedIndexedAccess) against the package as a
 * user installs it (node_modules/tickwire -> this checkout), then played over
 * real sockets: through the CLI `--game` with two workers, and in-process
 * where a test needs small outbox bounds.
 */
import { execFile, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Packr } from 'msgpackr'
import t from 'tap'
import { CloseCode, MsgType, PROTOCOL_VERSION, decodeServerMessage } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import type { Game } from '../src/sim/game.js'
import { startCluster } from './helpers/cluster.js'
import { dropTcp, sample, startTest, waitFor } from './helpers/server.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const block = /```ts file=tag\.ts\n([\s\S]*?)```/.exec(readme)?.[1]

/** Builds the README's tag.ts in a fresh folder, as a user would; returns the built module's path. */
function buildTag(): string {
  if (block === undefined) throw new Error('README.md has no ```ts file=tag.ts block')
  const dir = mkdtempSync(join(tmpdir(), 'tickwire-tag-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(root, join(dir, 'node_modules', 'tickwire'), 'dir')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  writeFileSync(join(dir, 'tag.ts'), block)
  const compilerOptions = { module: 'nodenext', target: 'es2022', strict: true, noUncheckedIndexedAccess: true, skipLibCheck: true, outDir: '.' }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['tag.ts'] }))
  const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`tsc failed on the README's tag.ts:\n${r.stdout}${r.stderr}`)
  return join(dir, 'tag.js')
}

const tagJs = buildTag()

/** Chat texts `c` received from entity `from`, in arrival order. */
function chats(c: TickwireClient, from: () => number): string[] {
  const got: string[] = []
  c.on('message', (name, data) => {
    if (name === 'chat' && data.from === from()) got.push(String(data.text))
  })
  return got
}

const texts = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`)

t.test('tag through the CLI, two workers: names, messages in order exactly once across a pause and a resume, a flood limited', async (t) => {
  const c = await startCluster(2, ['--game', tagJs, '--resume-window', '30'])
  t.teardown(() => c.child.kill('SIGKILL'))
  const join = (name: string, extra: Parameters<typeof TickwireClient.connect>[1] = {}) =>
    TickwireClient.connect(c.url, { room: 'yard', name, joinOptions: { team: 'blue' }, ...extra })
  const ada = await join('ada')
  const bob = await join('bob', { joinOptions: { team: 'red' } })
  const carol = await join('carol', { autoAck: false })
  t.teardown(() => {
    for (const p of [ada, bob, carol]) p.close()
  })
  t.same(ada.welcome.clientMessages.map((m) => m.name), ['chat'], 'WELCOME declares the client messages')
  t.same(ada.welcome.messages.map((m) => m.name), ['tagged', 'chat'])
  t.ok(ada.welcome.ackWindow >= 1, 'WELCOME carries the ack window')
  const adaId = ada.welcome.entityId

  // Names: props set in join reach the players already there and each newcomer.
  await waitFor(() => bob.props.get(adaId)?.name === 'ada' && ada.props.get(bob.welcome.entityId)?.name === 'bob', 10_000, 'names to reach the others')
  t.same({ ...bob.props.get(adaId) }, { name: 'ada', team: 'blue' }, 'bob sees ada\'s name and team')

  const atBob = chats(bob, () => adaId)
  const atCarol = chats(carol, () => adaId)
  // Carol never acks: after ackWindow STATE frames the server pauses her, and her messages wait in her outbox.
  await waitFor(() => carol.table.tick > 0, 10_000, 'carol\'s first state')
  await waitFor(() => carol.props.get(bob.welcome.entityId) !== undefined, 10_000, 'carol to get bob\'s props')
  const paused = async () => {
    let last = carol.framesReceived
    for (;;) {
      await new Promise((r) => setTimeout(r, 300))
      if (carol.framesReceived === last) return
      last = carol.framesReceived
    }
  }
  t.equal(carol.props.get(bob.welcome.entityId)?.team, 'red', 'a newcomer got the props of those before it')
  await paused()
  for (const text of texts(1, 20)) t.ok(ada.send('chat', { text }), 'sent')
  await waitFor(() => atBob.length === 20, 10_000, 'bob to get 20 chats')
  t.same(atBob, texts(1, 20), 'bob: in order, exactly once')
  await new Promise((r) => setTimeout(r, 300))
  t.same(atCarol, [], 'carol, paused by the ack window, got none yet (they wait in her outbox)')
  carol.ack()
  await waitFor(() => atCarol.length >= 20, 10_000, 'carol to get the chats once she acked')
  t.same(atCarol, texts(1, 20), 'carol: all of them after the pause, in order, exactly once')

  // Ten more reach carol but she acks none of them; then her connection dies and the SDK resumes the seat.
  for (const text of texts(21, 30)) ada.send('chat', { text })
  await waitFor(() => atCarol.length === 30, 10_000, 'carol to get chats 21-30')
  const resumed = new Promise<void>((r) => carol.on('resumed', () => r()))
  dropTcp(carol)
  await resumed
  ada.send('chat', { text: 'm31' })
  await waitFor(() => {
    carol.ack()
    return atCarol.length >= 31
  }, 10_000, 'carol to get chat 31 after the resume')
  t.ok(carol.repeatsDropped >= 10, `the resume resent what carol had not acked (${carol.repeatsDropped} repeats dropped)`)
  t.same(atCarol, texts(1, 31), 'carol: in order, exactly once, across the pause and the resume')
  t.equal(carol.props.get(adaId)?.name, 'ada', 'props are kept across a resume')

  // A flood: far past --message-rate's burst. The flooder is closed RATE_LIMITED; the others play on.
  const dave = await join('dave', { reconnect: false })
  const closed = new Promise<number>((r) => dave.on('close', (code) => r(code)))
  for (let i = 0; i < 200 && !dave.closed; i++) dave.send('chat', { text: 'spam' })
  t.equal(await closed, CloseCode.RATE_LIMITED, 'the flooder is closed RATE_LIMITED')
  const metrics = await (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text()
  t.ok(sample(metrics, 'tickwire_inputs_rejected_total{reason="message_rate"}') >= 1, 'counted as message_rate')
  t.ok(sample(metrics, 'tickwire_game_messages_received_total') >= 31, 'accepted messages are counted')
  const spam = chats(bob, () => dave.welcome.entityId)
  ada.send('chat', { text: 'm32' })
  await waitFor(() => atBob.length === 32, 10_000, 'bob to get chat 32')
  t.ok(spam.length <= 40, 'at most a burst of spam got through')
  t.notOk(ada.closed || bob.closed, 'the others are still playing')
})

t.test('bad client messages and a full outbox get their documented close codes, and are counted', async (t) => {
  const tag = ((await import(pathToFileURL(tagJs).href)) as { default: Game }).default
  const tw = await startTest({ outboxFrames: 16, messageRate: 1000, messageBurst: 1000, inputRate: 2000, inputBurst: 1000 }, { game: tag })
  t.teardown(() => tw.stop())
  const packr = new Packr({ useRecords: false })
  const closeOf = async (bytes: Uint8Array) => {
    const c = await TickwireClient.connect(tw.url, { room: 'bad', reconnect: false })
    const code = new Promise<number>((r) => c.on('close', (k) => r(k)))
    c.sendRaw(bytes)
    return code
  }
  t.equal(await closeOf(packr.pack([MsgType.CLIENT_MESSAGE, 0, 5])), CloseCode.BAD_INPUT, 'a number where a string is declared: BAD_INPUT')
  t.equal(await closeOf(packr.pack([MsgType.CLIENT_MESSAGE, 7, 'hi'])), CloseCode.BAD_INPUT, 'an undeclared kind: BAD_INPUT')
  t.equal(await closeOf(packr.pack([MsgType.CLIENT_MESSAGE, 0, 'x'.repeat(201)])), CloseCode.BAD_INPUT, 'a string longer than declared: BAD_INPUT')
  t.equal(await closeOf(packr.pack([MsgType.CLIENT_MESSAGE, 0, 'hi', 'extra'])), CloseCode.BAD_INPUT, 'a value too many: BAD_INPUT')
  t.equal(await closeOf(packr.pack([MsgType.CLIENT_MESSAGE, 0, ['nested']])), CloseCode.BAD_MESSAGE, 'a nested array: BAD_MESSAGE')
  const sdk = await TickwireClient.connect(tw.url, { room: 'bad', reconnect: false })
  t.teardown(() => sdk.close())
  t.throws(() => sdk.send('chat', { text: 7 }), { name: 'RangeError', message: /message chat: value text must be a string, got 7/ }, 'the SDK names the bad value')
  t.throws(() => sdk.send('shout', {}), { name: 'RangeError', message: /unknown message "shout"/ })
  t.throws(() => sdk.send('chat', { text: 'a', loud: true }), { name: 'RangeError', message: /"loud" is not one of its declared values/ })
  let text = await tw.metrics.text()
  t.equal(sample(text, 'tickwire_inputs_rejected_total{reason="type"}'), 2)
  t.equal(sample(text, 'tickwire_inputs_rejected_total{reason="range"}'), 2)

  // A player that never acks while messages keep coming: past --outbox-frames it is closed TOO_SLOW, the seat not held.
  const talker = await TickwireClient.connect(tw.url, { room: 'full' })
  const mute = await TickwireClient.connect(tw.url, { room: 'full', autoAck: false })
  t.teardown(() => {
    talker.close()
    mute.close()
  })
  const rejoined = new Promise<number>((r) => mute.on('rejoined', (_w, code) => r(code)))
  for (let i = 0; i < 40; i++) talker.send('chat', { text: `n${i}` })
  const lost = await rejoined
  t.equal(lost, CloseCode.RESUME_EXPIRED, 'the seat was released: the SDK\'s resume found it gone and it joined afresh')
  text = await tw.metrics.text()
  // The rejoined seat may overflow too (it still never acks, and the rest of the 40 chats come to it).
  const overflows = sample(text, 'tickwire_outbox_overflows_total')
  t.ok(overflows >= 1, `${overflows} overflows counted`)
  t.equal(sample(text, 'tickwire_disconnects_total{reason="outbox_full"}'), overflows, 'each closed as outbox_full')
  t.notOk(talker.closed, 'the sender plays on')
})

t.test('a protocol 2 client gets the 10-element WELCOME and no game frames', async (t) => {
  const tag = ((await import(pathToFileURL(tagJs).href)) as { default: Game }).default
  const tw = await startTest({}, { game: tag })
  t.teardown(() => tw.stop())
  const { WebSocket } = await import('ws')
  const packr = new Packr({ useRecords: false })
  const old = new WebSocket(tw.url.replace('/play', '/play?room=v2&v=2'))
  const types: number[] = []
  let welcomeLength = 0
  old.on('message', (d: Buffer) => {
    const m = decodeServerMessage(new Uint8Array(d))
    types.push(m.type)
    if (m.type === MsgType.STATE) old.send(packr.pack([MsgType.ACK, m.tick])) // acks, so it is never paused
    if (m.type === MsgType.WELCOME) welcomeLength = (packr.unpack(d) as unknown[]).length
  })
  await new Promise((r) => old.on('open', r))
  const now = await TickwireClient.connect(tw.url, { room: 'v2', name: 'new' })
  t.teardown(() => {
    old.close()
    now.close()
  })
  t.equal(now.welcome.version, PROTOCOL_VERSION)
  now.send('chat', { text: 'hello' })
  await waitFor(() => types.filter((x) => x === MsgType.STATE).length > 20, 10_000, 'states to the old client')
  t.equal(welcomeLength, 10, 'protocol 2 WELCOME layout')
  t.notOk(types.includes(MsgType.MESSAGE) || types.includes(MsgType.PROPS), 'no MESSAGE or PROPS frames')
})

t.test('the load generator plays the tag game: its inputs and declared messages, 0 dropped, exit 0', async (t) => {
  const tag = ((await import(pathToFileURL(tagJs).href)) as { default: Game }).default
  const tw = await startTest({}, { game: tag })
  t.teardown(() => tw.stop())
  const cli = join(root, 'dist/bench/load/cli.js')
  // Asynchronously: the server runs in this process and must keep ticking meanwhile.
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, '--url', tw.url, '--players', '8', '--duration', '2', '--processes', '1', '--metrics-url', '-', '--message-hz', '4'], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
  t.equal(r.status, 0, r.stderr.slice(-500))
  t.match(r.stdout, /connections\s+opened 8 = connected 8 \+ dropped 0 \{\};\s+failed 0;\s+errors 0/)
  const text = await tw.metrics.text()
  t.ok(sample(text, 'tickwire_game_messages_received_total') > 0, 'the bots\' chat messages reached the game')
  t.ok(sample(text, 'tickwire_inputs_total') > 0, 'their inputs too')
})
