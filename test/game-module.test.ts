/** `--game ./my-game.js`: the user's own game runs under the supervisor on every worker; a bad module is a clear exit 2. */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { startCluster } from './helpers/cluster.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))

/** A game in plain JavaScript, as a user's build would emit it: a dot per player, moved by (dx, dy). */
const GAME = `
export default {
  name: 'dots',
  fields: [{ name: 'x', quantum: 1 }, { name: 'y', quantum: 1 }],
  input: [{ name: 'dx', min: -5, max: 5 }, { name: 'dy', min: -5, max: 5 }],
  position: ['x', 'y'],
  layout: (maxPlayers) => ({ capacity: maxPlayers, width: 1000, height: 1000 }),
  createRoom: ({ world }) => {
    const x = world.column('x'), y = world.column('y'), vx = new Float64Array(world.capacity), vy = new Float64Array(world.capacity)
    return {
      join: () => { const e = world.spawn(); if (e >= 0) { x[e] = 500; y[e] = 500 } return e },
      leave: (e) => world.despawn(e),
      input: (e, v) => { vx[e] = v[0]; vy[e] = v[1] },
      step: () => { for (let e = 0; e < world.capacity; e++) if (world.alive[e]) { x[e] = Math.min(1000, Math.max(0, x[e] + vx[e])); y[e] = Math.min(1000, Math.max(0, y[e] + vy[e])) } },
    }
  },
}
`

t.test('--game runs your game on every worker; the arena page is not served for it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tickwire-game-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'dots.mjs')
  writeFileSync(file, GAME)
  const c = await startCluster(2, ['--game', file])
  t.teardown(() => c.child.kill('SIGKILL'))
  const players = await Promise.all(Array.from({ length: 4 }, () => TickwireClient.connect(c.url, { room: 'dots', reconnect: false })))
  t.teardown(() => {
    for (const p of players) p.close()
  })
  // The kernel spreads connections at random: more players until one landed on the other worker
  // (and was redirected), at most 20 in all (all on one worker: a chance of 2^-19).
  while (!players.some((p) => p.redirects > 0) && players.length < 20) players.push(await TickwireClient.connect(c.url, { room: 'dots', reconnect: false }))
  for (const p of players) t.same(p.welcome.input.map((i) => i.name), ['dx', 'dy'], 'WELCOME carries the game\'s inputs')
  t.ok(players.some((p) => p.redirects > 0), 'players on both workers: both run the game')
  const first = players[0] as TickwireClient
  first.sendInput([5, 0])
  const me = first.welcome.entityId
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the dot did not move')), 10_000)
    first.on('state', () => {
      const v = first.table.entities.get(me)
      if (v && (v[0] as number) > 500) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  t.pass('the game\'s own rules move the dot')
  const page = await fetch(`http://127.0.0.1:${c.port}/`)
  t.equal(page.status, 404, 'no arena page for another game')
  const info = (await (await fetch(`http://127.0.0.1:${c.port}/info`)).json()) as { game: string }
  t.equal(info.game, 'dots')
})

t.test('a --game that is missing, does not load or exports no Game: exit 2 naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tickwire-game-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'empty.mjs'), 'export const x = 1\n')
  writeFileSync(join(dir, 'broken.mjs'), 'export default {\n')
  for (const [file, why] of [
    [join(dir, 'nope.mjs'), /--game: ".*nope.mjs" does not exist/],
    [join(dir, 'empty.mjs'), /must export a Game/],
    [join(dir, 'broken.mjs'), /could not be loaded/],
  ] as const) {
    for (const workers of ['1', '2']) {
      const r = spawnSync(process.execPath, [main, '--workers', workers, '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--log-format', 'pretty', '--game', file], { encoding: 'utf8', timeout: 30_000 })
      t.equal(r.status, 2, `${file.split('/').pop()} with --workers ${workers}: exit 2`)
      t.match(r.stderr, why)
    }
  }
})
