/**
 * The strict MessagePack reader against hostile bytes: the reviewer's
 * reference bomb (msgpackr structured-clone back-references, 4 per level) is
 * refused by both decoders in microseconds, over a real socket too, while a
 * bystander keeps its tick rate. Byte-level cases for every accepted and
 * refused type, and seeded fuzzing.
 */
import { Packr, Unpackr } from 'msgpackr'
import t from 'tap'
import { WebSocket } from 'ws'
import { ClientError, CloseCode, MsgType, decodeServerMessage, encodeAck, encodeInput, encodePing, newClientMessage, parseClientMessage, ProtocolError } from '../proto/index.js'
import { NumberArrayError, StrictDecodeError, decodeStrict, readNumberArray } from '../proto/strict.js'
import { TickwireClient } from '../src/client/index.js'
import { mulberry32 } from '../src/sim/random.js'
import { parseSamples, sleep, startTest } from './helpers/server.js'

const spec = [
  { name: 'x', min: -100, max: 100 },
  { name: 'y', min: -100, max: 100 },
]
const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'))
const LIMITS = { maxDepth: 3, maxValues: 1 << 20 }

/** The reviewer's shape: `levels` nested arrays each holding 4 references to the previous one, plus one trailing byte. */
function bomb(levels: number): Uint8Array {
  let o: unknown = [1]
  for (let i = 0; i < levels; i++) o = [o, o, o, o]
  const packed = new Packr({ structuredClone: true }).pack(o)
  const out = new Uint8Array(packed.length + 1)
  out.set(packed)
  out[packed.length] = 0x00
  return out
}

t.test('the reference bomb: 12 and 16 levels are refused by both decoders in microseconds', async (t) => {
  for (const levels of [12, 16]) {
    const b = bomb(levels)
    t.ok(b.length < 512, `${levels} levels fit in ${b.length} bytes, under --max-message-bytes`)
    t.ok(b.includes(0x70) || b.includes(0x69), 'it uses structured-clone extension types')
    const out = newClientMessage(2)
    const t0 = performance.now()
    let refused = 0
    for (let i = 0; i < 100; i++) if (parseClientMessage(b, spec, out) === ClientError.MALFORMED) refused++
    const server = (performance.now() - t0) / 100
    t.equal(refused, 100, 'the server refuses it as malformed (close 4000)')
    const t1 = performance.now()
    t.throws(() => decodeServerMessage(b), ProtocolError, 'the SDK refuses it from a hostile server')
    const client = performance.now() - t1
    // Generous ceilings (the machine may be busy); msgpackr took 2.8 s for 12 levels and about 4x per level more.
    t.ok(server < 5, `server: ${(server * 1000).toFixed(1)} us per refusal`)
    t.ok(client < 50, `SDK: ${(client * 1000).toFixed(1)} us`)
  }
})

t.test('what the strict reader prevents: a general decoder expands the references', async (t) => {
  // 8 levels only (4^8 leaves); 12 levels took the reviewer's server 2.8 s and 135 MiB.
  const b = bomb(8)
  const decoded = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' }).unpack(b.subarray(0, b.length - 1)) as unknown
  const leaves = (v: unknown): number => (Array.isArray(v) ? v.reduce((n: number, x) => n + leaves(x), 0) : 1)
  t.equal(leaves(decoded), 4 ** 8, `${b.length - 1} bytes became ${4 ** 8} leaves in msgpackr`)
  t.throws(() => decodeStrict(b, LIMITS), StrictDecodeError)
})

t.test('decodeStrict: every accepted type, byte for byte', async (t) => {
  const cases: [string, string, unknown][] = [
    ['nil', 'c0', null],
    ['false', 'c2', false],
    ['true', 'c3', true],
    ['positive fixint', '7f', 127],
    ['negative fixint', 'e0', -32],
    ['uint8', 'ccff', 255],
    ['uint16', 'cdffff', 65535],
    ['uint32', 'ceffffffff', 4294967295],
    ['uint64 safe', 'cf001fffffffffffff', Number.MAX_SAFE_INTEGER],
    ['int8', 'd080', -128],
    ['int16', 'd18000', -32768],
    ['int32', 'd280000000', -2147483648],
    ['int64 safe', 'd3ffe0000000000001', -Number.MAX_SAFE_INTEGER],
    ['float32', 'ca3fc00000', 1.5],
    ['float64', 'cb3ff8000000000000', 1.5],
    ['fixstr', 'a3616263', 'abc'],
    ['str8', 'd903c3a978', 'éx'],
    ['str16', 'da0001' + '41', 'A'],
    ['str32', 'db00000001' + '41', 'A'],
    ['fixarray', '93010203', [1, 2, 3]],
    ['array16', 'dc000201c0', [1, null]],
    ['array32', 'dd0000000190', [[]]],
    ['nested 3 deep', '91919101', [[[1]]]],
  ]
  for (const [name, h, want] of cases) t.same(decodeStrict(hex(h), LIMITS), want, name)
})

