import { Packr, unpack } from 'msgpackr'
import t from 'tap'
import {
  ClientError,
  MAX_REDIRECT_URL_CHARS,
  MIN_PROTOCOL_VERSION,
  MsgType,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeServerMessage,
  encodeAck,
  encodeInput,
  encodePing,
  encodePong,
  encodeRedirect,
  encodeWelcome,
  newClientMessage,
  parseClientMessage,
  unzigzag,
  writeArrayHeader,
  writeInt,
  zigzag,
  type InputSpec,
} from '../proto/index.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const spec: InputSpec[] = [
  { name: 'mx', min: -100, max: 100 },
  { name: 'my', min: -100, max: 100 },
]

t.test('writeInt: shortest MessagePack form, decodable by any MessagePack library', async (t) => {
  const cases: [number, string][] = [
    [0, '00'],
    [127, '7f'],
    [128, 'cc80'],
    [255, 'ccff'],
    [256, 'cd0100'],
    [65535, 'cdffff'],
    [65536, 'ce00010000'],
    [0xffffffff, 'ceffffffff'],
    [-1, 'ff'],
    [-32, 'e0'],
    [-33, 'd0df'],
    [-128, 'd080'],
    [-129, 'd1ff7f'],
    [-32768, 'd18000'],
    [-32769, 'd2ffff7fff'],
    [-2147483648, 'd280000000'],
  ]
  const buf = new Uint8Array(8)
  for (const [v, want] of cases) {
    const n = writeInt(buf, 0, v)
    t.equal(hex(buf.subarray(0, n)), want, `${v}`)
    t.equal(unpack(buf.subarray(0, n)), v, `${v} decodes`)
  }
})

t.test('writeArrayHeader: fixarray, array16, array32', async (t) => {
  const buf = new Uint8Array(8)
  t.equal(hex(buf.subarray(0, writeArrayHeader(buf, 0, 0))), '90')
  t.equal(hex(buf.subarray(0, writeArrayHeader(buf, 0, 15))), '9f')
  t.equal(hex(buf.subarray(0, writeArrayHeader(buf, 0, 16))), 'dc0010')
  t.equal(hex(buf.subarray(0, writeArrayHeader(buf, 0, 70000))), 'dd00011170')
})

t.test('zigzag maps small signed deltas to small unsigned numbers and back', async (t) => {
  t.same([0, -1, 1, -2, 2, -64, 63].map(zigzag), [0, 1, 2, 3, 4, 127, 126])
  for (const v of [0, 1, -1, 12345, -12345, 2 ** 30, -(2 ** 30)]) t.equal(unzigzag(zigzag(v)), v)
})

t.test('every server message round-trips', async (t) => {
  const welcome = {
    version: PROTOCOL_VERSION,
    playerId: 7,
    roomId: 'lobby-1',
    tickHz: 30,
    entityId: 130,
    historyTicks: 32,
    fields: [
      { name: 'x', quantum: 0.25 },
      { name: 'kind', quantum: 1 },
    ],
    input: spec,
    resumeToken: 'AAAAAAAAAAA.0.AAAAAAAAAAAAAAAAAAAAAA',
    ackWindow: 12,
    messageSeq: 5,
    messages: [{ name: 'tagged', fields: [{ name: 'by', type: 'int', min: 0, max: 65535 }, { name: 'why', type: 'string', maxBytes: 64 }] }],
    clientMessages: [{ name: 'chat', fields: [{ name: 'text', type: 'string', maxBytes: 200 }, { name: 'loud', type: 'bool' }, { name: 'at', type: 'number' }] }],
    props: [{ name: 'name', type: 'string', maxBytes: 32 }],
  } as const
  t.same(decodeServerMessage(encodeWelcome(welcome)), { type: MsgType.WELCOME, ...welcome }, 'a protocol 3 WELCOME carries the five trailing elements')
  t.same(decodeServerMessage(encodePong(123.5, 7)), { type: MsgType.PONG, clientTime: 123.5, roomPlayers: 7 })
  t.same(decodeServerMessage(encodeWelcome({ ...welcome, version: MIN_PROTOCOL_VERSION })), { type: MsgType.WELCOME, ...welcome, version: 2, ackWindow: 0, messageSeq: 0, messages: [], clientMessages: [], props: [] }, 'a protocol 2 WELCOME is accepted (10 elements, none of the protocol 3 ones)')
  t.throws(() => decodeServerMessage(new Packr({ useRecords: false }).pack([MsgType.WELCOME, 1, 7])), { message: /server speaks protocol 1, this client 2 to 3/ })
  t.throws(() => decodeServerMessage(encodeWelcome({ ...welcome, version: PROTOCOL_VERSION + 1 })), { message: /server speaks protocol 4, this client 2 to 3/ })
  t.throws(() => decodeServerMessage(new Packr({ useRecords: false }).pack([MsgType.WELCOME, '3'])), { message: /server speaks protocol 3, this client/ }, 'a version that is not a number')
  const state = { tick: 100, baseTick: 98, inputSeq: 3, removed: [4], changed: [5, 6, 2, 3], created: [9, 0, 10, 20, 0] }
  const bytes = new Packr({ useRecords: false }).pack([MsgType.STATE, 100, 2, 3, [4], [5, 6, 2, 3], [9, 0, 10, 20, 0]])
  t.same(decodeServerMessage(bytes), { type: MsgType.STATE, ...state })
})

