/** The README and the code must agree: the config table, the close codes, the metric names. */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { CloseCode } from '../proto/index.js'
import { withConfigTable } from '../scripts/config-table.js'
import { DisconnectReason, RejectReason } from '../src/metrics/stats.js'
import { startTest } from './helpers/server.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('the README config table is the generated one (npm run docs)', async (t) => {
  t.equal(readme, withConfigTable(readme))
})

t.test('every close code is in the README table', async (t) => {
  for (const [name, code] of Object.entries(CloseCode)) {
    if (name === 'TOO_BIG') continue // reserved: uWS sends 1006 instead (documented in the 1006 row)
    t.match(readme, new RegExp(`\\| ${code} \\| ${name} \\|`), name)
  }
})

t.test('every exported tickwire_* series and reason label is documented', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const text = await tw.metrics.text()
  const names = new Set([...text.matchAll(/^# TYPE (tickwire_\S+)/gm)].map((m) => m[1] as string))
  t.ok(names.size > 15)
  for (const n of names) t.match(readme, `\`${n}`, n)
  for (const r of [...Object.values(DisconnectReason), ...Object.values(RejectReason)]) t.match(readme, `\`${r}\``, r)
})

t.test('the README code examples type-check against the real API', async (t) => {
  const { mkdirSync, writeFileSync, rmSync } = await import('node:fs')
  const { spawnSync } = await import('node:child_process')
  const dir = new URL('./.readme-examples/', import.meta.url)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // ```ts blocks, and ```ts file=<name> blocks (the walkthrough's files, which test/tag-game.test.ts also runs).
  const blocks = [...readme.matchAll(/```ts(?: file=([\w.-]+))?\n([\s\S]*?)```/g)].map((m) => ({ name: m[1], code: m[2] as string }))
  t.ok(blocks.length >= 2, `${blocks.length} ts blocks`)
  const files: string[] = []
  blocks.forEach(({ name, code }, i) => {
    const local = code.replace(/from 'tickwire\/client'/g, "from '../../src/client/index.js'").replace(/from 'tickwire'/g, "from '../../src/main.js'")
    const file = name ?? `example${i}.ts`
    writeFileSync(new URL(file, dir), `export {}\n${local}`)
    files.push(file)
  })
  writeFileSync(new URL('tsconfig.json', dir), JSON.stringify({ extends: '../../tsconfig.json', compilerOptions: { noEmit: true, rootDir: '../..' }, include: files }))
  const r = spawnSync(process.execPath, [new URL('../node_modules/typescript/bin/tsc', import.meta.url).pathname, '-p', new URL('tsconfig.json', dir).pathname], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stdout + r.stderr)
})
