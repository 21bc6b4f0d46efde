/**
 * Keeps proto/PROTOCOL.md honest: every hex example in it is decoded with the
 * real decoders and re-encoded with the real encoders (STATE frames through a
 * real RoomReplicator), byte for byte; each STATE example's `-decoded` block is
 * re-derived from the wire lists by an independent decoder written from the
 * doc (gap-coded ids, baseAge, zigzag); every message type, close code and
 * documented default is checked against the code.
 */
import { readFileSync } from 'node:fs'
import { unpack } from 'msgpackr'
import t, { type Test } from 'tap'
import {
  CloseCode,
  ackEvery,
  ClientError,
  CloseReason,
  MAX_MESSAGE_FRAME_BYTES,
  MAX_MESSAGE_KINDS,
  MAX_MESSAGE_VALUES,
  MAX_NAME_BYTES,
  MAX_STRING_BYTES,
  MAX_REDIRECT_URL_CHARS,
  MAX_TOKEN_CHARS,
  MIN_PROTOCOL_VERSION,
  MsgType,
  PROTOCOL_VERSION,
  ROOM_ID_PATTERN,
  ROUTE_PATTERN,
  VALUE_NAME_PATTERN,
  decodeServerMessage,
  encodeAck,
  encodeClientMessage,
  encodeMessage,
  encodeProps,
  encodeInput,
  encodePing,
  encodePong,
  encodeRedirect,
  encodeWelcome,
  newClientMessage,
  parseClientMessage,
  parseGameMessage,
  unzigzag,
  writeInt,
  zigzag,
  type MessageSpec,
  type ValueSpec,
} from '../proto/index.js'
import { redirectTarget } from '../src/client/index.js'
import { EntityTable } from '../src/client/table.js'
import { OPTIONS, defaultConfig, flagName, type OptionName } from '../src/config.js'
import { arena } from '../src/games/arena.js'
import { parseJoinQuery } from '../src/net/query.js'
import { ResumeTokens } from '../src/net/resume.js'
import { AckResult, RoomReplicator, maxFrameBytes } from '../src/replicate/replicator.js'
import { Grid } from '../src/sim/grid.js'
import { World } from '../src/sim/world.js'

const doc = readFileSync(new URL('../proto/PROTOCOL.md', import.meta.url), 'utf8')
const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** Fenced blocks tagged ```<lang> name=<name>. */
function blocks(lang: string): Map<string, string> {
  const out = new Map<string, string>()
  const re = new RegExp('^```' + lang + ' name=([\\w-]+)\\n([\\s\\S]*?)^```', 'gm')
  for (const m of doc.matchAll(re)) {
    const name = m[1] as string
    if (out.has(name)) throw new Error(`duplicate ${lang} block ${name}`)
    out.set(name, m[2] as string)
  }
  return out
}

/** A hex block: byte pairs separated by spaces; `#` starts a comment. */
function parseHex(text: string): Uint8Array {
  const bytes: number[] = []
  for (const line of text.split('\n')) {
    const code = line.split('#')[0] as string
    for (const tok of code.trim().split(/\s+/)) {
      if (tok === '') continue
      if (!/^[0-9a-f]{2}$/.test(tok)) throw new Error(`bad hex token ${JSON.stringify(tok)} in line ${JSON.stringify(line)}`)
      bytes.push(parseInt(tok, 16))
    }
  }
  return Uint8Array.from(bytes)
}

const hexBlocks = blocks('hex')
const jsonBlocks = blocks('json')
function example(name: string): { bytes: Uint8Array; decoded: unknown } {
  const h = hexBlocks.get(name)
  const j = jsonBlocks.get(name)
  if (h === undefined || j === undefined) throw new Error(`PROTOCOL.md lacks the hex or json block ${name}`)
  return { bytes: parseHex(h), decoded: JSON.parse(j) as unknown }
}
function jsonBlock(name: string): unknown {
  const j = jsonBlocks.get(name)
  if (j === undefined) throw new Error(`PROTOCOL.md lacks the json block ${name}`)
  return JSON.parse(j) as unknown
}

function isPlainIntArray(v: unknown): boolean {
  if (!Array.isArray(v) || Object.getPrototypeOf(v) !== Array.prototype) return false
  return v.every((x) => (Array.isArray(x) ? isPlainIntArray(x) : Number.isSafeInteger(x)))
}

/** STATE examples, in the order the client applies them, with the table it has after each. */
const STATES = [
  ['full-state', 'table-after-full'],
  ['delta-state', 'table-after-delta'],
  ['delta-state-2', 'table-after-delta-2'],
] as const
const EXAMPLES = ['welcome', 'redirect-url', 'redirect', 'full-state', 'input', 'delta-state', 'ack', 'delta-state-2', 'ping', 'pong', 'message', 'props', 'props-cleared', 'client-message']

