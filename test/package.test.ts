/** What `npm pack` ships: the built server, SDK, protocol, load generator and page; no tests, CI or bench results. */
import { execFileSync } from 'node:child_process'
import t from 'tap'

t.test('npm pack ships dist and the docs a user needs, not the repository', async (t) => {
  // --ignore-scripts: `prepare` would rebuild dist/ under the other tests' feet.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' })
  const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? []
  for (const need of ['dist/src/main.js', 'dist/src/main.d.ts', 'dist/src/client/index.js', 'dist/proto/index.js', 'dist/bench/load/cli.js', 'dist/web/index.html', 'proto/PROTOCOL.md', 'README.md', 'package.json']) {
    t.ok(files.includes(need), `ships ${need}`)
  }
  t.same(files.filter((f) => /^(test|\.ci|bench\/results|src|scripts)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no tests, CI, bench results or TypeScript sources')
})
