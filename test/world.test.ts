/**
 * Typed entity access on World: get/set/add and field accessors read and
 * write the same columns, check ids and names with clear errors, allocate
 * nothing per call; and a game using them compiles under strict +
 * noUncheckedIndexedAccess while a wrong field name does not.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { PerformanceObserver } from 'node:perf_hooks'
import { promisify } from 'node:util'
import t from 'tap'
import { World } from '../src/sim/world.js'

const run = promisify(execFile)
const root = resolve(import.meta.dirname, '..')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const FLAGS = ['--noEmit', '--strict', '--noUncheckedIndexedAccess', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--skipLibCheck']

t.test('get, set, add and field() read and write the columns', async (t) => {
  const w = new World(8, ['x', 'y'])
  const a = w.spawn()
  const b = w.spawn()
  w.set(a, 'x', 1.5)
  t.equal(w.add(a, 'x', 2), 3.5, 'add returns the new value')
  t.equal(w.get(a, 'x'), 3.5)
  t.equal(w.column('x')[a], 3.5, 'the same column')
  const y = w.field('y')
  t.equal(w.field('y'), y, 'one accessor per field')
  y.set(b, -4)
  t.equal(y.add(b, 1), -3)
  t.equal(w.get(b, 'y'), -3)
  t.equal(y.get(b), -3)
  t.equal(y.column, w.column('y'))
  t.equal(w.get(a, 'y'), 0, 'a spawn starts at 0')
  w.despawn(b)
  const c = w.spawn()
  t.equal(c, b, 'the slot is reused')
  t.equal(y.get(c), 0, 'and cleared on spawn')
})

t.test('a bad id or field name throws, naming it; nothing is written', async (t) => {
  const w = new World(4, ['x'])
  const x = w.field('x')
  for (const bad of [-1, 4, 1.5, NaN, Infinity, 2 ** 32]) {
    t.throws(() => w.get(bad, 'x'), { name: 'RangeError', message: `entity id ${bad} is not an integer in [0, 4)` })
    t.throws(() => w.set(bad, 'x', 1), RangeError)
    t.throws(() => w.add(bad, 'x', 1), RangeError)
    t.throws(() => x.get(bad), RangeError)
    t.throws(() => x.set(bad, 1), RangeError)
    t.throws(() => x.add(bad, 1), RangeError)
  }
  t.same([...w.column('x')], [0, 0, 0, 0])
  const loose = w as unknown as World
  t.throws(() => loose.get(0, 'z'), { message: 'unknown field "z"' })
  t.throws(() => loose.set(0, 'z', 1), { message: 'unknown field "z"' })
  t.throws(() => loose.field('__proto__'), { message: 'unknown field "__proto__"' })
  t.throws(() => loose.column('toString'), { message: 'unknown field "toString"' })
})

t.test('the accessors allocate nothing per call', async (t) => {
  const w = new World(1024, ['x', 'y', 'vx', 'vy'])
  for (let i = 0; i < w.capacity; i++) w.spawn()
  const vx = w.field('vx')
  const pass = () => {
    for (let e = 0; e < w.capacity; e++) {
      vx.set(e, 1)
      w.add(e, 'x', w.get(e, 'vx') * 0.5)
      w.set(e, 'y', vx.add(e, 0))
    }
  }
  for (let i = 0; i < 200; i++) pass() // warm up: optimized code
  // 5M calls that allocated even 16 B each would be 80 MB: several young-generation collections, and a grown heap.
  let gcs = 0
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length
  })
  obs.observe({ entryTypes: ['gc'] })
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 1000; i++) pass()
  const grown = process.memoryUsage().heapUsed - before
  await new Promise((r) => setTimeout(r, 50)) // gc entries arrive asynchronously
  obs.disconnect()
  t.ok(gcs <= 1, `5,120,000 accessor calls ran ${gcs} collections (one may be pending from before)`)
  t.ok(grown < 1024 * 1024, `and grew the heap by ${grown} bytes`)
  t.equal(w.get(7, 'x'), 600, 'and they did the work')
})

t.test('a game using the accessors compiles under strict + noUncheckedIndexedAccess; a wrong field name does not', async (t) => {
  const fixture = join(root, 'test', 'fixtures', 'world-types.ts')
  const ok = await run(process.execPath, [tsc, ...FLAGS, fixture], { cwd: root }).then(
    () => ({ code: 0, out: '' }),
    (err: { code: number; stdout: string }) => ({ code: err.code, out: err.stdout }),
  )
  t.equal(ok.code, 0, `the fixture compiles, every @ts-expect-error needed ${ok.out}`)
  // Without the directives, each wrong name is an error tsc names.
  const dir = mkdtempSync(join(root, 'test', 'fixtures', '.world-types-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const stripped = join(dir, 'world-types.ts')
  writeFileSync(stripped, readFileSync(fixture, 'utf8').replace(/^\s*\/\/ @ts-expect-error.*$/gm, '').replaceAll('../../src/', '../../../src/'))
  const bad = await run(process.execPath, [tsc, ...FLAGS, stripped], { cwd: root }).then(
    () => ({ code: 0, out: '' }),
    (err: { code: number; stdout: string }) => ({ code: err.code, out: err.stdout }),
  )
  t.not(bad.code, 0, 'without them it does not compile')
  t.equal(bad.out.match(/error TS2345: Argument of type '"(z|x)"' is not assignable/g)?.length, 3, `three wrong names reported:\n${bad.out}`)
})
