/**
 * Join-token verification benchmark (src/auth/jwt.ts).
 *
 * Run: `npm run bench:auth` (builds, then runs dist/bench/auth.js).
 *
 * 1. Cost per verification, per algorithm (HS256, ES256, EdDSA, RS256): a
 *    verifier as the server builds it (keys from files), tokens of a
 *    realistic shape (sub, name, roles, room, iss, aud, iat, exp), verified
 *    one at a time for SECONDS after a warm-up: ops/s, µs/op, and the
 *    process's CPU per op (jose uses WebCrypto, whose work partly runs on
 *    libuv's thread pool). Then
 *    the same with IN_FLIGHT verifications at once (a burst of upgrades).
 * 2. A storm: STORM tokens handed to verify() at once, as a flood of
 *    upgrades would, to a verifier without a cap on verifications in
 *    flight and to one with the default cap (16), while `monitorEventLoopDelay` and a 30 Hz timer (the
 *    default tick) measure how late the loop runs: p99 / max delay and the
 *    latest tick, to tell whether valid-token storms starve the tick.
 *
 * Output: tables on stdout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { SignJWT, exportSPKI, generateKeyPair, type CryptoKey } from 'jose'
import type { AuthAlgorithm, Verifier } from '../src/auth/auth.js'
import { createVerifier } from '../src/auth/jwt.js'
import { createLogger } from '../src/log.js'
import { formatTable, loadAverage, machine } from './lib/report.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3)
const WARMUP_SECONDS = 0.5
const IN_FLIGHT = 64
const STORM = Number(process.env.BENCH_STORM ?? 2000)
const TICK_HZ = 30
const TOKENS = 256
const SECRET = 'bench-secret-bench-secret-bench-secret'
const ALGS: readonly AuthAlgorithm[] = ['HS256', 'ES256', 'EdDSA', 'RS256']

const dir = mkdtempSync(join(tmpdir(), 'tickwire-bench-auth-'))
const log = createLogger('error')

async function setup(alg: AuthAlgorithm): Promise<{ verifier: Verifier; unlimited: Verifier; tokens: string[] }> {
  let signWith: CryptoKey | Uint8Array
  let publicKeyFile = ''
  if (alg === 'HS256') signWith = new TextEncoder().encode(SECRET)
  else {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
    publicKeyFile = join(dir, `${alg}.pem`)
    writeFileSync(publicKeyFile, await exportSPKI(publicKey))
    signWith = privateKey
  }
  const make = (maxInFlight?: number) => createVerifier({
    algorithm: alg,
    secret: alg === 'HS256' ? SECRET : '',
    publicKeyFile,
    jwks: '',
    issuer: 'https://auth.example.com',
    audience: 'tickwire',
    clockToleranceSeconds: 5,
    log,
    ...(maxInFlight !== undefined ? { maxInFlight } : {}),
  })
  const verifier = await make()
  const unlimited = await make(Number.MAX_SAFE_INTEGER)
  const tokens: string[] = []
  for (let i = 0; i < TOKENS; i++) {
    tokens.push(
      await new SignJWT({ sub: `player-${i}`, name: `Player ${i}`, roles: ['player'], room: 'arena-*' })
        .setProtectedHeader({ alg })
        .setIssuer('https://auth.example.com')
        .setAudience('tickwire')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(signWith),
    )
  }
  // Every token must verify, or the figures measure refusals.
  for (const tok of tokens) if (!(await verifier.verify(tok)).ok) throw new Error(`${alg}: a bench token did not verify`)
  return { verifier, unlimited, tokens }
}

interface Rate {
  readonly ops: number
  readonly opsPerSec: number
  readonly usPerOp: number
  readonly cpuUsPerOp: number
}

/** Verifies for `seconds`, `concurrency` at a time. */
async function measure(v: Verifier, tokens: readonly string[], seconds: number, concurrency: number): Promise<Rate> {
  const end = performance.now() + seconds * 1000
  let ops = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const lane = async (k: number): Promise<void> => {
    for (let i = k; performance.now() < end; i += concurrency) {
      const out = await v.verify(tokens[i % tokens.length] as string)
      if (!out.ok) throw new Error(out.reason)
      ops++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, k) => lane(k)))
  const wallUs = (performance.now() - t0) * 1000
  const cpu = process.cpuUsage(cpu0)
  return { ops, opsPerSec: (ops / wallUs) * 1e6, usPerOp: wallUs / ops, cpuUsPerOp: (cpu.user + cpu.system) / ops }
}