/** The tag game's declarations, as the README's "Write your own game" declares them. */
const u16 = (name: string): ValueSpec => ({ name, type: 'int', min: 0, max: 65535 })
const TAG = {
  messages: [
    { name: 'tagged', fields: [u16('it'), u16('by')] },
    { name: 'chat', fields: [u16('from'), { name: 'text', type: 'string', maxBytes: 200 }] },
  ] as MessageSpec[],
  clientMessages: [{ name: 'chat', fields: [{ name: 'text', type: 'string', maxBytes: 200 }] }] as MessageSpec[],
  props: [{ name: 'name', type: 'string', maxBytes: 32 }, { name: 'team', type: 'string', maxBytes: 8 }] as ValueSpec[],
}

t.test('every hex example has its decoded json, and a generic MessagePack decode gives it', async (t) => {
  t.same([...hexBlocks.keys()].sort(), [...EXAMPLES].sort(), 'the documented hex examples')
  const jsonNames = [...EXAMPLES, ...STATES.flatMap(([frame, after]) => [`${frame}-decoded`, after])]
  t.same([...jsonBlocks.keys()].sort(), jsonNames.sort(), 'the documented json blocks')
  for (const name of EXAMPLES) {
    const { bytes, decoded } = example(name)
    t.ok(bytes.length > 0, `${name}: has bytes`)
    t.same(unpack(bytes), decoded, `${name}: msgpackr unpack (default options) = documented json`)
  }
  for (const [name] of STATES) {
    const v = unpack(example(name).bytes)
    t.ok(isPlainIntArray(v), `${name}: plain arrays of integers only`)
    t.equal((v as unknown[])[0], MsgType.STATE)
  }
})

type Row = Record<string, number>
interface Resolved {
  tick: number
  baseTick: number
  inputSeq: number
  removed: number[]
  changed: Record<string, Row>
  created: Record<string, Row>
}

/**
 * Independent decoder, written from PROTOCOL.md §3/§5 only: baseTick from
 * baseAge, ids from gaps (a running sum per list), deltas from zigzag.
 * Also checks the documented invariants: ids ascend, masks are 1..127.
 */
function resolve(wire: unknown, t: Test): { frame: Resolved; ids: number[][]; gaps: number[][] } {
  const [type, tick, baseAge, inputSeq, removed, changed, created] = wire as [number, number, number, number, number[], number[], number[]]
  t.equal(type, MsgType.STATE)
  t.ok(baseAge >= 0 && baseAge < tick, 'baseAge < tick')
  const fields = arena.fields.map((f) => f.name)
  const F = fields.length
  const unzz = (z: number) => (z % 2 === 0 ? z / 2 : -(z + 1) / 2)
  const ascending = (ids: number[], list: string) => t.ok(ids.every((id, i) => i === 0 || id > (ids[i - 1] as number)), `${list} ids ascend`)
  let id = 0
  const rem = removed.map((gap) => (id += gap))
  ascending(rem, 'removed')
  const ch: Record<string, Row> = {}
  const chIds: number[] = []
  const chGaps: number[] = []
  id = 0
  for (let i = 0; i < changed.length; ) {
    chGaps.push(changed[i] as number)
    id += changed[i++] as number
    const mask = changed[i++] as number
    t.ok(mask >= 1 && mask <= 127, `mask ${mask} is 1..127`)
    const d: Row = {}
    for (let f = 0; f < F; f++) if ((mask & (1 << f)) !== 0) d[fields[f] as string] = unzz(changed[i++] as number)
    ch[id] = d
    chIds.push(id)
  }
  ascending(chIds, 'changed')
  const cr: Record<string, Row> = {}
  const crIds: number[] = []
  const crGaps: number[] = []
  t.equal(created.length % (1 + F), 0, 'created length is a multiple of 1 + F')
  id = 0
  for (let i = 0; i < created.length; i += 1 + F) {
    crGaps.push(created[i] as number)
    id += created[i] as number
    const row: Row = {}
    fields.forEach((name, k) => (row[name] = created[i + 1 + k] as number))
    cr[id] = row
    crIds.push(id)
  }
  ascending(crIds, 'created')
  return {
    frame: { tick, baseTick: baseAge === 0 ? 0 : tick - baseAge, inputSeq, removed: rem, changed: ch, created: cr },
    ids: [rem, chIds, crIds],
    gaps: [removed, chGaps, crGaps],
  }
}

