/**
 * The end-to-end benchmark report: Markdown with a table per scenario (every
 * server side by side), the targets met or missed and by how much, and SVG
 * charts. Pure: takes the measured result, returns text.
 */
import type { Machine } from './lib/report.js'
import { lineChart, type Series } from './lib/svg.js'
import type { WindowStats } from './load/loadrun.js'

export type ServerName = 'tickwire' | 'ws-json' | 'colyseus' | 'floor'

export interface CapacityRun {
  readonly server: ServerName
  readonly tickHz: number
  readonly steps: { readonly players: number; readonly window: WindowStats }[]
  /** Why the ramp ended. */
  readonly stop: string
  /** Most players of a step within the capacity rule (0: none). */
  readonly capacity: number
  /** The ramp ended without finding the server's limit (load generator saturated, or the last step passed): capacity is a lower bound. */
  readonly atLeast?: boolean
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
  /** taskset CPU lists of the servers and of the load generator ('unpinned' when not pinned). */
  readonly pinning?: { readonly server: string; readonly load: string }
  /** The floor peer's frame size: tickwire's mean STATE size in the same run. */
  floorFrameBytes?: number
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

/** Whether the load generator was itself near saturation in a window: its pinned CPUs over 85%, or (unpinned) the machine over 90%. */
function saturated(w: WindowStats, cores: number): boolean {
  if (w.invalid != null) return true
  if (Number.isFinite(w.loadCpuBusy)) return false
  return Number.isFinite(w.serverCores) && w.serverCores + w.botCores > 0.9 * cores
}

/** Client frames per STATE as the bots counted; NaN from an adapter that did not count its sends (0 while bots send inputs). */
function framesPerState(w: WindowStats): number {
  return w.clientFramesPerState > 0 ? w.clientFramesPerState : NaN
}

/** The capacity step of `server` at `players` and `hz`, if it ran. */
function step(r: BenchResult, server: ServerName, players: number, hz = 30): WindowStats | undefined {
  return r.capacity.find((c) => c.server === server && c.tickHz === hz)?.steps.find((s) => s.players === players)?.window
}

/** tickwire's CPU per player-tick over the floor's at the same step; NaN unless both windows are valid. */
function floorRatio(r: BenchResult, server: ServerName, players: number, hz = 30): number {
  const a = step(r, server, players, hz)
  const b = step(r, 'floor', players, hz)
  if (!a || !b || a.invalid != null || b.invalid != null) return NaN
  return a.cpuUsPerPlayerTick / b.cpuUsPerPlayerTick
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

/** The targets, judged from what was measured. */
export function targets(r: BenchResult): Target[] {
  const out: Target[] = []
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN)
  const judge = (x: number, limit: number) => (Number.isFinite(x) ? (x <= limit ? 'met' : `missed by ${f(x / limit, 2)}x`) : 'not measured')
  const atLeastJudge = (x: number, goal: number) => (Number.isFinite(x) ? (x >= goal ? 'met' : `missed: ${f(x / goal, 2)} of the target`) : 'not measured')
  for (const players of [1000, 2000]) {
    const x = floorRatio(r, 'tickwire', players)
    const a = step(r, 'tickwire', players)
    const b = step(r, 'floor', players)
    out.push({
      what: `tickwire CPU per player-tick / the floor's, ${int(players)} players at 30 Hz (capacity steps)`,
      goal: '<= 1.3',
      measured: a && b ? `${f(a.cpuUsPerPlayerTick, 2)} / ${f(b.cpuUsPerPlayerTick, 2)} us = ${f(x, 2)}${a.invalid != null || b.invalid != null ? ' (a window is invalid)' : ''}` : 'n/a',
      verdict: judge(x, 1.3),
    })
  }
  const t1k = step(r, 'tickwire', 1000)
  out.push({
    what: 'tickwire user-space CPU per player-tick, 1,000 players at 30 Hz',
    goal: '<= 3 us',
    measured: t1k ? `${f(t1k.cpuUserUsPerPlayerTick, 2)} us (+ ${f(t1k.cpuSysUsPerPlayerTick, 2)} us system)` : 'n/a',
    verdict: judge(t1k?.cpuUserUsPerPlayerTick ?? NaN, 3),
  })
  const perState = Number.isFinite(t1k?.serverMsgsPerState ?? NaN) ? (t1k?.serverMsgsPerState ?? NaN) : (t1k?.clientFramesPerState ?? NaN)
  out.push({ what: 'client messages per STATE sent, 1,000 players (server counters)', goal: '<= 0.5', measured: f(perState, 2), verdict: judge(perState, 0.5) })
  const cap = (s: ServerName) => r.capacity.find((c) => c.server === s && c.tickHz === 30)
  const tw = cap('tickwire')
  for (const [peer, goal] of [
    ['ws-json', 3],
    ['colyseus', 5],
  ] as const) {
    const p = cap(peer)
    const x = tw && p && p.capacity > 0 ? tw.capacity / p.capacity : NaN
    out.push({
      what: `capacity per server core at 30 Hz vs ${peer} (same method)`,
      goal: `>= ${goal}x`,
      measured: tw && p ? `${tw.atLeast ? '>= ' : ''}${int(tw.capacity)} vs ${p.atLeast ? '>= ' : ''}${int(p.capacity)} players${Number.isFinite(x) ? ` = ${f(x, 2)}x` : ` (${peer}: no valid step)`}${tw.atLeast ? ' (tickwire\'s limit not reached: a lower bound)' : ''}` : 'n/a',
      verdict: p?.atLeast && Number.isFinite(x)
        ? `not decided (${peer}'s limit not found: the load generator saturated first)`
        : tw?.atLeast && Number.isFinite(x) && x < goal
          ? 'not decided (tickwire\'s limit not reached)'
          : atLeastJudge(x, goal),
    })
  }
  // Latency under overload: at ws-json's steps past its capacity, tickwire's p99 against ws-json's.
  const wj = cap('ws-json')
  const over = wj?.steps.filter((s) => s.players > wj.capacity) ?? []
  const pairs = over.map((s) => ({ players: s.players, peer: s.window.latencyMs.p99, tw: step(r, 'tickwire', s.players)?.latencyMs.p99 ?? NaN })).filter((x) => Number.isFinite(x.tw) && Number.isFinite(x.peer))
  out.push({
    what: 'latency p99 when ws-json is overloaded, at the same players',
    goal: '<= ws-json',
    measured: pairs.length ? pairs.map((x) => `${int(x.players)}: ${f(x.tw, 0)} vs ${f(x.peer, 0)} ms`).join('; ') : 'n/a',
    verdict: pairs.length ? (pairs.every((x) => x.tw <= x.peer) ? 'met' : 'missed') : 'not measured',
  })
  const fx = r.fixed.tickwire
  for (const [peer, limit, label] of [
    ['ws-json', 1 / 5, '1/5'],
    ['colyseus', 1 / 3, '1/3'],
  ] as const) {
    const p = r.fixed[peer]
    const x = ratio(fx?.cpuUsPerPlayerTick ?? NaN, p?.cpuUsPerPlayerTick ?? NaN)
    out.push({
      what: `server CPU per player-tick vs ${peer} (fixed scenario)`,
      goal: `<= ${label}`,
      measured: `${f(fx?.cpuUsPerPlayerTick, 2)} vs ${f(p?.cpuUsPerPlayerTick, 2)} us = ${f(x, 3)}`,
      verdict: fx?.invalid != null || p?.invalid != null ? `not decided (an invalid window: ${fx?.invalid != null ? 'tickwire' : peer}'s)` : judge(x, limit),
    })
  }
  const c = r.fixed.colyseus
  const b = ratio(fx?.bytesPerPlayerSec ?? NaN, c?.bytesPerPlayerSec ?? NaN)
  out.push({ what: 'bytes per player vs colyseus (fixed scenario)', goal: '<= 1/2', measured: `${int(fx?.bytesPerPlayerSec)} vs ${int(c?.bytesPerPlayerSec)} B/s = ${f(b, 3)}`, verdict: judge(b, 1 / 2) })
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
    ['pinning (taskset)', r.pinning ? `servers on CPU ${r.pinning.server}, load generator on CPU ${r.pinning.load}` : 'unpinned'],
    ['floor frame size', r.floorFrameBytes !== undefined ? `${r.floorFrameBytes} B (tickwire's mean STATE in this run)` : 'n/a'],
    ['command', `\`${r.command}\``],
  ]))
  L.push('')
  L.push(
    'Every server runs the reference arena (tickwire\'s own simulation code, so the rules are identical) ' +
      'in rooms of up to 64 players, on this machine, one at a time; the floor (bench/peers/floor) is bare uWS ' +
      'sending each socket one corked frame of tickwire\'s mean size per tick, with no game: what any server pays. ' +
      (r.pinning && r.pinning.server !== 'unpinned'
        ? `Each server is pinned to CPU ${r.pinning.server} and the load generator (\`tickwire-load\`, one bot process per CPU, over 8 source addresses) to CPU ${r.pinning.load}, so they never share a core; `
        : 'Servers and the load generator share the cores (unpinned); ') +
      'bots send a stick input 10 times a second and measure the time until a state reflects it, ack as the SDK does ' +
      '(in their inputs, plus a standalone ACK every third of the ack window), and 1 bot in 20 decodes and checks everything ' +
      'it receives (none for the floor, whose frames are padding). Server CPU is read from /proc for the server\'s whole ' +
      'process tree, user and system apart; tick times come from each server\'s own histogram.',
  )
  if (r.quick) L.push('', '**Quick run** (`--quick`): a smoke test with a few dozen bots; the figures mean nothing.')
  L.push('', '## Targets', '')
  L.push(table(['target', 'goal', 'measured', 'verdict'], targets(r).map((x) => [x.what, x.goal, x.measured, x.verdict])))

  if (r.capacity.length) {
    const hz0 = r.capacity[0]?.tickHz ?? 30
    L.push(
      '',
      `## (i) Capacity: players ramp until tick p99 >= 50% of the budget, a delta is skipped, latency p99 >= 2 tick intervals + 10 ms (${f(2000 / hz0 + 10, 0)} ms at ${hz0} Hz), or the load generator's CPUs pass 85%`,
      '',
    )
    L.push(table(['server', 'tick rate', 'capacity (players)', 'why the ramp ended'], r.capacity.map((c) => [c.server, `${c.tickHz} Hz`, `${c.atLeast ? '>= ' : ''}${int(c.capacity)}`, c.stop])))
    for (const hz of [...new Set(r.capacity.map((c) => c.tickHz))]) {
      const runs = r.capacity.filter((c) => c.tickHz === hz)
      L.push('', `### ${hz} Hz (budget ${f(1000 / hz, 1)} ms)`, '')
      const rows: string[][] = []
      for (const c of runs) {
        for (const st of c.steps) {
          const w = st.window
          const x = c.server === 'floor' ? NaN : floorRatio(r, c.server, st.players, hz)
          rows.push([
            c.server,
            int(w.players),
            `${f(w.latencyMs.p50)} / ${f(w.latencyMs.p99)}`,
            `${f(w.tickP50Ms, 2)} / ${f(w.tickP99Ms, 2)}`,
            `${f(w.cpuUsPerPlayerTick, 2)} (${f(w.cpuUserUsPerPlayerTick, 2)} + ${f(w.cpuSysUsPerPlayerTick, 2)})`,
            c.server === 'floor' ? '1' : f(x, 2),
            int(w.bytesPerPlayerSec),
            `${f(framesPerState(w), 2)} / ${f(w.serverMsgsPerState, 2)}`,
            f(w.botUsPerFrame, 2),
            `${f(100 * w.loadCpuBusy, 0)}% / ${f(100 * (w.serverCpuOthers ?? NaN), 0)}%${w.invalid != null ? ' **invalid**' : saturated(w, m.cores) ? ' (cores full)' : ''}`,
            `${w.dropped}${w.errors ? `, ${w.errors} errors` : ''}${w.skippedDeltas > 0 ? `, ${int(w.skippedDeltas)} skipped` : ''}`,
          ])
        }
      }
      L.push(
        table(
          ['server', 'players', 'latency ms p50 / p99', 'tick ms p50 / p99', 'CPU us / player-tick (user + sys)', 'x floor', 'B/s per player', 'client frames per STATE: bots / server', 'bot CPU us / frame', 'load CPUs busy / others on server CPUs', 'dropped'],
          rows,
        ),
      )
      const lat: Series[] = []
      const cpu: Series[] = []
      for (const c of runs) {
        const valid = c.steps.filter((st) => st.window.invalid == null)
        lat.push({ name: `${c.server} p50`, points: valid.map((st) => [st.players, st.window.latencyMs.p50]) })
        lat.push({ name: `${c.server} p99`, points: valid.map((st) => [st.players, st.window.latencyMs.p99]) })
        cpu.push({ name: c.server, points: valid.map((st) => [st.players, st.window.cpuUsPerPlayerTick]) })
      }
      const latFile = `${base}-capacity-${hz}hz-latency.svg`
      const cpuFile = `${base}-capacity-${hz}hz-cpu.svg`
      svgs[latFile] = lineChart({ title: `Input-to-state latency at ${hz} Hz (valid windows)`, xLabel: 'players', yLabel: 'latency (ms)', series: lat, logY: true, hline: { y: 2000 / hz + 10, label: `${f(2000 / hz + 10, 0)} ms` } })
      svgs[cpuFile] = lineChart({ title: `Server CPU per player-tick at ${hz} Hz (valid windows)`, xLabel: 'players', yLabel: 'CPU (us per player-tick)', series: cpu, logY: true })
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
        row('server CPU per player-tick (us): user + system', (x) => `${f(x.cpuUsPerPlayerTick, 2)}: ${f(x.cpuUserUsPerPlayerTick, 2)} + ${f(x.cpuSysUsPerPlayerTick, 2)}`),
        row('server CPU (cores)', (x) => f(x.serverCores, 2)),
        row('messages per player per s', (x) => f(x.msgsPerPlayerSec, 1)),
        row('bytes per player per s', (x) => int(x.bytesPerPlayerSec)),
        row('client frames per STATE: bots / server', (x) => `${f(framesPerState(x), 2)} / ${f(x.serverMsgsPerState, 2)}`),
        row('load generator: cores, us per frame, its CPUs busy', (x) => `${f(x.botCores, 2)}, ${f(x.botUsPerFrame, 2)}, ${f(100 * x.loadCpuBusy, 0)}%${x.invalid != null ? ' **invalid**' : saturated(x, m.cores) ? ' (cores full)' : ''}`),
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
    r.pinning && r.pinning.server !== 'unpinned'
      ? `- Servers and load generator never share a core. A window where the load generator's CPUs were over 85% busy, or where other processes used over 10% of the server's CPUs, is **invalid**: it did not measure the server alone; it ends the ramp, and the capacity found is then a lower bound (">="). ${saturatedAnywhere ? 'Some windows here are invalid.' : 'No window here is.'}`
      : `- The load generator shares the ${m.cores} cores with the server. ${saturatedAnywhere ? 'Rows marked "(cores full)" had server plus load generator above 90% of the machine: there the load generator was part of the bottleneck, and latency includes its own queueing.' : 'No window had the machine above 90% busy.'}`,
    '- x floor: the server\'s CPU per player-tick over the floor\'s at the same step of the same run. The floor sends the same bytes with the same corked uWS send and no game, so the ratio is what the game server adds on top of the kernel\'s write.',
    '- Client frames per STATE: what the bots sent (inputs, acks, messages) per state message they got, and the server\'s own count (`*_received_messages_total` over `*_state_frames_sent_total`; n/a for a server without those counters).',
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