t.test('REDIRECT: 3 elements for protocol 2, 4 for protocol 3; both decode', async (t) => {
  const url = 'wss://play.example.com/play?room=lobby&route=m2-1'
  const v2 = encodeRedirect({ port: 9003, host: '10.0.0.2', url: '' }, 2)
  t.same(unpack(v2), [MsgType.REDIRECT, 9003, '10.0.0.2'], 'protocol 2: [4, port, host]')
  t.same(decodeServerMessage(v2), { type: MsgType.REDIRECT, port: 9003, host: '10.0.0.2', url: '' }, 'decodes with url empty')
  const v3 = encodeRedirect({ port: 0, host: '', url }, 3)
  t.same(unpack(v3), [MsgType.REDIRECT, 0, '', url], 'protocol 3: [4, port, host, url]')
  t.same(decodeServerMessage(v3), { type: MsgType.REDIRECT, port: 0, host: '', url })
  const direct3 = encodeRedirect({ port: 9003, host: '', url: '' }, 3)
  t.same(unpack(direct3), [MsgType.REDIRECT, 9003, '', ''], 'protocol 3 without a url')
  t.same(decodeServerMessage(direct3), { type: MsgType.REDIRECT, port: 9003, host: '', url: '' })
  t.same(decodeServerMessage(encodeRedirect({ port: 1, host: '', url: 'ws://127.0.0.1:9/play' }, 3)).type, MsgType.REDIRECT, 'ws:// is a url too')
  const long = `wss://h/play?x=${'a'.repeat(MAX_REDIRECT_URL_CHARS - 'wss://h/play?x='.length)}`
  t.equal(long.length, MAX_REDIRECT_URL_CHARS)
  t.same(decodeServerMessage(encodeRedirect({ port: 0, host: '', url: long }, 3)), { type: MsgType.REDIRECT, port: 0, host: '', url: long }, 'a url of exactly the limit')

  t.throws(() => encodeRedirect({ port: 0, host: '', url }, 2), RangeError, 'protocol 2 cannot carry a url')
  t.throws(() => encodeRedirect({ port: 9003, host: '', url: '' }, 1), RangeError, 'no layout for protocol 1')
  t.throws(() => encodeRedirect({ port: 9003, host: '', url: '' }, 4), RangeError, 'no layout for protocol 4')
})

t.test('decodeServerMessage refuses off-spec REDIRECTs', async (t) => {
  const p = new Packr({ useRecords: false })
  const R = MsgType.REDIRECT
  const cases: [string, unknown[]][] = [
    ['port 0 without a url', [R, 0, '']],
    ['port 0 without a url (4 elements)', [R, 0, '', '']],
    ['port above 65535', [R, 65536, '']],
    ['port above 65535 with a url', [R, 65536, '', 'wss://h/play']],
    ['negative port with a url', [R, -1, '', 'wss://h/play']],
    ['float port', [R, 9003.5, '']],
    ['host not a string', [R, 9003, 7]],
    ['url not a string', [R, 0, '', 7]],
    ['an http url', [R, 0, '', 'https://play.example.com/play']],
    ['a relative url', [R, 0, '', '/play?route=a']],
    ['not a url', [R, 0, '', 'wss://']],
    ['a javascript: url', [R, 0, '', 'javascript:alert(1)']],
    ['a url over the limit', [R, 0, '', `wss://h/play?x=${'a'.repeat(MAX_REDIRECT_URL_CHARS)}`]],
    ['too few elements', [R, 9003]],
    ['too many elements', [R, 0, '', 'wss://h/play', 1]],
  ]
  for (const [name, frame] of cases) t.throws(() => decodeServerMessage(p.pack(frame)), { name: 'ProtocolError', message: /bad REDIRECT/ }, name)
})