t.test('each STATE example\'s -decoded block follows from its wire lists', async (t) => {
  const gapShown = [false, false, false]
  for (const [name] of STATES) {
    const r = resolve(example(name).decoded, t)
    t.same(r.frame, jsonBlock(`${name}-decoded`), `${name}-decoded`)
    for (let l = 0; l < 3; l++) if (r.gaps[l]?.some((g, i) => g !== r.ids[l]?.[i])) gapShown[l] = true
  }
  // The examples show, in each list, a gap that differs from its id, and a delta whose base is not the previous tick.
  t.same(gapShown, [true, true, true], 'removed, changed and created each show gap coding')
  t.equal((example('delta-state-2').decoded as number[])[2], 2, 'a delta with baseAge 2')
})

t.test('server frames: decodeServerMessage gives the documented values', async (t) => {
  const w = example('welcome')
  const [, version, playerId, roomId, tickHz, entityId, historyTicks, fields, input, resumeToken, ackWindow, messageSeq, messages, clientMessages, props] = w.decoded as [
    number, number, number, string, number, number, number, [string, number][], [string, number, number][], string, number, number, unknown[], unknown[], unknown[],
  ]
  t.equal((w.decoded as unknown[]).length, 15, 'the WELCOME example is a version 3 frame of 15 elements')
  const welcome = {
    version,
    playerId,
    roomId,
    tickHz,
    entityId,
    historyTicks,
    fields: fields.map(([name, quantum]) => ({ name, quantum })),
    input: input.map(([name, min, max]) => ({ name, min, max })),
    resumeToken,
    ackWindow,
    messageSeq,
    messages,
    clientMessages,
    props,
  }
  t.same({ ackWindow, messageSeq, messages, clientMessages, props }, { ackWindow: defaultConfig().ackWindow, messageSeq: 0, messages: [], clientMessages: [], props: [] }, 'the arena: default ackWindow, a new seat, no declarations')
  t.same(decodeServerMessage(w.bytes), { type: MsgType.WELCOME, ...welcome })
  const signer = new ResumeTokens(Buffer.from('tickwire-example-secret-32-bytes'))
  t.same(signer.verify(resumeToken, roomId, playerId), { instance: 'q8Xb3JtR0aE', gen: 0 }, 'the example token is genuine for that secret, room and player')
  const r = example('redirect')
  t.same(decodeServerMessage(r.bytes), { type: MsgType.REDIRECT, port: 9003, host: '', url: '' })
  t.equal(toHex(encodeRedirect({ port: 9003, host: '', url: '' }, 2)), toHex(r.bytes), 'encodeRedirect, version 2')
  const ru = example('redirect-url')
  const [, port, host, url] = ru.decoded as [number, number, string, string]
  t.same(decodeServerMessage(ru.bytes), { type: MsgType.REDIRECT, port, host, url })
  t.same({ port, host }, { port: 0, host: '' }, 'a url REDIRECT has port 0 and host empty')
  t.equal(toHex(encodeRedirect({ port, host, url }, 3)), toHex(ru.bytes), 'encodeRedirect, version 3')
  const target = new URL(url)
  t.equal(target.searchParams.get('room'), roomId, 'the url carries the room')
  t.match(target.searchParams.get('route'), ROUTE_PATTERN, 'and a route')
  const [, from, to] = /A client that connected with\n`(\?[^`]+)` opens\n`([^`]+)`/.exec(doc) ?? []
  t.equal(redirectTarget(`wss://play.example.com/play${from ?? ''}`, { port, host, url }), to, 'the documented url the client opens is what the SDK opens')
  // The documented version 3 frame without a url.
  t.match(doc, /`\[4, 9003, "", ""\]`\n\(`94 04 cd 23 2b a0 a0`\)/, 'the url-less version 3 REDIRECT is shown')
  t.equal(toHex(encodeRedirect({ port: 9003, host: '', url: '' }, 3)), '9404cd232ba0a0', '... with its real bytes')
  t.equal(version, PROTOCOL_VERSION)
  t.same(welcome.fields, arena.fields, 'WELCOME example carries the reference game fields')
  t.same(welcome.input, arena.input, 'WELCOME example carries the reference game input')

  for (const [name] of STATES) {
    // decodeServerMessage converts baseAge to baseTick and leaves the lists as sent (gap-coded).
    const { bytes, decoded } = example(name)
    const [type, tick, , inputSeq, removed, changed, created] = decoded as [number, number, number, number, number[], number[], number[]]
    const { baseTick } = jsonBlock(`${name}-decoded`) as Resolved
    t.same(decodeServerMessage(bytes), { type, tick, baseTick, inputSeq, removed, changed, created }, name)
  }

  const p = example('pong')
  t.same(decodeServerMessage(p.bytes), { type: MsgType.PONG, clientTime: (p.decoded as number[])[1], roomPlayers: (p.decoded as number[])[2] })

  // The tag game's stream frames.
  const m = example('message')
  const [, kind, ...mValues] = m.decoded as [number, number, ...(string | number)[]]
  t.same(decodeServerMessage(m.bytes), { type: MsgType.MESSAGE, kind, values: mValues })
  t.equal(TAG.messages[kind]?.name, 'chat', 'the MESSAGE example is a chat')
  t.same(mValues, [3, 'hi'], '... from entity 3 saying "hi"')
  const pr = example('props')
  const [, entity, ...pValues] = pr.decoded as [number, number, ...string[]]
  t.same(decodeServerMessage(pr.bytes), { type: MsgType.PROPS, entity, values: pValues })
  t.same({ entity, values: pValues }, { entity: 3, values: ['ada', 'red'] }, 'the PROPS example: entity 3, name and team')
  t.equal(pValues.length, TAG.props.length, 'one value per declared prop')
  const pc = example('props-cleared')
  t.same(decodeServerMessage(pc.bytes), { type: MsgType.PROPS, entity: 3, values: [] }, 'a PROPS without values: cleared')
})

