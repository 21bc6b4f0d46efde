/**
 * A mergeable latency histogram in the spirit of HdrHistogram: values (in
 * microseconds) go into log-linear buckets, 64 sub-buckets per power of two,
 * so any recorded value is reported within 1/64 (1.6%) of itself, from 1 us
 * to about 1 hour, in a fixed 2 KiB of counts. Bot processes send their
 * counts to the parent, which adds them up.
 */

const SUB_BITS = 6
const SUB = 1 << SUB_BITS // 64
const MAGNITUDES = 33 // up to 2^(33+6) us
const SIZE = (MAGNITUDES + 1) * SUB

export class Histogram {
  readonly counts: Float64Array
  count = 0
  max = 0
  sum = 0

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(SIZE)
    if (counts) this.add(counts)
  }

  /** Records one value in microseconds (negative values count as 0). */
  record(us: number): void {
    const v = us > 0 ? Math.floor(us) : 0
    const i = indexOf(v)
    this.counts[i] = (this.counts[i] as number) + 1
    this.count++
    this.sum += v
    if (v > this.max) this.max = v
  }

  /** Adds another histogram's counts (same layout). */
  add(counts: ArrayLike<number>, max = 0, sum = 0): void {
    for (let i = 0; i < SIZE; i++) {
      const c = counts[i] ?? 0
      if (c !== 0) {
        this.counts[i] = (this.counts[i] as number) + c
        this.count += c
      }
    }
    if (max > this.max) this.max = max
    this.sum += sum
  }

  merge(h: Histogram): void {
    this.add(h.counts, h.max, h.sum)
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
    this.max = 0
    this.sum = 0
  }

  /** The value at quantile q (0..1), in microseconds: the middle of its bucket (exact below 64 us); 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0
    if (q >= 1) return this.max
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i] as number
      if (seen >= rank) return Math.min(this.max, valueOf(i))
    }
    return this.max
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count
  }

  /** Counts without trailing zeros, for IPC and JSON. */
  toJSON(): { counts: number[]; max: number; sum: number } {
    let end = SIZE
    while (end > 0 && this.counts[end - 1] === 0) end--
    return { counts: Array.from(this.counts.subarray(0, end)), max: this.max, sum: this.sum }
  }

  static fromJSON(j: { counts: number[]; max: number; sum: number }): Histogram {
    const h = new Histogram()
    h.add(j.counts, j.max, j.sum)
    return h
  }
}

/** Bucket of value v: exact below SUB, then SUB sub-buckets per power of two. */
function indexOf(v: number): number {
  if (v < SUB) return v
  const mag = Math.min(MAGNITUDES, Math.floor(Math.log2(v)) - SUB_BITS + 1)
  const sub = Math.min(SUB - 1, Math.floor(v / 2 ** (mag - 1)) - SUB)
  return mag * SUB + sub
}

/** Middle of bucket i (its lower bound for the exact ones). */
function valueOf(i: number): number {
  if (i < SUB) return i
  const mag = Math.floor(i / SUB)
  const sub = i % SUB
  const width = 2 ** (mag - 1)
  return (SUB + sub) * width + width / 2
}