t.test('decodeServerMessage throws ProtocolError on off-spec frames', async (t) => {
  const p = new Packr({ useRecords: false })
  t.throws(() => decodeServerMessage(new Uint8Array([0xc1])), ProtocolError)
  t.throws(() => decodeServerMessage(p.pack({ a: 1 })), { message: /type 0xde at 0 is not allowed/ }, 'a map')
  t.throws(() => decodeServerMessage(p.pack([99])), { message: /unknown message type/ })
  t.throws(() => decodeServerMessage(p.pack([MsgType.STATE, 1, 0, 0, [], [1.5], []])), { message: /bad STATE body/ })
  t.throws(() => decodeServerMessage(p.pack([MsgType.STATE, 1, 0])), { message: /bad STATE header/ })
  t.throws(() => decodeServerMessage(p.pack([MsgType.STATE, 5, 5, 0, [], [], []])), { message: /bad STATE header/ }, 'base age reaching before tick 1')
  t.throws(() => decodeServerMessage(p.pack([MsgType.WELCOME, 2])), { message: /bad WELCOME/ })
  t.throws(() => decodeServerMessage(p.pack([MsgType.PONG])), { message: /bad PONG/ })
})

t.test('every client message round-trips through the server parser', async (t) => {
  const out = newClientMessage(2)
  t.equal(parseClientMessage(encodeInput(5, 77, [100, -100]), spec, out), null)
  t.equal(out.type, MsgType.INPUT)
  t.equal(out.seq, 5)
  t.equal(out.ackTick, 77)
  t.same([...out.values], [100, -100])
  t.equal(parseClientMessage(encodeAck(78), spec, out), null)
  t.equal(out.type, MsgType.ACK)
  t.equal(out.ackTick, 78)
  t.equal(parseClientMessage(encodePing(1234.25), spec, out), null)
  t.equal(out.type, MsgType.PING)
  t.equal(out.clientTime, 1234.25)
})

t.test('parseClientMessage rejects untrusted input with the right reason, never throwing', async (t) => {
  const out = newClientMessage(2)
  const p = new Packr({ useRecords: false, moreTypes: true })
  const cases: [string, Uint8Array, ClientError][] = [
    ['garbage', new Uint8Array([0xc1, 0xff, 0x00]), ClientError.MALFORMED],
    ['empty', new Uint8Array(0), ClientError.MALFORMED],
    ['truncated', encodeInput(1, 0, [1, 2]).subarray(0, 3), ClientError.MALFORMED],
    ['trailing bytes', new Uint8Array([...encodeAck(1), 0x00]), ClientError.MALFORMED],
    ['a map', p.pack({ type: 16 }), ClientError.MALFORMED],
    ['unknown type', p.pack([99, 1]), ClientError.MALFORMED],
    ['type as string', p.pack(['16', 1, 0, 0, 0]), ClientError.MALFORMED],
    ['NaN input', p.pack([16, 1, 0, NaN, 0]), ClientError.TYPE],
    ['Infinity input', p.pack([16, 1, 0, Infinity, 0]), ClientError.TYPE],
    ['float input', p.pack([16, 1, 0, 0.5, 0]), ClientError.TYPE],
    ['string input', p.pack([16, 1, 0, 'x', 0]), ClientError.TYPE],
    // Extension types (msgpackr's Set, RegExp, Error, typed arrays, records, structured clone) are outside the protocol: malformed.
    ['Set input', p.pack([16, 1, 0, new Set([1]), 0]), ClientError.MALFORMED],
    ['RegExp input', p.pack([16, 1, 0, /x/, 0]), ClientError.MALFORMED],
    ['Error input', p.pack([16, 1, 0, new Error('x'), 0]), ClientError.MALFORMED],
    ['typed array input', p.pack([16, 1, 0, new Uint8Array(3), 0]), ClientError.MALFORMED],
    ['BigInt seq', p.pack([16, 2n ** 60n, 0, 1, 1]), ClientError.TYPE],
    ['seq 0', p.pack([16, 0, 0, 1, 1]), ClientError.TYPE],
    ['negative ack', p.pack([16, 1, -1, 1, 1]), ClientError.TYPE],
    ['too few values', p.pack([16, 1, 0, 1]), ClientError.TYPE],
    ['too many values', p.pack([16, 1, 0, 1, 1, 1]), ClientError.TYPE],
    ['out of range', p.pack([16, 1, 0, 101, 0]), ClientError.RANGE],
    ['out of range low', p.pack([16, 1, 0, 0, -101]), ClientError.RANGE],
    ['ACK float', p.pack([17, 1.5]), ClientError.TYPE],
    ['ACK extra', p.pack([17, 1, 2]), ClientError.TYPE],
    ['PING NaN', p.pack([18, NaN]), ClientError.TYPE],
  ]
  for (const [name, bytes, want] of cases) t.equal(parseClientMessage(bytes, spec, out), want, name)
})
