/** The supervisor's own behaviour with real worker processes: retries with backoff, and stop() during a restart. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startSupervisor } from '../src/cluster/supervisor.js'
import { defaultConfig } from '../src/config.js'
import { createLogger } from '../src/log.js'
import { alive } from './helpers/cluster.js'
import { waitFor } from './helpers/server.js'

// Workers start without this test's TypeScript and coverage loaders (execArgv: []), as in production.
const script = fileURLToPath(new URL('./fixtures/flaky-worker.mjs', import.meta.url))

function setup(plan: string) {
  const lines: string[] = []
  const log = createLogger('info', (l) => lines.push(l))
  process.env.FLAKY_COUNTER = join(mkdtempSync(join(tmpdir(), 'tickwire-flaky-')), 'launches')
  process.env.FLAKY_PLAN = plan
  const config = defaultConfig({ port: 0, metricsPort: 0, host: '127.0.0.1', logLevel: 'warn' })
  return { lines, log, config }
}

t.test('a replacement that dies before it is ready is retried with growing backoff until one serves', async (t) => {
  const { lines, log, config } = setup('fail,fail,ok')
  const sup = await startSupervisor(config, { workers: 2, script, log, execArgv: [] })
  const first = sup.workers()[0]?.pid as number
  process.kill(first, 'SIGKILL')
  await waitFor(() => (sup.workers()[0]?.pid ?? 0) > 0 && sup.workers()[0]?.pid !== first && sup.workers()[0]?.directPort !== 0, 10000, 'slot 0 serving again')
  t.equal(sup.restarts, 3, 'the crash and two failed starts each counted')
  const delays = lines.filter((l) => l.includes('worker exited; replacing it')).map((l) => Number(/restartInMs=(\d+)/.exec(l)?.[1]))
  t.same(delays, [0, 200, 400], 'backoff: at once, then 0.2 s, 0.4 s')
  t.ok(lines.some((l) => l.includes('worker replaced')), 'replacement logged')
  const t0 = performance.now()
  t.equal(await sup.stop(), 0)
  t.ok(performance.now() - t0 < 3000, `stopped in ${(performance.now() - t0).toFixed(0)} ms`)
})

t.test('stop() while a replacement is starting drains it too: exit code 0, nothing left', async (t) => {
  const { config, log } = setup('slow')
  const sup = await startSupervisor({ ...config, drainTimeout: 5 }, { workers: 2, script, log, execArgv: [] })
  const other = sup.workers()[1]?.pid as number
  process.kill(sup.workers()[0]?.pid as number, 'SIGKILL')
  await waitFor(() => (sup.workers()[0]?.pid ?? 0) > 0, 3000, 'the replacement to be forked')
  const starting = sup.workers()[0]?.pid as number
  const t0 = performance.now()
  t.equal(await sup.stop(), 0, 'exit code 0: every worker drained')
  t.ok(performance.now() - t0 < 4000, `stopped in ${(performance.now() - t0).toFixed(0)} ms, before the 5 s drain timeout`)
  await waitFor(() => !alive(starting) && !alive(other), 2000, 'the workers to be gone')
})
