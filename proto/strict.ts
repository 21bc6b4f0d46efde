/**
 * A strict MessagePack reader for untrusted bytes: only what the tickwire
 * protocol uses. General decoders (msgpackr) honour extension types, records
 * and structured clone, where a few hundred bytes of back-references expand
 * into gigabytes and seconds of work; here each value costs at least one input
 * byte, so the work and the output are linear in the frame's size.
 *
 * Accepted: nil, false, true, fixint, uint8/16/32/64, int8/16/32/64, float32/64,
 * fixstr/str8/16/32 (valid UTF-8), fixarray/array16/array32.
 * Refused: maps, bin, every ext type (fixext, ext8/16/32: so msgpackr's
 * records 0xd4-0xd8/0xc7-0xc9 and structured-clone references), 0xc1, trailing
 * bytes, and a length that the bytes left cannot hold (checked before
 * anything is allocated).
 */

/** Thrown by `decodeStrict` for bytes outside the accepted subset. */
export class StrictDecodeError extends Error {
  override name = 'StrictDecodeError'
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** What `decodeStrict` returns. */
export type StrictValue = null | boolean | number | string | StrictValue[]

/** Limits of `decodeStrict`: how deep arrays nest, how many values in all. */
export interface StrictLimits {
  readonly maxDepth: number
  readonly maxValues: number
}

/**
 * Decodes one MessagePack value that must span `bytes` exactly. Throws
 * `StrictDecodeError` naming the offset and what was wrong.
 */
export function decodeStrict(bytes: Uint8Array, limits: StrictLimits): StrictValue {
  const r = new Reader(bytes, limits)
  const v = r.value(0)
  if (r.pos !== bytes.length) throw new StrictDecodeError(`${bytes.length - r.pos} trailing bytes at ${r.pos}`)
  return v
}

class Reader {
  pos = 0
  values = 0
  readonly #b: Uint8Array
  readonly #v: DataView
  readonly #limits: StrictLimits

  constructor(b: Uint8Array, limits: StrictLimits) {
    this.#b = b
    this.#v = new DataView(b.buffer, b.byteOffset, b.byteLength)
    this.#limits = limits
  }

  #need(n: number): void {
    if (this.pos + n > this.#b.length) throw new StrictDecodeError(`truncated at ${this.pos}: ${n} more bytes needed`)
  }

