/**
 * Delta codec benchmark for the reference game (src/games/arena.ts).
 *
 * Run: `npm run bench:codec` (builds, then runs dist/bench/codec.js).
 *
 * A full room ticks as on the server: every player steers (one input per
 * tick), the room steps, the replicator snapshots the tick and encodes one
 * STATE frame per player. Clients ack a fixed number of ticks behind, so
 * frames are deltas against tick - 1 (or tick - 3). The AOI cell size is
 * calibrated so that a player sees about 30 (moving) entities; the actual
 * average is printed. Ticks start one hour into the server's life (tick
 * numbers above 65535 take 5 bytes). Replicator options are the defaults
 * of src/config.ts. After a warm-up, it measures per scenario:
 *
 *  1. bytes per player per tick: mean STATE frame size over all players;
 *  2. bytes per changed entity: changed-list bytes / changed entities, and
 *     whole frame / changed entities (from the sampled players' frames);
 *  3. CPU per player per tick: wall time of `snapshot` plus `encode` for
 *     every player of the room, divided by the players (snapshot also alone);
 *  4. beside them, per sampled player and tick: JSON.stringify of its full
 *     visible state as `{id, kind, x, y, score}` objects, and msgpackr `pack`
 *     of its frame's delta as plain objects: size and time per encode.
 *
 * Correctness: a sample of players (about 100) decodes every frame into a
 * client EntityTable, which must then hold exactly the entities of the
 * player's area of interest, with the server's quantized values
 * (RoomReplicator.value/exists); any mismatch aborts the run.
 *
 * Output: a table on stdout and bench/results/codec-<YYYY-MM-DD>-<hostname>.json.
 */
import { fileURLToPath } from 'node:url'
import { defaultConfig } from '../src/config.js'
import { arena } from '../src/games/arena.js'
import { formatTable, loadAverage, machine, writeResults } from './lib/report.js'
import { calibrateCellSize } from './lib/room.js'
import { runScenario, type RunOptions, type ScenarioResult, type ScenarioSpec } from './lib/scenario.js'
import type { Summary } from './lib/stats.js'

const TARGET_VISIBLE = 30
const TARGET_BYTES_PER_CHANGED = 6
const TARGET_NS_PER_PLAYER = 1000
const TARGET_CPU_PLAYERS = 1000
const SEED = 1

const config = defaultConfig()
const opts: RunOptions = {
  replicator: { historyTicks: config.historyTicks, ackWindow: config.ackWindow, maxVisible: config.maxVisible },
  tickHz: config.tickHz,
  firstTick: 3600 * config.tickHz + 1,
  warmupTicks: 300,
  measuredTicks: 900,
  samplePlayers: 100,
  seed: SEED,
}

/**
 * The room of the CPU target with clients acking 1 and 3 ticks behind, and a
 * room of the default size (src/config.ts), whose entity ids are smaller.
 */
function scenarios(): ScenarioSpec[] {
  const big = calibrateCellSize(TARGET_CPU_PLAYERS, TARGET_VISIBLE, SEED, config.tickHz)
  const small = calibrateCellSize(config.maxPlayersPerRoom, TARGET_VISIBLE, SEED, config.tickHz)
  return [
    { name: `${TARGET_CPU_PLAYERS} players, base t-1`, players: TARGET_CPU_PLAYERS, ackLag: 1, cellSize: big },
    { name: `${TARGET_CPU_PLAYERS} players, base t-3`, players: TARGET_CPU_PLAYERS, ackLag: 3, cellSize: big },
    { name: `${config.maxPlayersPerRoom} players, base t-1`, players: config.maxPlayersPerRoom, ackLag: 1, cellSize: small },
  ]
}

const fixed = (digits: number) => (x: number) => x.toFixed(digits)
const f0 = fixed(0)
const f1 = fixed(1)
const f2 = fixed(2)
const stats = (s: Summary, f: (x: number) => string): string => `${f(s.mean)} / ${f(s.p50)} / ${f(s.p99)}`

interface Verdict {
  readonly scenario: string
  readonly value: number
  readonly verdict: 'PASS' | 'MISS'
}

/** Each scenario's average bytes per changed entity (changed list) against the target. */
function bytesVerdicts(results: readonly ScenarioResult[]): Verdict[] {
  return results.map((r) => {
    const value = r.bytesPerChangedEntity.changedList
    return { scenario: r.name, value, verdict: value <= TARGET_BYTES_PER_CHANGED ? 'PASS' : 'MISS' }
  })
}

/** Mean snapshot+encode time per player of the scenarios at the target's room size, against the target. */
function cpuVerdicts(results: readonly ScenarioResult[]): Verdict[] {
  return results
    .filter((r) => r.players === TARGET_CPU_PLAYERS)
    .map((r) => {
      const value = r.cpu.totalNsPerPlayer.mean
      return { scenario: r.name, value, verdict: value < TARGET_NS_PER_PLAYER ? 'PASS' : 'MISS' }
    })
}

