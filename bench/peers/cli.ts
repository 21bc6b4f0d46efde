/**
 * The command line every peer server takes, checked from one table:
 *
 *   --port P            game port (0: a free one; the `listening <port>` line tells which)
 *   --tick-hz H         simulation and send rate, Hz
 *   --metrics-port M    Prometheus /metrics port (0 or absent: none)
 *   --host A            address both ports bind to (default 0.0.0.0)
 *
 * A peer prints exactly one line on stdout, `listening <port>`, once it accepts
 * players; everything else goes to stderr. It exits 0 on SIGTERM or SIGINT.
 */
import { parseArgs } from 'node:util'

export interface PeerOptions {
  readonly port: number
  readonly tickHz: number
  /** 0: no metrics endpoint. */
  readonly metricsPort: number
  readonly host: string
}

interface Spec {
  readonly flag: string
  readonly default: number | string | null
  readonly check: (v: string) => number | string | null
  readonly expect: string
}

const port = (v: string): number | null => (/^\d+$/.test(v) && Number(v) <= 65535 ? Number(v) : null)

const SPECS = {
  port: { flag: 'port', default: null, check: port, expect: 'an integer in 0..65535' },
  tickHz: {
    flag: 'tick-hz',
    default: null,
    check: (v) => (Number.isFinite(Number(v)) && Number(v) > 0 && Number(v) <= 240 ? Number(v) : null),
    expect: 'a number in (0, 240]',
  },
  metricsPort: { flag: 'metrics-port', default: 0, check: port, expect: 'an integer in 0..65535' },
  host: { flag: 'host', default: '0.0.0.0', check: (v) => (v !== '' ? v : null), expect: 'an address' },
} as const satisfies Record<keyof PeerOptions, Spec>

/** Parses a peer's argv; throws Error naming the flag, the value and what was expected. */
export function parsePeerArgs(argv: readonly string[]): PeerOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(Object.values(SPECS).map((s) => [s.flag, { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  })
  const out: Record<string, number | string> = {}
  for (const [key, spec] of Object.entries(SPECS) as [keyof PeerOptions, Spec][]) {
    const raw = values[spec.flag]
    if (typeof raw !== 'string') {
      if (spec.default === null) throw new Error(`--${spec.flag} is required (${spec.expect})`)
      out[key] = spec.default
      continue
    }
    const v = spec.check(raw)
    if (v === null) throw new Error(`--${spec.flag} must be ${spec.expect}, got ${JSON.stringify(raw)}`)
    out[key] = v
  }
  return out as unknown as PeerOptions
}

/**
 * A peer's entry point: parses argv (a bad flag: its message, exit 2), starts
 * the server, prints `listening <port>`, and on SIGTERM or SIGINT closes it
 * and exits 0. Any other failure: its message, exit 1.
 */
export function runPeer<O>(name: string, parse: (argv: readonly string[]) => O, start: (opts: O) => Promise<{ readonly port: number; close(): Promise<void> }>): void {
  let opts: O
  try {
    opts = parse(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`)
    process.exit(2)
  }
  start(opts).then(
    (server) => {
      const stop = (): void => {
        server.close().then(
          () => process.exit(0),
          () => process.exit(0),
        )
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
      process.stdout.write(`listening ${server.port}\n`)
    },
    (err: unknown) => {
      process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exit(1)
    },
  )
}