t.test('client frames: parseClientMessage accepts them with the documented values', async (t) => {
  const msg = newClientMessage(arena.input.length)
  const i = example('input')
  const [, seq, ackTick, ...values] = i.decoded as number[]
  t.equal(parseClientMessage(i.bytes, arena.input, msg), null)
  t.same({ type: msg.type, seq: msg.seq, ackTick: msg.ackTick, values: [...msg.values] }, { type: MsgType.INPUT, seq, ackTick, values })

  const a = example('ack')
  t.equal(parseClientMessage(a.bytes, arena.input, msg), null)
  t.same({ type: msg.type, ackTick: msg.ackTick }, { type: MsgType.ACK, ackTick: (a.decoded as number[])[1] })

  const p = example('ping')
  t.equal(parseClientMessage(p.bytes, arena.input, msg), null)
  t.same({ type: msg.type, clientTime: msg.clientTime }, { type: MsgType.PING, clientTime: (p.decoded as number[])[1] })
})

t.test('client and WELCOME/PONG frames re-encode byte for byte', async (t) => {
  const w = example('welcome')
  const d = decodeServerMessage(w.bytes)
  if (d.type !== MsgType.WELCOME) throw new Error('not a WELCOME')
  const { type: _type, ...welcome } = d
  t.equal(toHex(encodeWelcome(welcome)), toHex(w.bytes), 'encodeWelcome')

  const [, seq, ackTick, ...values] = example('input').decoded as number[]
  t.equal(toHex(encodeInput(seq as number, ackTick as number, values)), toHex(example('input').bytes), 'encodeInput')
  t.equal(toHex(encodeAck((example('ack').decoded as number[])[1] as number)), toHex(example('ack').bytes), 'encodeAck')
  t.equal(toHex(encodePing((example('ping').decoded as number[])[1] as number)), toHex(example('ping').bytes), 'encodePing')
  const [, clientTime, roomPlayers] = example('pong').decoded as number[]
  t.equal(toHex(encodePong(clientTime as number, roomPlayers as number)), toHex(example('pong').bytes), 'encodePong')

  // The WELCOME example from the arena's own declarations, and its version 2 form.
  const arenaWelcome = { ...welcome, fields: arena.fields, input: arena.input, ackWindow: 12, messageSeq: 0, messages: [], clientMessages: [], props: [] }
  t.equal(toHex(encodeWelcome(arenaWelcome)), toHex(w.bytes), 'encodeWelcome from the arena, version 3')
  const v2 = encodeWelcome({ ...arenaWelcome, version: 2 })
  t.equal(toHex(v2), '9a' + toHex(w.bytes).slice(2, -10).replace(/^0103/, '0102'), 'version 2: header 9a, without the last five bytes')

  const [, kind, ...mValues] = example('message').decoded as [number, number, ...(string | number)[]]
  t.equal(toHex(encodeMessage(kind, mValues)), toHex(example('message').bytes), 'encodeMessage')
  const [, entity, ...pValues] = example('props').decoded as [number, number, ...string[]]
  t.equal(toHex(encodeProps(entity, pValues)), toHex(example('props').bytes), 'encodeProps')
  t.equal(toHex(encodeProps(3, [])), toHex(example('props-cleared').bytes), 'encodeProps with no values')
  const [, cKind, ...cValues] = example('client-message').decoded as [number, number, ...string[]]
  t.equal(toHex(encodeClientMessage(cKind, cValues)), toHex(example('client-message').bytes), 'encodeClientMessage')
})