  value(depth: number): StrictValue {
    if (++this.values > this.#limits.maxValues) throw new StrictDecodeError(`more than ${this.#limits.maxValues} values`)
    this.#need(1)
    const at = this.pos
    const t = this.#b[this.pos++] as number
    if (t < 0x80) return t
    if (t >= 0xe0) return t - 0x100
    if (t >= 0xa0 && t <= 0xbf) return this.#str(t & 0x1f)
    if (t >= 0x90 && t <= 0x9f) return this.#array(t & 0x0f, depth)
    const v = this.#v
    switch (t) {
      case 0xc0:
        return null
      case 0xc2:
        return false
      case 0xc3:
        return true
      case 0xca:
        this.#need(4)
        return v.getFloat32((this.pos += 4) - 4)
      case 0xcb:
        this.#need(8)
        return v.getFloat64((this.pos += 8) - 8)
      case 0xcc:
        this.#need(1)
        return v.getUint8(this.pos++)
      case 0xcd:
        this.#need(2)
        return v.getUint16((this.pos += 2) - 2)
      case 0xce:
        this.#need(4)
        return v.getUint32((this.pos += 4) - 4)
      case 0xcf:
      case 0xd3: {
        this.#need(8)
        const hi = t === 0xcf ? v.getUint32(this.pos) : v.getInt32(this.pos)
        const lo = v.getUint32(this.pos + 4)
        this.pos += 8
        const n = hi * 0x1_0000_0000 + lo
        if (!Number.isSafeInteger(n)) throw new StrictDecodeError(`64-bit integer at ${at} outside the safe range`)
        return n
      }
      case 0xd0:
        this.#need(1)
        return v.getInt8(this.pos++)
      case 0xd1:
        this.#need(2)
        return v.getInt16((this.pos += 2) - 2)
      case 0xd2:
        this.#need(4)
        return v.getInt32((this.pos += 4) - 4)
      case 0xd9:
        this.#need(1)
        return this.#str(v.getUint8(this.pos++))
      case 0xda:
        this.#need(2)
        return this.#str(v.getUint16((this.pos += 2) - 2))
      case 0xdb:
        this.#need(4)
        return this.#str(v.getUint32((this.pos += 4) - 4))
      case 0xdc:
        this.#need(2)
        return this.#array(v.getUint16((this.pos += 2) - 2), depth)
      case 0xdd:
        this.#need(4)
        return this.#array(v.getUint32((this.pos += 4) - 4), depth)
      default:
        throw new StrictDecodeError(`type 0x${t.toString(16)} at ${at} is not allowed (only nil, booleans, numbers, strings and arrays)`)
    }
  }

  #str(n: number): string {
    this.#need(n)
    const start = this.pos
    this.pos += n
    try {
      return utf8.decode(this.#b.subarray(start, start + n))
    } catch {
      throw new StrictDecodeError(`string at ${start} is not valid UTF-8`)
    }
  }

  #array(n: number, depth: number): StrictValue[] {
    if (depth + 1 > this.#limits.maxDepth) throw new StrictDecodeError(`arrays nested deeper than ${this.#limits.maxDepth}`)
    // Every element takes at least one byte: a count the bytes left cannot hold is refused before allocating.
    if (n > this.#b.length - this.pos) throw new StrictDecodeError(`array of ${n} at ${this.pos} longer than the bytes left`)
    const out = new Array<StrictValue>(n)
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1)
    return out
  }
}

/** `readNumberArray` results other than a count (all negative). */
export const NumberArrayError = {
  /** Not MessagePack of the accepted subset, not an array, or trailing bytes. */
  MALFORMED: -1,
  /** More elements than `out` holds (all were numbers; the first `out.length` are in `out`). */
  TOO_LONG: -2,
  /** An element is valid MessagePack but not a usable number (nil, bool, string, array, a 64-bit integer beyond ±2^53): `out` has NaN there and numbers before it. */
  NOT_A_NUMBER: -3,
} as const

/**
 * Reads a frame that must be one flat array of numbers (every client frame)
 * into `out`, allocating nothing. Returns the element count, or a negative
 * `NumberArrayError`. Stops at the first element that is not a number, and
 * never looks inside a nested container. At most `out.length` elements are
 * stored; the rest are still checked.
 */
export function readNumberArray(b: Uint8Array, out: Float64Array): number {
  const len = b.length
  if (len === 0) return NumberArrayError.MALFORMED
  const t0 = b[0] as number
  let n: number
  let pos: number
  if (t0 >= 0x90 && t0 <= 0x9f) {
    n = t0 & 0x0f
    pos = 1
  } else if (t0 === 0xdc && len >= 3) {
    n = ((b[1] as number) << 8) | (b[2] as number)
    pos = 3
  } else if (t0 === 0xdd && len >= 5) {
    n = (((b[1] as number) << 24) | ((b[2] as number) << 16) | ((b[3] as number) << 8) | (b[4] as number)) >>> 0
    pos = 5
  } else return NumberArrayError.MALFORMED
  if (n > len - pos) return NumberArrayError.MALFORMED
  for (let i = 0; i < n; i++) {
    if (pos >= len) return NumberArrayError.MALFORMED
    const t = b[pos++] as number
    let x: number
    if (t < 0x80) x = t
    else if (t >= 0xe0) x = t - 0x100
    else {
      const size = NUMBER_SIZE[t] as number
      if (size === 0) {
        // A value of another accepted kind is a type error; anything else (ext, map, bin, 0xc1) is malformed.
        if (OTHER_ALLOWED[t] !== 1) return NumberArrayError.MALFORMED
        if (i < out.length) out[i] = NaN // marks where it failed (the type, if i is 0)
        return NumberArrayError.NOT_A_NUMBER
      }
      if (pos + size > len) return NumberArrayError.MALFORMED
      // Big-endian reads by hand: no DataView (an allocation) per frame.
      switch (t) {
        case 0xcc: x = b[pos] as number; break
        case 0xcd: x = ((b[pos] as number) << 8) | (b[pos + 1] as number); break
        case 0xce: x = u32(b, pos); break
        case 0xcf: x = u32(b, pos) * 0x1_0000_0000 + u32(b, pos + 4); break
        case 0xd0: x = ((b[pos] as number) << 24) >> 24; break
        case 0xd1: x = ((((b[pos] as number) << 8) | (b[pos + 1] as number)) << 16) >> 16; break
        case 0xd2: x = u32(b, pos) | 0; break
        case 0xd3: x = (u32(b, pos) | 0) * 0x1_0000_0000 + u32(b, pos + 4); break
        default: {
          // float 32/64: through one shared 8-byte view.
          for (let k = 0; k < size; k++) f64bytes[k] = b[pos + k] as number
          x = t === 0xca ? f64view.getFloat32(0) : f64view.getFloat64(0)
        }
      }
      pos += size
      // 64-bit integers beyond ±2^53 lose their value as numbers: a value error (decodeStrict refuses them too).
      if ((t === 0xcf || t === 0xd3) && !Number.isSafeInteger(x)) {
        if (i < out.length) out[i] = NaN
        return NumberArrayError.NOT_A_NUMBER
      }
    }
    if (i < out.length) out[i] = x
  }
  if (pos !== len) return NumberArrayError.MALFORMED
  return n > out.length ? NumberArrayError.TOO_LONG : n
}

function u32(b: Uint8Array, p: number): number {
  return (((b[p] as number) << 24) | ((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number)) >>> 0
}
const f64bytes = new Uint8Array(8)
const f64view = new DataView(f64bytes.buffer)

/** Payload bytes of each number type by first byte (0: not a number type). */
const NUMBER_SIZE = new Uint8Array(256)
for (const [t, n] of [[0xca, 4], [0xcb, 8], [0xcc, 1], [0xcd, 2], [0xce, 4], [0xcf, 8], [0xd0, 1], [0xd1, 2], [0xd2, 4], [0xd3, 8]] as const) NUMBER_SIZE[t] = n
/** 1 for the first bytes of the accepted kinds that are not numbers: nil, booleans, strings, arrays. */
const OTHER_ALLOWED = new Uint8Array(256)
for (const t of [0xc0, 0xc2, 0xc3, 0xd9, 0xda, 0xdb, 0xdc, 0xdd]) OTHER_ALLOWED[t] = 1
for (let t = 0x90; t <= 0xbf; t++) OTHER_ALLOWED[t] = 1 // fixarray, fixstr
