/**
 * The end-to-end benchmark report: Markdown with a table per scenario (every
 * server side by side), the targets met or missed and by how much, and SVG
 * charts. Pure: takes the measured result, returns text.
 */
import type { Machine } from './lib/report.js'
import { lineChart, type Series } from './lib/svg.js'
import type { WindowStats } from './load/loadrun.js'

export type ServerName = 'tickwire' | 'ws-json' | 'colyseus'

export interface CapacityRun {
  readonly server: ServerName
  readonly tickHz: number
  readonly steps: { readonly players: number; readonly window: WindowStats }[]
  /** Why the ramp ended. */
  readonly stop: string
  /** Most players of a step within both limits (0: none). */
  readonly capacity: number
}

export interface SlowRun {
  readonly before: WindowStats
  readonly during: WindowStats
  readonly after: WindowStats
}

export interface BenchResult {
  readonly date: string
  readonly machine: Machine
  readonly loadAverageBefore: number
  loadAverageAfter?: number
  readonly command: string
  readonly quick: boolean
  readonly servers: ServerName[]
  readonly capacity: CapacityRun[]
  readonly fixed: Partial<Record<ServerName, WindowStats>>
  readonly slow: Partial<Record<ServerName, SlowRun>>
  profiles: { file: string; top: { fn: string; ms: number; pct: number }[] }[]
  readonly notes: string[]
  /** Written after looking at a run (added to the JSON by hand, then `node dist/bench/run.js --render FILE.json`). */
  analysis?: string[]
}

const f = (n: number | undefined, d = 1) => (n !== undefined && Number.isFinite(n) ? n.toFixed(d) : 'n/a')
const int = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a')

/** Whether the load generator, sharing the machine, was itself near saturation in a window. */
function saturated(w: WindowStats, cores: number): boolean {
  return Number.isFinite(w.serverCores) && w.serverCores + w.botCores > 0.9 * cores
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

interface Target {
  readonly what: string
  readonly goal: string
  readonly measured: string
  readonly verdict: string
}

/** The issue's targets, judged from what was measured. */
export function targets(r: BenchResult): Target[] {
  const out: Target[] = []
  const tw = r.fixed.tickwire
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN)
  const judge = (x: number, limit: number) => (Number.isFinite(x) ? (x <= limit ? 'met' : `missed by ${f(x / limit, 2)}x`) : 'not measured')
  for (const [peer, limit, label] of [
    ['ws-json', 1 / 5, '1/5'],
    ['colyseus', 1 / 3, '1/3'],
  ] as const) {
    const p = r.fixed[peer]
    const x = ratio(tw?.cpuUsPerPlayerTick ?? NaN, p?.cpuUsPerPlayerTick ?? NaN)
    out.push({
      what: `server CPU per player-tick vs ${peer} (fixed scenario)`,
      goal: `<= ${label}`,
      measured: `${f(tw?.cpuUsPerPlayerTick, 2)} vs ${f(p?.cpuUsPerPlayerTick, 2)} us = ${f(x, 3)}`,
      verdict: judge(x, limit),
    })
  }
  const c = r.fixed.colyseus
  const b = ratio(tw?.bytesPerPlayerSec ?? NaN, c?.bytesPerPlayerSec ?? NaN)
  out.push({ what: 'bytes per player vs colyseus (fixed scenario)', goal: '<= 1/2', measured: `${int(tw?.bytesPerPlayerSec)} vs ${int(c?.bytesPerPlayerSec)} B/s = ${f(b, 3)}`, verdict: judge(b, 1 / 2) })
  const cap = r.capacity.find((x) => x.server === 'tickwire' && x.tickHz === 20)
  const best = cap?.capacity ?? NaN
  out.push({
    what: 'players held at 20 Hz, tick p99 < half the budget (capacity, load generator on the same 2 cores)',
    goal: '>= 10,000',
    measured: cap ? `${int(best)} (${cap.stop})` : 'n/a',
    verdict: cap ? (best >= 10000 ? 'met' : `missed: ${f(best / 10000, 2)} of the target`) : 'not measured',
  })
  return out
}

