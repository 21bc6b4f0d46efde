/** Output of the benchmarks: the machine they ran on, text tables, and the results file. */
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'

export interface Machine {
  readonly hostname: string
  readonly cpuModel: string
  readonly cores: number
  readonly totalMemoryBytes: number
  readonly node: string
  readonly os: string
}

export function machine(): Machine {
  const cpus = os.cpus()
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  }
}

/** The 1-minute load average: other work on the machine skews timings. */
export function loadAverage(): number {
  return os.loadavg()[0] ?? 0
}

/** Rows of cells as text: the first column left-aligned, the others right-aligned, each padded to its widest cell. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows
    .map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('   '))
    .join('\n')
}

/** Writes `data` as JSON to `<dir>/<name>-<YYYY-MM-DD>-<hostname>.json` (UTC date); returns the path. */
export function writeResults(dir: string, name: string, data: unknown): string {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${name}-${new Date().toISOString().slice(0, 10)}-${os.hostname()}.json`)
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n')
  return file
}
