/**
 * Micro-benchmark of the decoders on untrusted bytes: ns per client INPUT
 * frame with the strict reader (what the server runs) against msgpackr's
 * general unpack (what it ran before), and per STATE frame in the SDK.
 * `npm run bench:decode`.
 */
import { Unpackr } from 'msgpackr'
import { cpus } from 'node:os'
import { decodeServerMessage, encodeInput, newClientMessage, parseClientMessage } from '../proto/index.js'
import { Packr } from 'msgpackr'

function time(name: string, n: number, fn: () => void): number {
  for (let i = 0; i < n / 10; i++) fn() // warm up
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn()
  const ns = Number(process.hrtime.bigint() - t0) / n
  console.log(`${name.padEnd(52)} ${ns.toFixed(0).padStart(7)} ns`)
  return ns
}

const spec = [
  { name: 'x', min: -1000, max: 1000 },
  { name: 'y', min: -1000, max: 1000 },
]
const input = encodeInput(123456, 98765, [-512, 700])
const out = newClientMessage(2)
const general = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' })
console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}, ${cpus().length} cores`)
const strict = time('INPUT: parseClientMessage (strict, no allocation)', 2_000_000, () => parseClientMessage(input, spec, out))
const old = time('INPUT: msgpackr unpack (before; checks not included)', 2_000_000, () => general.unpack(input))
console.log(`strict / msgpackr: ${(strict / old).toFixed(2)}`)
const changed: number[] = []
for (let i = 0; i < 40; i++) changed.push(1, 0b11, 4, 5)
const state = new Packr({ useRecords: false }).pack([2, 1000, 1, 77, [], changed, []])
time(`STATE (${state.length} B): decodeServerMessage (strict)`, 200_000, () => decodeServerMessage(state))
time(`STATE (${state.length} B): msgpackr unpack (before)`, 200_000, () => general.unpack(state))
