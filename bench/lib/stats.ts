/** Mean and percentiles of per-tick figures. */
export interface Summary {
  readonly mean: number
  readonly p50: number
  readonly p99: number
}

export function summarize(values: Float64Array): Summary {
  if (values.length === 0) throw new RangeError('no values to summarize')
  const sorted = Float64Array.from(values).sort()
  let sum = 0
  for (const v of sorted) sum += v
  return { mean: sum / sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number
}
