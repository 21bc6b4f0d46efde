/**
 * Worker liveness, with the real supervisor and workers as child processes: a
 * worker whose event loop stops (here SIGSTOP, as a game's endless loop or a
 * decode bomb would) is noticed by its missing heartbeats, logged, counted,
 * killed and replaced; the other worker's players notice nothing. A stopping
 * supervisor leaves a slow drain to the drain timeout.
 */
import t from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { alive, startCluster } from './helpers/cluster.js'
import { parseSamples, sleep, waitFor } from './helpers/server.js'

const scrape = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return parseSamples(await res.text())
}

/** Sends SIGKILL, ignoring a process that is already gone. */
const kill = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(pid, signal)
  } catch {}
}

t.test('a frozen worker (SIGSTOP) is detected after --worker-stall-timeout, killed and replaced; the other worker is not touched', async (t) => {
  const stallTimeout = 1.5
  const c = await startCluster(2, ['--worker-stall-timeout', String(stallTimeout)])
  t.teardown(() => c.child.kill('SIGKILL'))
  const [victim, survivor] = c.pids as [number, number]
  t.teardown(() => kill(victim, 'SIGKILL'))
  // One client per worker, through each worker's direct port (quick play joins the accepting worker's room).
  const a = await TickwireClient.connect(`ws://127.0.0.1:${c.directPorts[0]}/play`, { reconnect: false })
  const b = await TickwireClient.connect(`ws://127.0.0.1:${c.directPorts[1]}/play`, { reconnect: false })
  t.teardown(() => [a, b].forEach((x) => x.close()))
  const bEvents: string[] = []
  b.on('reconnecting', (code) => bEvents.push(`reconnecting ${code}`))
  b.on('close', (code) => bEvents.push(`close ${code}`))
  const aClosed = new Promise<number>((r) => a.on('close', (code) => r(code)))
  await waitFor(() => a.table.tick > 0 && b.table.tick > 0, 5000, 'both clients to get state')
  let m = await scrape(c.metricsPort)
  t.equal(m.get('tickwire_directory_rooms'), 2, "both workers' rooms are in the directory")
  t.equal(m.get('tickwire_worker_stalls_total'), 0)

  // Healthy but idle workers are never taken for stalled: heartbeats come from a timer, not from traffic.
  await sleep(stallTimeout * 1000 * 2)
  t.notMatch(c.stderr(), 'worker stalled', 'no stall in 2 timeouts of normal running')

  const frozenAt = performance.now()
  process.kill(victim, 'SIGSTOP')
  await waitFor(() => c.stderr().includes('worker stalled'), 15000, 'the supervisor to report the stall')
  const detectMs = performance.now() - frozenAt
  // Silence counts from the last message, which left up to one heartbeat period (0.3 s) before SIGSTOP.
  // The ceiling is not a tuned figure: the timeout, one check period, and a busy machine's scheduling.
  t.ok(detectMs >= stallTimeout * 1000 - 300 - 50 && detectMs < stallTimeout * 1000 + 5000, `stall reported ${detectMs.toFixed(0)} ms after SIGSTOP (timeout ${stallTimeout * 1000} ms)`)
  const line = c.stderr().split('\n').find((l) => l.includes('worker stalled')) as string
  t.match(line, / error worker stalled/, 'logged at error level')
  t.match(line, `worker=0 pid=${victim} silentSeconds=`, 'names the worker, its pid and how long it was silent')
  const silent = Number(/silentSeconds=([\d.]+)/.exec(line)?.[1])
  t.ok(silent >= stallTimeout, `silent ${silent} s >= the timeout`)

  await waitFor(() => !alive(victim), 5000, 'the stalled worker to be gone')
  t.pass('SIGKILL ended the stopped worker')
  t.equal(await aClosed, 1006, "the frozen worker's client lost its connection (1006)")

  await waitFor(() => c.stderr().includes('worker replaced'), 10000, 'a replacement worker')
  const replaced = c.stderr().split('\n').find((l) => l.includes('worker replaced')) as string
  const newPid = Number(/pid=(\d+)/.exec(replaced)?.[1])
  const newDirect = Number(/directPort=(\d+)/.exec(replaced)?.[1])
  t.match(replaced, /worker=0 /, 'slot 0 was replaced')
  t.ok(newPid > 0 && newPid !== victim && alive(newPid), `a new pid ${newPid} serves the slot`)
  t.match(c.stderr(), /worker exited; replacing it worker=0 code=null signal=SIGKILL/, 'through the usual restart path')

  m = await scrape(c.metricsPort)
  t.equal(m.get('tickwire_directory_rooms'), 1, "the stalled worker's room left the directory")
  const n = await TickwireClient.connect(`ws://127.0.0.1:${newDirect}/play`, { reconnect: false })
  t.teardown(() => n.close())
  await waitFor(() => n.table.tick > 0, 5000, 'the new client to get state')
  t.pass('a new client reaches the replacement on its direct port')

  const bTick = b.table.tick
  await waitFor(() => b.table.tick > bTick + 5, 5000, "the survivor's client to keep ticking")
  t.same(bEvents, [], "the other worker's client saw no disconnect")
  t.ok(alive(survivor), 'the other worker still runs')

  m = await scrape(c.metricsPort)
  t.equal(m.get('tickwire_worker_stalls_total'), 1, 'tickwire_worker_stalls_total 1')
  t.equal(m.get('tickwire_worker_restarts_total'), 1, 'and one restart')
  t.equal(m.get('tickwire_workers'), 2)
  t.equal(m.get('tickwire_worker_up{worker="0"}'), 1)
  t.equal(c.stderr().split('\n').filter((l) => l.includes('worker stalled')).length, 1, 'logged once')
})