interface Storm {
  readonly ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly latestTickMs: number
}

/**
 * STORM verifications, `lanes` at a time (STORM: all at once), with the
 * loop's delay and a 30 Hz timer's lateness measured meanwhile.
 */
async function storm(v: Verifier, tokens: readonly string[], lanes: number): Promise<Storm> {
  const h = monitorEventLoopDelay({ resolution: 1 })
  const period = 1000 / TICK_HZ
  let next = performance.now() + period
  let latest = 0
  const tick = setInterval(() => {
    const now = performance.now()
    latest = Math.max(latest, now - next)
    next = Math.max(next + period, now)
  }, period)
  h.enable()
  const t0 = performance.now()
  let started = 0
  let refused = 0
  const lane = async (): Promise<void> => {
    while (started < STORM) if (!(await v.verify(tokens[started++ % tokens.length] as string)).ok) refused++
  }
  await Promise.all(Array.from({ length: lanes }, lane))
  const ms = performance.now() - t0
  // A timer held up by the storm records its delay when it finally runs: give it the chance.
  await new Promise((r) => setTimeout(r, 2 * period))
  h.disable()
  clearInterval(tick)
  if (refused > 0) throw new Error('a storm token did not verify')
  return { ms, p99Ms: h.percentile(99) / 1e6, maxMs: h.max / 1e6, latestTickMs: Math.max(0, latest) }
}

const m = machine()
console.log(`auth bench: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, load ${loadAverage().toFixed(2)}`)
console.log(`${SECONDS} s per algorithm after ${WARMUP_SECONDS} s of warm-up; storm of ${STORM} tokens at once, ${TICK_HZ} Hz timer\n`)

const rows: string[][] = [['algorithm', 'ops/s (1 at a time)', 'µs/op', 'process CPU µs/op', `ops/s (${IN_FLIGHT} in flight)`]]
const storms: string[][] = [['algorithm', 'maxInFlight', 'storm ms', 'loop p99 ms', 'loop max ms', 'latest tick ms']]
try {
  for (const alg of ALGS) {
    const { verifier, unlimited, tokens } = await setup(alg)
    await measure(verifier, tokens, WARMUP_SECONDS, 1)
    const one = await measure(verifier, tokens, SECONDS, 1)
    const many = await measure(verifier, tokens, SECONDS, IN_FLIGHT)
    for (const [label, v] of [['no cap', unlimited], ['default cap (16)', verifier]] as const) {
      const s = await storm(v, tokens, STORM)
      storms.push([alg, label, s.ms.toFixed(0), s.p99Ms.toFixed(1), s.maxMs.toFixed(1), s.latestTickMs.toFixed(1)])
    }
    verifier.close()
    unlimited.close()
    rows.push([
      alg,
      one.opsPerSec.toFixed(0),
      one.usPerOp.toFixed(1),
      one.cpuUsPerOp.toFixed(1),
      many.opsPerSec.toFixed(0),
    ])
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
console.log(formatTable(rows))
console.log(`\nStorm: ${STORM} valid tokens, handed to verify() at once`)
console.log(formatTable(storms))
console.log(`\nA 30 Hz tick has ${(1000 / TICK_HZ).toFixed(1)} ms; 'latest tick' is how far past its time the timer ran during the storm.`)