t.test('decodeStrict: every refused type and malformation', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['never used 0xc1', 'c1', /type 0xc1 at 0 is not allowed/],
    ['fixmap', '8101' + '02', /type 0x81/],
    ['map16', 'de0000', /type 0xde/],
    ['map32', 'df00000000', /type 0xdf/],
    ['bin8', 'c40100', /type 0xc4/],
    ['bin16', 'c5000100', /type 0xc5/],
    ['bin32', 'c60000000100', /type 0xc6/],
    ['fixext1', 'd40100', /type 0xd4/],
    ['fixext2', 'd5010000', /type 0xd5/],
    ['fixext4 (records)', 'd60100000000', /type 0xd6/],
    ['fixext8', 'd7010000000000000000', /type 0xd7/],
    ['fixext16', 'd801' + '00'.repeat(16), /type 0xd8/],
    ['ext8 (structured clone 0x70)', 'c70170' + '00', /type 0xc7/],
    ['ext16', 'c8000169' + '00', /type 0xc8/],
    ['ext32', 'c90000000169' + '00', /type 0xc9/],
    ['uint64 over 2^53', 'cf0020000000000000', /outside the safe range/],
    ['int64 under -2^53', 'd3ffdfffffffffffff', /outside the safe range/],
    ['trailing byte', '0100', /1 trailing bytes at 1/],
    ['truncated uint32', 'ce0000', /truncated at 1/],
    ['truncated float64', 'cb3ff8', /truncated/],
    ['array longer than its bytes', 'dd7fffffff01', /longer than the bytes left/],
    ['string longer than its bytes', 'dbffffffff41', /truncated/],
    ['invalid UTF-8', 'a2c328', /not valid UTF-8/],
    ['4 deep', '9191919101', /nested deeper than 3/],
    ['empty input', '', /truncated at 0/],
  ]
  for (const [name, h, re] of cases) t.throws(() => decodeStrict(hex(h), LIMITS), { name: 'StrictDecodeError', message: re }, name)
  t.throws(() => decodeStrict(hex('93010203'), { maxDepth: 3, maxValues: 3 }), { message: /more than 3 values/ }, 'value count bound')
})

t.test('readNumberArray: flat arrays of numbers only, nothing allocated, nothing nested decoded', async (t) => {
  const out = new Float64Array(4)
  t.equal(readNumberArray(hex('9310cb3ff8000000000000ff'), out), 3)
  t.same([...out.subarray(0, 3)], [16, 1.5, -1])
  t.equal(readNumberArray(hex('dc000311cc0a00'), out), 3, 'array16')
  t.equal(readNumberArray(hex('9510010203'), out), NumberArrayError.MALFORMED, 'count over the bytes')
  t.equal(readNumberArray(hex('951001020304'), out), NumberArrayError.TOO_LONG, 'more than out holds, all numbers')
  t.equal(out[0], 16, 'the type is still read when too long')
  t.equal(readNumberArray(hex('9310a17801'), out), NumberArrayError.NOT_A_NUMBER, 'a string element')
  t.ok(Number.isNaN(out[1] as number), 'NaN marks where it failed')
  t.equal(readNumberArray(hex('92109101'), out), NumberArrayError.NOT_A_NUMBER, 'a nested array is never read')
  t.equal(readNumberArray(hex('9210d60100000000'), out), NumberArrayError.MALFORMED, 'an extension type')
  t.equal(readNumberArray(hex('92108100'), out), NumberArrayError.MALFORMED, 'a map element')
  t.equal(readNumberArray(hex('921001ff'), out), NumberArrayError.MALFORMED, 'trailing byte')
  t.equal(readNumberArray(hex('8110'), out), NumberArrayError.MALFORMED, 'not an array')
  t.equal(readNumberArray(hex('9212cf8000000000000000'), out), NumberArrayError.NOT_A_NUMBER, 'uint64 2^63: outside ±2^53, a value error')
  t.equal(readNumberArray(hex('9212cf001fffffffffffff'), out), 2, 'uint64 2^53 - 1 is fine')
  t.equal(readNumberArray(hex(''), out), NumberArrayError.MALFORMED, 'empty')
})