/** Renders the report; `base` names the chart files (`<base>-*.svg`, written beside the .md). */
export function renderReport(r: BenchResult, base: string): { md: string; svgs: Record<string, string> } {
  const m = r.machine
  const svgs: Record<string, string> = {}
  const L: string[] = []
  L.push(`# tickwire end-to-end benchmark, ${r.date.slice(0, 10)}`, '')
  L.push(table(['machine', ''], [
    ['CPU', `${m.cpuModel}, ${m.cores} cores`],
    ['memory', `${f(m.totalMemoryBytes / 2 ** 30, 1)} GiB`],
    ['Node', m.node],
    ['OS', m.os],
    ['load average (1 min) before / after', `${f(r.loadAverageBefore, 2)} / ${f(r.loadAverageAfter, 2)}`],
    ['command', `\`${r.command}\``],
  ]))
  L.push('')
  L.push(
    'Every server runs the reference arena (tickwire\'s own simulation code, so the rules are identical) ' +
      'in rooms of up to 64 players, on this machine, one at a time. The load generator (`tickwire-load`, 2 bot ' +
      'processes over 8 source addresses) runs on the same cores: bots send a stick input 10 times a second and ' +
      'measure the time until a state reflects it; 1 bot in 20 decodes and checks everything it receives. ' +
      'Server CPU is read from /proc for the server\'s whole process tree (tickwire: supervisor and its workers, ' +
      'one per core); tick times come from each server\'s own histogram.',
  )
  if (r.quick) L.push('', '**Quick run** (`--quick`): a smoke test with a few dozen bots; the figures mean nothing.')
  L.push('', '## Targets', '')
  L.push(table(['target', 'goal', 'measured', 'verdict'], targets(r).map((x) => [x.what, x.goal, x.measured, x.verdict])))

  if (r.capacity.length) {
    L.push('', '## (i) Capacity: players ramp until tick p99 > 50% of the budget or latency p99 > 100 ms', '')
    L.push(table(['server', 'tick rate', 'capacity (players)', 'why the ramp ended'], r.capacity.map((c) => [c.server, `${c.tickHz} Hz`, int(c.capacity), c.stop])))
    for (const hz of [...new Set(r.capacity.map((c) => c.tickHz))]) {
      const runs = r.capacity.filter((c) => c.tickHz === hz)
      L.push('', `### ${hz} Hz (budget ${f(1000 / hz, 1)} ms)`, '')
      const rows: string[][] = []
      for (const c of runs) {
        for (const s of c.steps) {
          const w = s.window
          rows.push([
            c.server,
            int(w.players),
            `${f(w.latencyMs.p50)} / ${f(w.latencyMs.p95)} / ${f(w.latencyMs.p99)}`,
            `${f(w.tickP50Ms, 2)} / ${f(w.tickP99Ms, 2)}`,
            f(w.cpuUsPerPlayerTick, 2),
            int(w.bytesPerPlayerSec),
            `${f(w.serverCores, 2)} + ${f(w.botCores, 2)}${saturated(w, m.cores) ? ' (cores full)' : ''}`,
            `${w.dropped}${w.errors ? `, ${w.errors} errors` : ''}`,
          ])
        }
      }
      L.push(table(['server', 'players', 'latency ms p50 / p95 / p99', 'tick ms p50 / p99', 'CPU us / player-tick', 'B/s per player', 'cores: server + load gen', 'dropped'], rows))
      const lat: Series[] = []
      const cpu: Series[] = []
      for (const c of runs) {
        lat.push({ name: `${c.server} p50`, points: c.steps.map((s) => [s.players, s.window.latencyMs.p50]) })
        lat.push({ name: `${c.server} p99`, points: c.steps.map((s) => [s.players, s.window.latencyMs.p99]) })
        cpu.push({ name: c.server, points: c.steps.map((s) => [s.players, s.window.cpuUsPerPlayerTick]) })
      }
      const latFile = `${base}-capacity-${hz}hz-latency.svg`
      const cpuFile = `${base}-capacity-${hz}hz-cpu.svg`
      svgs[latFile] = lineChart({ title: `Input-to-state latency at ${hz} Hz`, xLabel: 'players', yLabel: 'latency (ms)', series: lat, logY: true, hline: { y: 100, label: '100 ms' } })
      svgs[cpuFile] = lineChart({ title: `Server CPU per player-tick at ${hz} Hz`, xLabel: 'players', yLabel: 'CPU (us per player-tick)', series: cpu, logY: true })
      L.push('', `![latency at ${hz} Hz](${latFile})`, '', `![CPU per player-tick at ${hz} Hz](${cpuFile})`)
    }
  }

  const servers = r.servers
  const fx = servers.filter((s) => r.fixed[s])
  if (fx.length) {
    const w = (s: ServerName) => r.fixed[s] as WindowStats
    L.push('', `## (ii) Fixed load: ${int(w(fx[0] as ServerName).players)} players at 30 Hz, ${f(w(fx[0] as ServerName).seconds, 0)} s`, '')
    const row = (label: string, g: (x: WindowStats) => string) => [label, ...fx.map((s) => g(w(s)))]
    L.push(
      table(['', ...fx], [
        row('players connected', (x) => int(x.players)),
        row('latency p50 / p95 / p99 / max (ms)', (x) => `${f(x.latencyMs.p50)} / ${f(x.latencyMs.p95)} / ${f(x.latencyMs.p99)} / ${f(x.latencyMs.max)}`),
        row('inputs unanswered after 1 s', (x) => int(x.staleInputs)),
        row('tick p50 / p99 (ms)', (x) => `${f(x.tickP50Ms, 2)} / ${f(x.tickP99Ms, 2)}`),
        row('tick overruns', (x) => int(x.overruns)),
        row('skipped deltas', (x) => int(x.skippedDeltas)),
        row('server CPU per player-tick (us)', (x) => f(x.cpuUsPerPlayerTick, 2)),
        row('server CPU (cores)', (x) => f(x.serverCores, 2)),
        row('messages per player per s', (x) => f(x.msgsPerPlayerSec, 1)),
        row('bytes per player per s', (x) => int(x.bytesPerPlayerSec)),
        row('load generator (cores)', (x) => `${f(x.botCores, 2)}${saturated(x, m.cores) ? ' (cores full)' : ''}`),
        row('dropped / errors', (x) => `${x.dropped} / ${x.errors}`),
      ]),
    )
  }

  const sl = servers.filter((s) => r.slow[s])
  if (sl.length) {
    L.push('', '## (iii) 10% of players stop reading mid-run; what the other 90% saw', '')
    const rows: string[][] = []
    for (const s of sl) {
      const x = r.slow[s] as SlowRun
      for (const [phase, w] of [
        ['before', x.before],
        ['10% not reading', x.during],
        ['after', x.after],
      ] as const) {
        rows.push([
          s,
          phase,
          int(w.players),
          `${f(w.latencyUnpausedMs.p50)} / ${f(w.latencyUnpausedMs.p99)} / ${f(w.latencyUnpausedMs.max)}`,
          int(w.unpausedBytesPerPlayerSec),
          `${f(w.tickP50Ms, 2)} / ${f(w.tickP99Ms, 2)}`,
          `${w.unpausedDropped}`,
          `${w.dropped - w.unpausedDropped} ${JSON.stringify(w.dropCodes)}`,
          int(w.skippedDeltas),
        ])
      }
    }
    L.push(table(['server', 'phase', 'players', 'others: latency p50 / p99 / max ms', 'others: B/s each', 'tick ms p50 / p99', 'others dropped', 'slow ones dropped (codes)', 'skipped deltas'], rows))
  }

  const saturatedAnywhere = [...r.capacity.flatMap((c) => c.steps.map((s) => s.window)), ...Object.values(r.fixed)].some((w) => w && saturated(w, m.cores))
  L.push('', '## Reading these figures', '')
  L.push(
    '- Tick times: tickwire and ws-json time one whole tick of the process (all rooms); Colyseus runs every room on its own timers, so its figure is the game work of all rooms summed over each tick period (`peer_period_busy_seconds`). "n/a": the server has no such counter.',
    '- Colyseus bots decode every patch (its SDK keeps the state in sync); tickwire and ws-json bots check 1 in 20 and read only headers otherwise. So Colyseus runs leave its server less of the shared cores.',
    `- The load generator shares the ${m.cores} cores with the server. ${saturatedAnywhere ? 'Rows marked "(cores full)" had server plus load generator above 90% of the machine: there the load generator was part of the bottleneck, and latency includes its own queueing.' : 'No window had the machine above 90% busy.'}`,
    '- Latency is measured by the bots from sending an input to receiving the first state that reflects it: at least the wait for the next tick plus a loopback round trip. An input nothing reflects within 1 s counts as 1 s (a lower bound).',
    '- CPU per player-tick = server CPU seconds (user + system, all its processes) / state messages the bots received in the window (the player-ticks actually served: an overloaded server that runs fewer ticks, or skips frames, is not credited for ticks it did not serve). Kernel time for loopback delivery, which on one machine the sender pays for the receiver too, is included for every server alike.',
  )
  if (r.profiles.length) {
    L.push('', '## Where tickwire spends its CPU (`node --cpu-prof` of each process, in a separate 15 s run of the fixed scenario; self time)', '')
    for (const p of r.profiles) {
      L.push(`\`${p.file}\`:`, '')
      L.push(table(['function', 'ms', '% of the run'], p.top.map((t) => [`\`${t.fn}\``, f(t.ms, 0), f(t.pct, 1)])))
      L.push('')
    }
  }
  if (r.analysis?.length) L.push('', '## What limits tickwire here', '', ...r.analysis.map((n) => `- ${n}`))
  if (r.notes.length) L.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`))
  return { md: L.join('\n') + '\n', svgs }
}
