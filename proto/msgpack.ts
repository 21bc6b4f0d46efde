/**
 * The few MessagePack encodings the STATE frame needs, written by hand so the
 * server can splice pre-encoded entity chunks into a frame without a second
 * encoding pass. Output is plain MessagePack (arrays and integers only): any
 * MessagePack library decodes it.
 *
 * Callers reserve capacity: an integer takes at most 5 bytes here (values are
 * limited to the int32/uint32 range), an array header at most 5.
 */

/** Writes `v` (an integer in [-2^31, 2^32)) in its shortest MessagePack form; returns the new position. */
export function writeInt(buf: Uint8Array, pos: number, v: number): number {
  if (v >= 0) {
    if (v < 0x80) {
      buf[pos] = v
      return pos + 1
    }
    if (v < 0x100) {
      buf[pos] = 0xcc
      buf[pos + 1] = v
      return pos + 2
    }
    if (v < 0x10000) {
      buf[pos] = 0xcd
      buf[pos + 1] = v >>> 8
      buf[pos + 2] = v & 0xff
      return pos + 3
    }
    buf[pos] = 0xce
    buf[pos + 1] = v >>> 24
    buf[pos + 2] = (v >>> 16) & 0xff
    buf[pos + 3] = (v >>> 8) & 0xff
    buf[pos + 4] = v & 0xff
    return pos + 5
  }
  if (v >= -32) {
    buf[pos] = v & 0xff // negative fixint 0xe0..0xff
    return pos + 1
  }
  if (v >= -128) {
    buf[pos] = 0xd0
    buf[pos + 1] = v & 0xff
    return pos + 2
  }
  if (v >= -32768) {
    buf[pos] = 0xd1
    buf[pos + 1] = (v >> 8) & 0xff
    buf[pos + 2] = v & 0xff
    return pos + 3
  }
  buf[pos] = 0xd2
  buf[pos + 1] = (v >> 24) & 0xff
  buf[pos + 2] = (v >> 16) & 0xff
  buf[pos + 3] = (v >> 8) & 0xff
  buf[pos + 4] = v & 0xff
  return pos + 5
}

/** Writes a MessagePack array header for `n` elements; returns the new position. */
export function writeArrayHeader(buf: Uint8Array, pos: number, n: number): number {
  if (n < 16) {
    buf[pos] = 0x90 | n
    return pos + 1
  }
  if (n < 0x10000) {
    buf[pos] = 0xdc
    buf[pos + 1] = n >>> 8
    buf[pos + 2] = n & 0xff
    return pos + 3
  }
  buf[pos] = 0xdd
  buf[pos + 1] = n >>> 24
  buf[pos + 2] = (n >>> 16) & 0xff
  buf[pos + 3] = (n >>> 8) & 0xff
  buf[pos + 4] = n & 0xff
  return pos + 5
}

/**
 * ZigZag maps signed deltas to unsigned so that small magnitudes of either sign
 * encode in one byte: 0->0, -1->1, 1->2, -2->3 ... (-64..63 fit a positive fixint).
 */
export function zigzag(n: number): number {
  // Deltas are of int32 quantized values and wrap like them: a client adding
  // the decoded delta into an Int32Array gets the right value back.
  const d = n | 0
  return ((d << 1) ^ (d >> 31)) >>> 0
}

/** Inverse of `zigzag`: a value in [-2^31, 2^31). */
export function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2
}