function table(results: readonly ScenarioResult[]): string {
  const row = (label: string, cell: (r: ScenarioResult) => string): string[] => [label, ...results.map(cell)]
  return formatTable([
    row('', (r) => r.name),
    row('AOI cell size (world units)', (r) => String(r.cellSize)),
    row('visible entities per player (avg)', (r) => f1(r.visibleAvg)),
    row('full-state frames while measuring', (r) => String(r.fullFrames)),
    row('1. STATE bytes per player per tick', (r) => f1(r.bytesPerPlayerTick)),
    row('   header / removed / changed / created bytes', (r) => Object.values(r.sample.bytesPerFrame).map(f1).join(' / ')),
    row('   changed / created / removed entities', (r) => Object.values(r.sample.entitiesPerFrame).map(f1).join(' / ')),
    row('2. bytes per changed entity: changed list', (r) => f2(r.bytesPerChangedEntity.changedList)),
    row('   bytes per changed entity: whole frame', (r) => f2(r.bytesPerChangedEntity.wholeFrame)),
    row('3. snapshot us per tick (mean / p50 / p99)', (r) => stats(r.cpu.snapshotUsPerTick, f1)),
    row('   snapshot ns per player', (r) => stats(r.cpu.snapshotNsPerPlayer, f0)),
    row('   encode ns per player', (r) => stats(r.cpu.encodeNsPerPlayer, f0)),
    row('   snapshot+encode ns per player', (r) => stats(r.cpu.totalNsPerPlayer, f0)),
    row('4. JSON full state: bytes / ns per encode', (r) => `${f0(r.json.bytes)} / ${f0(r.json.nsPerEncode)}`),
    row('   msgpackr delta objects: bytes / ns per encode', (r) => `${f0(r.msgpackr.bytes)} / ${f0(r.msgpackr.nsPerEncode)}`),
  ])
}

function printTarget(title: string, verdicts: readonly Verdict[], format: (v: number) => string): void {
  console.log(title)
  for (const v of verdicts) console.log(`  ${v.verdict}  ${format(v.value).padStart(8)}  ${v.scenario}`)
}

function runAll(): ScenarioResult[] {
  return scenarios().map((spec) => {
    const r = runScenario(spec, opts)
    console.log(`  ${spec.name}: done, ${r.sample.players} sampled clients checked on every frame`)
    return r
  })
}

function main(): void {
  const host = machine()
  const loadBefore = loadAverage()
  const rep = opts.replicator
  console.log(
    `codec benchmark: reference game '${arena.name}' at ${opts.tickHz} Hz;` +
      ` replicator: history ${rep.historyTicks} ticks, ack window ${rep.ackWindow}, max visible ${rep.maxVisible}`,
  )
  console.log(`${host.cpuModel}, ${host.cores} cores, ${(host.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, Node ${host.node}, ${host.os}`)
  console.log(
    `${opts.warmupTicks} warm-up + ${opts.measuredTicks} measured ticks per scenario from tick ${opts.firstTick};` +
      ' timings are mean / p50 / p99 over measured ticks\n',
  )
  const results = runAll()
  const loadAfter = loadAverage()
  console.log('\n' + table(results) + '\n')
  console.log('Times are single-threaded wall time; snapshot+encode covers all players of the room and is divided by players.')
  console.log("Changed-list bytes include the list's array header. JSON and msgpackr times exclude building the objects.")
  console.log(`Load average (1 min): ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after, on ${host.cores} cores.\n`)
  const bytes = bytesVerdicts(results)
  const cpu = cpuVerdicts(results)
  printTarget(`Target: <= ${TARGET_BYTES_PER_CHANGED} bytes per changed entity on average (changed list)`, bytes, f2)
  const cpuTitle = `Target: < ${TARGET_NS_PER_PLAYER / 1000} us snapshot+encode per player per tick at ${TARGET_CPU_PLAYERS} players`
  printTarget(`${cpuTitle} (mean, ns)`, cpu, f0)
  const file = writeResults(fileURLToPath(new URL('../../bench/results/', import.meta.url)), 'codec', {
    benchmark: 'codec',
    date: new Date().toISOString(),
    machine: { ...host, loadAverage1m: { before: loadBefore, after: loadAfter } },
    options: { ...opts, targetVisible: TARGET_VISIBLE },
    targets: {
      bytesPerChangedEntity: { max: TARGET_BYTES_PER_CHANGED, results: bytes },
      nsPerPlayerTick: { below: TARGET_NS_PER_PLAYER, players: TARGET_CPU_PLAYERS, statistic: 'mean', results: cpu },
    },
    scenarios: results,
  })
  console.log(`\nresults: ${file}`)
}

main()
