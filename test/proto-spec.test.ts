/**
 * Keeps proto/PROTOCOL.md honest: every hex example in it is decoded with the
 * real decoders and re-encoded with the real encoders (STATE frames through a
 * real RoomReplicator), byte for byte; every message type, close code and
 * documented default is checked against the code.
 */
import { readFileSync } from 'node:fs'
import { unpack } from 'msgpackr'
import t from 'tap'
import {
  CloseCode,
  CloseReason,
  MAX_NAME_BYTES,
  MsgType,
  PROTOCOL_VERSION,
  ROOM_ID_PATTERN,
  decodeServerMessage,
  encodeAck,
  encodeInput,
  encodePing,
  encodePong,
  encodeWelcome,
  newClientMessage,
  parseClientMessage,
  unzigzag,
  writeInt,
  zigzag,
} from '../proto/index.js'
import { EntityTable } from '../src/client/table.js'
import { OPTIONS, flagName, type OptionName } from '../src/config.js'
import { arena } from '../src/games/arena.js'
import { AckResult, RoomReplicator } from '../src/replicate/replicator.js'
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

const EXAMPLES = ['welcome', 'full-state', 'input', 'delta-state', 'ack', 'ping', 'pong']

t.test('every hex example has its decoded json, and a generic MessagePack decode gives it', async (t) => {
  t.same([...hexBlocks.keys()].sort(), [...EXAMPLES].sort(), 'the documented hex examples')
  for (const name of EXAMPLES) {
    const { bytes, decoded } = example(name)
    t.ok(bytes.length > 0, `${name}: has bytes`)
    t.same(unpack(bytes), decoded, `${name}: msgpackr unpack (default options) = documented json`)
  }
  for (const name of ['full-state', 'delta-state']) {
    const v = unpack(example(name).bytes)
    t.ok(isPlainIntArray(v), `${name}: plain arrays of integers only`)
    t.equal((v as unknown[])[0], MsgType.STATE)
  }
})

t.test('server frames: decodeServerMessage gives the documented values', async (t) => {
  const w = example('welcome')
  const [, version, playerId, roomId, tickHz, entityId, historyTicks, fields, input] = w.decoded as [
    number, number, number, string, number, number, number, [string, number][], [string, number, number][],
  ]
  const welcome = {
    version,
    playerId,
    roomId,
    tickHz,
    entityId,
    historyTicks,
    fields: fields.map(([name, quantum]) => ({ name, quantum })),
    input: input.map(([name, min, max]) => ({ name, min, max })),
  }
  t.same(decodeServerMessage(w.bytes), { type: MsgType.WELCOME, ...welcome })
  t.equal(version, PROTOCOL_VERSION)
  t.same(welcome.fields, arena.fields, 'WELCOME example carries the reference game fields')
  t.same(welcome.input, arena.input, 'WELCOME example carries the reference game input')

  for (const name of ['full-state', 'delta-state']) {
    const { bytes, decoded } = example(name)
    const [type, tick, baseTick, inputSeq, removed, changed, created] = decoded as [number, number, number, number, number[], number[], number[]]
    t.same(decodeServerMessage(bytes), { type, tick, baseTick, inputSeq, removed, changed, created }, name)
  }

  const p = example('pong')
  t.same(decodeServerMessage(p.bytes), { type: MsgType.PONG, clientTime: (p.decoded as number[])[1] })
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
  t.equal(toHex(encodePong((example('pong').decoded as number[])[1] as number)), toHex(example('pong').bytes), 'encodePong')
})

/** The scenario of PROTOCOL.md §9, on a real World, Grid and RoomReplicator. */
function scenario() {
  const world = new World(8, arena.fields.map((f) => f.name))
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
  const { world, grid, rep, set } = scenario()
  const out = new Uint8Array(rep.encodeBufferBytes)
  const avatar = world.spawn()
  const orb1 = world.spawn()
  t.same([avatar, orb1], [0, 1])
  set(avatar, 0, 100.25, 200.5, 3)
  set(orb1, 1, 150.75, 260, 0)
  grid.rebuild()
  rep.snapshot(1000)
  const viewer = rep.newViewer(avatar)
  let n = rep.encode(viewer, 0, out)
  t.equal(toHex(out.subarray(0, n)), toHex(example('full-state').bytes), 'full state, tick 1000')

  // The client applies tick 1000 and sends the INPUT example, which acks it.
  const msg = newClientMessage(arena.input.length)
  t.equal(parseClientMessage(example('input').bytes, arena.input, msg), null)
  t.equal(viewer.ack(msg.ackTick), AckResult.OK)

  const orb2 = world.spawn()
  t.equal(orb2, 2)
  set(orb2, 1, 90, 310.5, 0)
  world.despawn(orb1)
  set(avatar, 0, 107.5, 196.75, 3)
  grid.rebuild()
  rep.snapshot(1001)
  n = rep.encode(viewer, msg.seq, out)
  t.equal(toHex(out.subarray(0, n)), toHex(example('delta-state').bytes), 'delta, tick 1001 against 1000')

  const a = newClientMessage(arena.input.length)
  t.equal(parseClientMessage(example('ack').bytes, arena.input, a), null)
  t.equal(viewer.ack(a.ackTick), AckResult.OK, 'the ACK example acks the delta')
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
  for (const [frame, after] of [
    ['full-state', 'table-after-full'],
    ['delta-state', 'table-after-delta'],
  ] as const) {
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
    return unpack(out.subarray(0, n)) as number[]
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
  t.notOk(v.canSend(), 'still paused until everything sent is acked')
  t.equal(v.ack(3), AckResult.REGRESSED, 'an ack going backwards')
  t.equal(v.ack(rep.opts.ackWindow), AckResult.OK, 'ack of the newest sent tick')
  step()
  t.ok(v.canSend(), 'resumes')
  t.equal(send()[2], rep.opts.ackWindow, 'with a delta from that ack')
  t.equal(v.ack(tick), AckResult.OK)
  // The acked tick leaves the history: full state.
  for (let i = 0; i < rep.opts.historyTicks; i++) step()
  t.ok(v.canSend())
  t.equal(send()[2], 0, 'full state once the baseline left the history')
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
  t.match(doc, `Protocol version: **${PROTOCOL_VERSION}**`)
  t.ok(doc.includes('`' + ROOM_ID_PATTERN.source + '`'), 'room id pattern')
  t.ok(doc.includes(`at most ${MAX_NAME_BYTES} bytes of UTF-8`), 'name limit')
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
  for (const key of ['tickHz', 'historyTicks', 'ackWindow', 'softBackpressure', 'hardBackpressure', 'maxStallSeconds', 'inputRate', 'inputBurst', 'maxMessageBytes', 'idleTimeout']) {
    t.ok(seen.has(key), `${key} is documented`)
  }
})
