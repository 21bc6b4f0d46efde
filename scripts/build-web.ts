/**
 * Bundles the browser client (src/web/app.ts and the SDK it imports) with
 * esbuild into dist/web/: app-<hash>.js, app-<hash>.css and an index.html
 * that names them. Content-hashed names let the server cache them forever.
 * Run by `npm run build` (so by `npm start` and `npm test`).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('../..', import.meta.url)) // dist/scripts/ -> repo root
const src = join(root, 'src/web')
const out = join(root, 'dist/web')

export async function buildWeb(): Promise<string[]> {
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  const result = await build({
    entryPoints: { app: join(src, 'app.ts'), style: join(src, 'style.css') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    entryNames: '[name]-[hash]',
    outdir: out,
    metafile: true,
    // The SDK loads `ws` only where there is no global WebSocket (Node); browsers never reach that import.
    external: ['ws'],
    logLevel: 'warning',
  })
  const files = Object.keys(result.metafile.outputs).map((f) => basename(f))
  const js = files.find((f) => /^app-.*\.js$/.test(f))
  const css = files.find((f) => /^style-.*\.css$/.test(f))
  if (!js || !css) throw new Error(`esbuild produced ${files.join(', ')}: no app js or css`)
  const html = readFileSync(join(src, 'index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css)
  writeFileSync(join(out, 'index.html'), html)
  return [...files, 'index.html']
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildWeb().then(
    (files) => process.stdout.write(`web client: ${files.filter((f) => !f.endsWith('.map')).join(', ')} in dist/web\n`),
    (err: Error) => {
      process.stderr.write(`build-web: ${err.message}\n`)
      process.exit(1)
    },
  )
}