t.test('parseClientMessage: valid frames parse as msgpackr would, random bytes never throw', async (t) => {
  const rnd = mulberry32(7)
  const out = newClientMessage(2)
  const other = new Packr({ useRecords: false })
  for (let i = 0; i < 2000; i++) {
    const seq = 1 + Math.floor(rnd() * 0xfffffffe)
    const ack = Math.floor(rnd() * 0xffffffff)
    const x = Math.floor(rnd() * 201) - 100
    const y = Math.floor(rnd() * 201) - 100
    if (parseClientMessage(encodeInput(seq, ack, [x, y]), spec, out) !== null) t.fail(`INPUT ${seq} ${ack} ${x} ${y} refused`)
    if (out.seq !== seq || out.ackTick !== ack || out.values[0] !== x || out.values[1] !== y) t.fail(`INPUT ${seq} ${ack} ${x} ${y} read back wrong`)
    // Any valid encoding counts: the same values as float 64.
    const asFloats = new Uint8Array(other.pack([16, seq + 0.0, ack, x, y]))
    if (parseClientMessage(asFloats, spec, out) !== null) t.fail('an encoding with other integer widths is valid too')
    if (parseClientMessage(encodeAck(ack), spec, out) !== null || out.type !== MsgType.ACK || out.ackTick !== ack) t.fail('ACK read back wrong')
    const time = rnd() * 1e9
    if (parseClientMessage(encodePing(time), spec, out) !== null || out.clientTime !== time) t.fail('PING read back wrong')
  }
  let threw = 0
  for (let i = 0; i < 20000; i++) {
    const b = new Uint8Array(1 + Math.floor(rnd() * 40))
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256)
    if (rnd() < 0.5) b[0] = 0x90 | Math.floor(rnd() * 16) // mostly arrays, to reach the element paths
    try {
      parseClientMessage(b, spec, out)
      try {
        decodeServerMessage(b)
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err
      }
    } catch {
      threw++
    }
  }
  t.pass('2,000 random valid INPUT, ACK and PING frames read back exactly')
  t.equal(threw, 0, 'no random frame makes either decoder throw anything but ProtocolError')
})

t.test('over a real socket: the bomb is closed 4000 in well under a tick while a bystander keeps its tick rate', async (t) => {
  const tw = await startTest({ tickHz: 30 })
  t.teardown(() => tw.stop())
  const bystander = await TickwireClient.connect(`${tw.url}?room=b`, { reconnect: false })
  t.teardown(() => bystander.close())
  await sleep(300)
  const attacker = new WebSocket(`${tw.url}?room=b`)
  await new Promise((r) => attacker.once('message', r))
  const closed = new Promise<number>((r) => attacker.on('close', (code) => r(code)))
  const tick0 = bystander.table.tick
  const sent = performance.now()
  attacker.send(bomb(16))
  const code = await closed
  const took = performance.now() - sent
  t.equal(code, CloseCode.BAD_MESSAGE, 'closed BAD_MESSAGE (4000)')
  t.ok(took < 1000, `closed ${took.toFixed(0)} ms after sending (a round trip; the decode itself is microseconds)`)
  await sleep(500)
  const ticks = bystander.table.tick - tick0
  const expected = ((performance.now() - sent) / 1000) * 30
  t.ok(ticks >= expected * 0.5, `the bystander got ${ticks} ticks of ~${expected.toFixed(0)} while it happened`)
  t.notOk(bystander.closed)
  const m = parseSamples(await tw.metrics.text())
  t.equal(m.get('tickwire_inputs_rejected_total{reason="malformed"}'), 1)
  t.ok((m.get('tickwire_ticks_skipped_total{worker="0"}') ?? NaN) <= 3, 'no more tick slots skipped than a busy machine skips anyway')
})
