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

function scenarios(): ScenarioSpec[] {
  const big = calibrateCellSize(TARGET_CPU_PLAYERS, TARGET_VISIBLE, SEED, config.tickHz)
  const small = calibrateCellSize(config.maxPlayersPerRoom, TARGET_VISIBLE, SEED, config.tickHz)
  return [
    { name: `${TARGET_CPU_PLAYERS} players, ack t-1`, players: TARGET_CPU_PLAYERS, ackLag: 1, cellSize: big },
    { name: `${TARGET_CPU_PLAYERS} players, ack t-3`, players: TARGET_CPU_PLAYERS, ackLag: 3, cellSize: big },
    { name: `${config.maxPlayersPerRoom} players, ack t-1`, players: config.maxPlayersPerRoom, ackLag: 1, cellSize: small },
  ]
}

const fixed = (digits: number) => (x: number) => x.toFixed(digits)
const f0 = fixed(0)
const f1 = fixed(1)
const f2 = fixed(2)

function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'MISS'
}

function bytesVerdict(r: ScenarioResult): string {
  return verdict(r.bytesPerChangedEntity.changedList <= TARGET_BYTES_PER_CHANGED)
}

function cpuVerdict(r: ScenarioResult): string {
  return r.players === TARGET_CPU_PLAYERS ? verdict(r.cpu.totalNsPerPlayer.mean < TARGET_NS_PER_PLAYER) : 'n/a'
}

function table(results: readonly ScenarioResult[]): string {
  const row = (label: string, cell: (r: ScenarioResult) => string): string[] => [label, ...results.map(cell)]
  const stats = (s: { mean: number; p50: number; p99: number }, f: (x: number) => string) => `${f(s.mean)} / ${f(s.p50)} / ${f(s.p99)}`
  return formatTable([
    row('', (r) => r.name),
    row('AOI cell size (world units)', (r) => String(r.cellSize)),
    row('visible entities per player (avg)', (r) => f1(r.visibleAvg)),
    row('full-state frames while measuring', (r) => String(r.fullFrames)),
    row('1. STATE bytes per player per tick', (r) => f1(r.bytesPerPlayerTick)),
    row('   header / removed / changed / created bytes', (r) => Object.values(r.sample.bytesPerFrame).map(f1).join(' / ')),
    row('   changed / created / removed entities', (r) => Object.values(r.sample.entitiesPerFrame).map(f1).join(' / ')),
    row('2. bytes per changed entity: changed list', (r) => f2(r.bytesPerChangedEntity.changedList)),
    row(`   target <= ${TARGET_BYTES_PER_CHANGED}`, bytesVerdict),
    row('   bytes per changed entity: whole frame', (r) => f2(r.bytesPerChangedEntity.wholeFrame)),
    row('3. snapshot us per tick (mean / p50 / p99)', (r) => stats(r.cpu.snapshotUsPerTick, f1)),
    row('   snapshot ns per player', (r) => stats(r.cpu.snapshotNsPerPlayer, f0)),
    row('   encode ns per player', (r) => stats(r.cpu.encodeNsPerPlayer, f0)),
    row('   snapshot+encode ns per player', (r) => stats(r.cpu.totalNsPerPlayer, f0)),
    row(`   target < ${TARGET_NS_PER_PLAYER} ns at ${TARGET_CPU_PLAYERS} players (mean)`, cpuVerdict),
    row('4. JSON full state: bytes / ns per encode', (r) => `${f0(r.json.bytes)} / ${f0(r.json.nsPerEncode)}`),
    row('   msgpackr delta objects: bytes / ns per encode', (r) => `${f0(r.msgpackr.bytes)} / ${f0(r.msgpackr.nsPerEncode)}`),
  ])
}

function main(): void {
  const host = machine()
  const loadBefore = loadAverage()
  console.log(`codec benchmark: reference game '${arena.name}', ${opts.tickHz} Hz, history ${opts.replicator.historyTicks} ticks, ack window ${opts.replicator.ackWindow}, max visible ${opts.replicator.maxVisible}`)
  console.log(`${host.cpuModel}, ${host.cores} cores, ${(host.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, Node ${host.node}, ${host.os}`)
  console.log(`${opts.warmupTicks} warm-up + ${opts.measuredTicks} measured ticks per scenario, ticks from ${opts.firstTick}; mean / p50 / p99 over measured ticks\n`)
  const results = scenarios().map((spec) => {
    const r = runScenario(spec, opts)
    console.log(`  ${spec.name}: done, ${r.sample.players} sampled clients verified on every frame`)
    return r
  })
  const loadAfter = loadAverage()
  console.log('\n' + table(results) + '\n')
  console.log(`load average (1 min): ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after, on ${host.cores} cores`)
  console.log('CPU times are single-threaded wall time of RoomReplicator.snapshot + encode for all players of the room, divided by players.')
  console.log('Changed-list bytes include the list\'s array header; JSON and msgpackr times exclude building the objects.')
  const file = writeResults(fileURLToPath(new URL('../../bench/results/', import.meta.url)), 'codec', {
    benchmark: 'codec',
    date: new Date().toISOString(),
    machine: { ...host, loadAverage1m: { before: loadBefore, after: loadAfter } },
    options: { ...opts, targetVisible: TARGET_VISIBLE },
    targets: {
      bytesPerChangedEntity: { max: TARGET_BYTES_PER_CHANGED, verdicts: Object.fromEntries(results.map((r) => [r.name, bytesVerdict(r)])) },
      nsPerPlayerTick: {
        max: TARGET_NS_PER_PLAYER,
        players: TARGET_CPU_PLAYERS,
        verdicts: Object.fromEntries(results.filter((r) => r.players === TARGET_CPU_PLAYERS).map((r) => [r.name, cpuVerdict(r)])),
      },
    },
    scenarios: results,
  })
  console.log(`results: ${file}`)
}

main()