t.test('CLIENT_MESSAGE: the example is accepted, and the documented checks hold', async (t) => {
  const c = example('client-message')
  const [, kind, ...values] = c.decoded as [number, number, ...string[]]
  t.same(parseGameMessage(c.bytes, TAG.clientMessages), { kind, values }, 'parseGameMessage accepts the example against the tag declarations')
  t.equal(TAG.clientMessages[kind]?.name, 'chat')
  // The flat reader lets type 19 through to parseGameMessage.
  t.equal(parseClientMessage(c.bytes, arena.input, newClientMessage(arena.input.length)), null, 'parseClientMessage passes type 19 on')
  const cm = (...v: unknown[]) => parseGameMessage(encodeClientMessage(v[0] as number, v.slice(1) as never[]), TAG.clientMessages)
  t.equal(cm(0.5, 'gg'), ClientError.TYPE, 'kind not an integer: BAD_INPUT')
  t.equal(cm(1, 'gg'), ClientError.RANGE, 'kind not declared: BAD_INPUT')
  t.equal(cm(0), ClientError.TYPE, 'wrong count: BAD_INPUT')
  t.equal(cm(0, 'gg', 'x'), ClientError.TYPE, 'wrong count: BAD_INPUT')
  t.equal(cm(0, 5), ClientError.TYPE, 'wrong type: BAD_INPUT')
  t.equal(cm(0, 'x'.repeat(201)), ClientError.RANGE, 'too long: BAD_INPUT')
  t.same(cm(0, 'x'.repeat(200)), { kind: 0, values: ['x'.repeat(200)] }, 'at the length limit: accepted')
  t.equal(parseGameMessage(Uint8Array.from([0x93, 0x13, 0x00, 0x90]), TAG.clientMessages), ClientError.MALFORMED, 'a nested array: BAD_MESSAGE')
  const many = [{ name: 'm', fields: Array.from({ length: MAX_MESSAGE_VALUES }, (_, i): ValueSpec => ({ name: `v${i}`, type: 'bool' })) }]
  t.notOk(typeof parseGameMessage(encodeClientMessage(0, Array(MAX_MESSAGE_VALUES).fill(true) as boolean[]), many) === 'string', `${2 + MAX_MESSAGE_VALUES} elements are read`)
  t.equal(parseGameMessage(encodeClientMessage(0, Array(MAX_MESSAGE_VALUES + 1).fill(true) as boolean[]), many), ClientError.MALFORMED, `${3 + MAX_MESSAGE_VALUES} elements: BAD_MESSAGE`)
  const flat = doc.replace(/\s+/g, ' ')
  t.ok(flat.includes(`at most ${2 + MAX_MESSAGE_VALUES} elements (the type, \`kind\` and up to ${MAX_MESSAGE_VALUES} values, \`MAX_MESSAGE_VALUES\``), 'the element bound is documented')
  t.ok(flat.includes(`from 1 to ${MAX_STRING_BYTES}, \`MAX_STRING_BYTES\``), 'MAX_STRING_BYTES')
  t.ok(flat.includes(`at most ${MAX_MESSAGE_VALUES} values (\`MAX_MESSAGE_VALUES\`)`), 'MAX_MESSAGE_VALUES')
  t.ok(flat.includes(`at most ${MAX_MESSAGE_KINDS} kinds (\`MAX_MESSAGE_KINDS\`)`), 'MAX_MESSAGE_KINDS')
  t.ok(flat.includes(`more than ${MAX_MESSAGE_FRAME_BYTES} bytes (\`MAX_MESSAGE_FRAME_BYTES\`)`), 'MAX_MESSAGE_FRAME_BYTES')
  t.ok(doc.includes('`' + VALUE_NAME_PATTERN.source + '`'), 'value name pattern')
})

/** A real World, Grid and RoomReplicator with the reference game's fields. */
function scenario(capacity = 8) {
  const world = new World(capacity, arena.fields.map((f) => f.name))
  const grid = new Grid(world, 'x', 'y', 1000, 1000, 300)
  const rep = new RoomReplicator(world, grid, arena.fields, { historyTicks: 32, ackWindow: 12, maxVisible: 128 })
  const kind = world.column('kind')
  const x = world.column('x')
  const y = world.column('y')
  const score = world.column('score')
  const set = (e: number, k: number, xv: number, yv: number, s: number) => {
    kind[e] = k
    x[e] = xv
    y[e] = yv
    score[e] = s
  }
  return { world, grid, rep, set }
}