t.test('a stopping supervisor leaves a frozen worker to the drain timeout, not to the stall check', async (t) => {
  const c = await startCluster(2, ['--worker-stall-timeout', '0.5', '--drain-timeout', '3'])
  t.teardown(() => c.child.kill('SIGKILL'))
  const [victim] = c.pids as [number, number]
  t.teardown(() => kill(victim, 'SIGKILL'))
  process.kill(victim, 'SIGSTOP') // it cannot drain
  c.child.kill('SIGTERM')
  const t0 = performance.now()
  let ceiling: NodeJS.Timeout | undefined
  const code = await Promise.race([c.exited, new Promise<'timeout'>((r) => (ceiling = setTimeout(() => r('timeout'), 15000)))])
  clearTimeout(ceiling)
  const ms = performance.now() - t0
  t.equal(code, 1, 'exit 1: a worker had to be killed')
  t.ok(ms >= 2900, `exited after the drain timeout (${ms.toFixed(0)} ms, timeout 3000 ms)`)
  t.notMatch(c.stderr(), 'worker stalled', 'the stall check did not act during the drain')
  t.match(c.stderr(), /workers did not exit within the drain timeout; killing them workers=\[0\]/)
  await waitFor(() => !alive(victim), 5000, 'the frozen worker to be gone')
  t.pass('the drain timeout killed it')
})

t.test('a supervisor that was itself frozen does not blame its workers for the heartbeats it did not read', async (t) => {
  const stallTimeout = 1
  const c = await startCluster(2, ['--worker-stall-timeout', String(stallTimeout)])
  t.teardown(() => c.child.kill('SIGKILL'))
  const pid = c.child.pid as number
  process.kill(pid, 'SIGSTOP') // a debugger, a VM pause: the workers' heartbeats queue up unread
  await sleep(stallTimeout * 1000 * 3)
  process.kill(pid, 'SIGCONT')
  await sleep(stallTimeout * 1000 * 2)
  t.notMatch(c.stderr(), 'worker stalled', 'no worker killed after the supervisor resumed')
  t.ok(c.pids.every(alive), 'both original workers still run')
  // And the check still works afterwards.
  process.kill(c.pids[1] as number, 'SIGSTOP')
  t.teardown(() => kill(c.pids[1] as number, 'SIGKILL'))
  await waitFor(() => c.stderr().includes('worker stalled'), 15000, 'the stall of worker 1')
  t.match(c.stderr(), `worker=1 pid=${c.pids[1]} silentSeconds=`)
  t.equal((await scrape(c.metricsPort)).get('tickwire_worker_stalls_total'), 1)
})