t.test('STATE examples re-encode byte for byte from a real RoomReplicator', async (t) => {
  // The scenario of PROTOCOL.md §9: 256 slots, 300-unit cells, entities 3, 70, 120, 150 and 200.
  const { world, grid, rep, set } = scenario(256)
  const out = new Uint8Array(rep.encodeBufferBytes)
  const ids = Array.from({ length: 201 }, () => world.spawn())
  t.equal(ids[200], 200, 'slots 0..200 spawned')
  for (let e = 200; e >= 0; e--) if (![3, 70, 120, 150, 200].includes(e)) world.despawn(e)
  const welcome = decodeServerMessage(example('welcome').bytes)
  if (welcome.type !== MsgType.WELCOME) throw new Error('not a WELCOME')
  const avatar = welcome.entityId
  t.equal(avatar, 3, 'the WELCOME example gives entity 3')
  set(avatar, 0, 100.25, 200.5, 3)
  set(70, 1, 150.75, 260, 0)
  set(120, 1, 595, 300, 0)
  set(150, 1, 598, 420, 0)
  set(200, 0, 250, 180, 0)
  const frames: Uint8Array[] = []
  const encode = (tick: number, inputSeq: number) => {
    grid.rebuild()
    rep.snapshot(tick)
    const n = rep.encode(viewer, inputSeq, out)
    t.ok(n <= rep.maxFrameBytes, `frame ${tick} within maxFrameBytes`)
    frames.push(out.slice(0, n))
    return toHex(out.subarray(0, n))
  }
  const viewer = rep.newViewer(avatar)
  t.equal(encode(1000, 0), toHex(example('full-state').bytes), 'full state, tick 1000')

  // The client applies tick 1000 and sends the INPUT example, which acks it.
  const msg = newClientMessage(arena.input.length)
  t.equal(parseClientMessage(example('input').bytes, arena.input, msg), null)
  t.equal(viewer.ack(msg.ackTick), AckResult.OK)

  // Tick 1001: the avatar moves and eats orb 70, which respawns in its slot;
  // orbs 120 and 150 drift out of view; avatar 200 moves.
  set(avatar, 0, 107.5, 196.75, 4)
  world.despawn(70)
  t.equal(world.spawn(), 70, 'the respawned orb reuses slot 70 (a new generation)')
  set(70, 1, 90, 310.5, 0)
  set(120, 1, 601.5, 300, 0)
  set(150, 1, 600.5, 420, 0)
  set(200, 0, 249, 180, 0)
  t.equal(encode(1001, msg.seq), toHex(example('delta-state').bytes), 'delta, tick 1001 against 1000')

  // Tick 1002: encoded before the ACK of 1001 arrives, so still against 1000.
  set(avatar, 0, 110, 196.75, 4)
  t.equal(encode(1002, msg.seq), toHex(example('delta-state-2').bytes), 'delta, tick 1002 against 1000')

  const a = newClientMessage(arena.input.length)
  t.equal(parseClientMessage(example('ack').bytes, arena.input, a), null)
  t.equal(viewer.ack(a.ackTick), AckResult.OK, 'the ACK example acks 1001, after 1002 went out')
  encode(1003, msg.seq)
  const next = decodeServerMessage(frames[3] as Uint8Array)
  t.equal(next.type === MsgType.STATE && next.baseTick, 1001, 'as documented, 1003 is a delta against 1001')
  t.equal((unpack(frames[3] as Uint8Array) as number[])[2], 2, '... with baseAge 2')
})

t.test('applying the STATE examples gives the documented tables', async (t) => {
  const table = new EntityTable(arena.fields, 32)
  const dump = () => {
    const o: Record<string, Record<string, number>> = {}
    for (const id of table.entities.keys()) {
      const row: Record<string, number> = {}
      for (const f of arena.fields) row[f.name] = table.get(id, f.name) as number
      o[String(id)] = row
    }
    return o
  }
  for (const [frame, after] of STATES) {
    const m = decodeServerMessage(example(frame).bytes)
    if (m.type !== MsgType.STATE) throw new Error('not a STATE')
    table.apply(m)
    t.same(dump(), jsonBlock(after), after)
  }
})

t.test('zigzag table', async (t) => {
  const rows = [...doc.matchAll(/^\| (-?\d+) \| (\d+) \| `([0-9a-f ]+)` \|$/gm)]
  t.ok(rows.length >= 8, 'the zigzag table is there')
  for (const r of rows) {
    const d = Number(r[1])
    const z = Number(r[2])
    t.equal(zigzag(d), z, `zigzag(${d})`)
    t.equal(unzigzag(z), d, `unzigzag(${z})`)
    const buf = new Uint8Array(5)
    t.equal(toHex(buf.subarray(0, writeInt(buf, 0, z))), (r[3] as string).replace(/ /g, ''), `encoding of ${z}`)
  }
})

t.test('flow control and acks behave as documented', async (t) => {
  const { world, grid, rep, set } = scenario()
  const out = new Uint8Array(rep.encodeBufferBytes)
  const e = world.spawn()
  set(e, 0, 10, 10, 0)
  const v = rep.newViewer(e)
  let tick = 0
  const step = () => {
    grid.rebuild()
    rep.snapshot(++tick)
  }
  const send = () => {
    const n = rep.encode(v, 0, out)
    const m = decodeServerMessage(out.subarray(0, n))
    if (m.type !== MsgType.STATE) throw new Error('not a STATE')
    return { age: (unpack(out.subarray(0, n)) as number[])[2], baseTick: m.baseTick }
  }
  // Without acks: exactly ackWindow frames, then paused.
  let sent = 0
  for (let i = 0; i < 20; i++) {
    step()
    if (v.canSend()) {
      send()
      sent++
    }
  }
  t.equal(sent, rep.opts.ackWindow, 'ackWindow frames without acks')
  t.equal(v.ack(99), AckResult.UNKNOWN_TICK, 'ack of a tick never sent')
  t.equal(v.ack(5), AckResult.OK, 'ack of a sent tick')
  step()
  t.notOk(v.canSend(), `still paused while ackEvery (${ackEvery(rep.opts.ackWindow)}) or more frames are unacked`)
  t.equal(v.ack(3), AckResult.REGRESSED, 'an ack going backwards')
  const resumeAt = rep.opts.ackWindow - ackEvery(rep.opts.ackWindow) + 1 // leaves ackEvery - 1 unacked
  t.equal(v.ack(resumeAt - 1), AckResult.OK, 'a later partial ack')
  step()
  t.notOk(v.canSend(), 'exactly ackEvery unacked: still paused')
  t.equal(v.ack(resumeAt), AckResult.OK, 'an ack leaving fewer than ackEvery unacked')
  step()
  t.ok(v.canSend(), 'resumes')
  t.same(send(), { age: tick - resumeAt, baseTick: resumeAt }, 'with a delta from that ack')
  const acked = tick
  t.equal(v.ack(acked), AckResult.OK)
  // The oldest base still in the history is historyTicks - 1 ticks back; one tick later it is gone.
  for (let i = 1; i < rep.opts.historyTicks; i++) step()
  t.same(send(), { age: rep.opts.historyTicks - 1, baseTick: acked }, 'a delta of age historyTicks - 1')
  step()
  t.ok(v.canSend())
  t.same(send(), { age: 0, baseTick: 0 }, 'full state once the baseline left the history')
})

t.test('every MsgType and CloseCode is in PROTOCOL.md', async (t) => {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  for (const [name, code] of Object.entries(MsgType)) {
    t.match(doc, new RegExp(`^\\| ${code} \\| \`${name}\` \\|`, 'm'), `MsgType ${name} = ${code}`)
    t.match(doc, new RegExp(`^### ${name} \\(${code}\\)$`, 'm'), `section for ${name}`)
  }
  for (const [name, code] of Object.entries(CloseCode)) {
    const reason = CloseReason[name as keyof typeof CloseCode]
    t.match(doc, new RegExp(`^\\| ${code} \\| \`${name}\` \\| \`${esc(reason)}\` \\|`, 'm'), `CloseCode ${name} = ${code} '${reason}'`)
  }
  // And the other way: every documented row is a real code.
  const closeCodes: Record<string, number> = CloseCode
  const msgTypes: Record<string, number> = MsgType
  for (const r of doc.matchAll(/^\| (\d{4}) \| `(\w+)` \| `/gm)) t.equal(closeCodes[r[2] as string], Number(r[1]), `documented close code ${r[2]} exists`)
  for (const r of doc.matchAll(/^\| (\d+) \| `(\w+)` \| (?:server|client) → /gm)) t.equal(msgTypes[r[2] as string], Number(r[1]), `documented type ${r[2]} exists`)
  t.match(doc, `Protocol version: **${PROTOCOL_VERSION}**`)
  t.ok(doc.includes(`every version from \`MIN_PROTOCOL_VERSION\` (${MIN_PROTOCOL_VERSION}) up`), 'the oldest version spoken')
  t.ok(doc.includes('`' + ROOM_ID_PATTERN.source + '`'), 'room id pattern')
  t.ok(doc.includes('`' + ROUTE_PATTERN.source + '`'), 'route pattern')
  t.ok(doc.includes(`at most ${MAX_NAME_BYTES} bytes of UTF-8`), 'name limit')
  t.ok(doc.includes(`at most ${MAX_REDIRECT_URL_CHARS}\n    characters (\`MAX_REDIRECT_URL_CHARS\`)`), 'redirect url limit')
  t.ok(doc.includes(`a decimal integer from ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`), 'the v range')
})

t.test('every documented 400 body is what parseJoinQuery answers', async (t) => {
  const bodies = [...doc.matchAll(/^ {2}\| 400 \| `([^`]+)` \|/gm)].map((m) => m[1] as string)
  // The query's bad cases, one per documented body (the handshake's own 400s are not the query's).
  const bad: Record<string, string> = {
    'v=1': 'v', 'v=4': 'v', 'v=three': 'v', 'v=': 'v', 'v=3.0': 'v',
    'room=': 'room', 'room=a%20b': 'room',
    [`name=${'x'.repeat(MAX_NAME_BYTES + 1)}`]: 'name long', 'name=a%07': 'name control',
    'player=1': 'resume', 'room=r&player=x&resume=t': 'player', [`room=r&player=1&resume=${'t'.repeat(MAX_TOKEN_CHARS + 1)}`]: 'resume long',
    'route=': 'route', 'route=a/b': 'route', [`route=${'r'.repeat(65)}`]: 'route',
    'token=': 'token', [`token=${'t'.repeat(4097)}`]: 'token',
  }
  const seen = new Set<string>()
  for (const q of Object.keys(bad)) {
    const r = parseJoinQuery(q)
    if (!('problem' in r)) {
      t.fail(`${q} was accepted`)
      continue
    }
    t.ok(bodies.includes(r.problem), `${q}: "${r.problem}" is a documented 400 body`)
    seen.add(r.problem)
  }
  const queryBodies = bodies.filter((b) => !/connection header|sec-websocket-key/.test(b))
  t.same([...seen].sort(), queryBodies.sort(), 'every documented query 400 is reachable')
  t.ok(/^ {2}\| 503 \| `room directory unavailable` \|.*retry with backoff/m.test(doc), 'the directory 503 says to retry with backoff')
})

t.test('documented server options match src/config.ts', async (t) => {
  const rows = [...doc.matchAll(/^\| `(\w+)` \| `(--[\w-]+)` \| (\d+) \|/gm)]
  const seen = new Set<string>()
  for (const r of rows) {
    const key = r[1] as string
    t.ok(key in OPTIONS, `${key} is an option`)
    if (!(key in OPTIONS)) continue
    const spec = OPTIONS[key as OptionName]
    t.equal(r[2], flagName(key), `${key} flag`)
    t.equal(Number(r[3]), spec.default, `${key} default`)
    seen.add(key)
  }
  for (const key of ['tickHz', 'historyTicks', 'ackWindow', 'softBackpressure', 'hardBackpressure', 'maxStallSeconds', 'inputRate', 'inputBurst', 'messageRate', 'messageBurst', 'outboxBytes', 'outboxFrames', 'maxMessageBytes', 'idleTimeout']) {
    t.ok(seen.has(key), `${key} is documented`)
  }
})

t.test('documented rules and bounds hold', async (t) => {
  t.ok(doc.includes('`inputRate ≥ 2 × tickHz`'), 'the input-rate rule is documented')
  t.throws(() => defaultConfig({ tickHz: 30, inputRate: 59 }), /input-rate/, 'input-rate below 2 x tick-hz is refused')
  t.equal(defaultConfig({ tickHz: 30, inputRate: 60 }).inputRate, 60, 'input-rate of exactly 2 x tick-hz is accepted')

  t.ok(doc.includes('`37 + maxVisible × (11 + 5F)` bytes'), 'the STATE size bound is documented')
  for (const v of [2, 128, 300, 1024]) for (const F of [1, 4, 7]) t.equal(maxFrameBytes(v, F), 37 + v * (11 + 5 * F), `maxFrameBytes(${v}, ${F})`)
  const defaults = maxFrameBytes(OPTIONS.maxVisible.default, arena.fields.length)
  t.ok(doc.includes(`(${defaults} with the defaults and the arena's ${arena.fields.length}`), `documented default bound ${defaults}`)
})
