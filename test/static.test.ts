/**
 * `--web-dir`: a built folder tree served by a real server: nested paths,
 * index.html at `/` and `/dir/`, content types by extension, cache headers by
 * kind, and nothing outside the tree: `..` in any spelling, links out of the
 * folder and hidden files all answer 404. Past a limit, start-up fails (exit 2)
 * naming it.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { createLogger } from '../src/log.js'
import { loadStatic, WebDirError } from '../src/net/static.js'
import { startTest } from './helpers/server.js'

const main = fileURLToPath(new URL('../dist/src/main.js', import.meta.url))

/** Sends `path` verbatim in a request line (fetch would normalize `..` away) and reads the response. */
function rawGet(port: number, path: string): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let data = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => (data += d))
    s.on('error', reject)
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
    const timer = setTimeout(() => s.destroy(new Error(`no response to ${path} in 5 s`)), 5000)
    s.on('close', () => {
      clearTimeout(timer)
      const [head = '', ...rest] = data.split('\r\n\r\n')
      const [line = '', ...lines] = head.split('\r\n')
      const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const))
      resolve({ status: Number(line.split(' ')[1]), headers, body: rest.join('\r\n\r\n') })
    })
  })
}

/** A Vite-like build, plus what must not be served: a secret beside it, links out, hidden files. */
function tree(t: Test): { root: string; web: string } {
  const root = mkdtempSync(join(tmpdir(), 'tickwire-webdir-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const web = join(root, 'dist')
  mkdirSync(join(web, 'assets', 'img'), { recursive: true })
  mkdirSync(join(web, 'docs'))
  mkdirSync(join(web, '.git'))
  mkdirSync(join(root, 'outside'))
  writeFileSync(join(root, 'package.json'), '{"secret": true}\n')
  writeFileSync(join(root, 'outside', 'secret.txt'), 'secret\n')
  writeFileSync(join(web, 'package.json'), '{"served": true}\n')
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>root</title>\n')
  writeFileSync(join(web, 'assets', 'index-B3xk91Qa.js'), 'console.log(1)\n')
  writeFileSync(join(web, 'assets', 'index-Dq_2-x7A.css'), 'body{}\n')
  writeFileSync(join(web, 'assets', 'img', 'logo.svg'), '<svg/>\n')
  writeFileSync(join(web, 'assets', 'my-components.js'), 'export {}\n')
  writeFileSync(join(web, 'assets', 'level.bin'), Buffer.from([1, 2, 3]))
  writeFileSync(join(web, 'assets', 'music.OGG'), Buffer.from([4]))
  writeFileSync(join(web, 'docs', 'index.html'), '<!doctype html><title>docs</title>\n')
  writeFileSync(join(web, '.env'), 'TOKEN=hunter2\n')
  writeFileSync(join(web, '.git', 'config'), '[core]\n')
  writeFileSync(join(web, 'healthz'), 'shadow\n')
  writeFileSync(join(web, 'a b.js'), 'odd\n')
  symlinkSync(join(root, 'outside', 'secret.txt'), join(web, 'secret.txt'))
  symlinkSync(join(root, 'outside'), join(web, 'out'))
  symlinkSync('../package.json', join(web, 'up.json'))
  symlinkSync(join(web, 'assets', 'img', 'logo.svg'), join(web, 'logo.svg')) // inside: served
  symlinkSync(join(web, 'assets', 'img'), join(web, 'img')) // inside: served
  symlinkSync(web, join(web, 'assets', 'loop')) // a folder above: not followed (it would never end)
  symlinkSync(join(root, 'missing'), join(web, 'broken.js'))
  return { root, web }
}

t.test('a real server serves the tree under --web-dir, with the right status, type and caching for each path', async (t) => {
  const { web } = tree(t)
  const warnings: string[] = []
  const log = createLogger('warn', (l) => warnings.push(l))
  const tw = await startTest({ webDir: web }, { log })
  t.teardown(() => tw.stop())
  const HTML = 'text/html; charset=utf-8'
  const IMMUTABLE = 'public, max-age=31536000, immutable'
  const cases: [path: string, status: number, type?: string, cache?: string, body?: string][] = [
    ['/', 200, HTML, 'no-cache', '<!doctype html><title>root</title>\n'],
    ['/index.html', 200, HTML, 'no-cache', '<!doctype html><title>root</title>\n'],
    ['/docs/', 200, HTML, 'no-cache', '<!doctype html><title>docs</title>\n'],
    ['/docs/index.html', 200, HTML, 'no-cache'],
    ['/assets/index-B3xk91Qa.js', 200, 'text/javascript; charset=utf-8', IMMUTABLE, 'console.log(1)\n'],
    ['/assets/index-Dq_2-x7A.css', 200, 'text/css; charset=utf-8', IMMUTABLE],
    ['/assets/img/logo.svg', 200, 'image/svg+xml', 'no-cache'],
    ['/assets/my-components.js', 200, 'text/javascript; charset=utf-8', 'no-cache'], // a word, not a hash
    ['/assets/level.bin', 200, 'application/octet-stream', 'no-cache'],
    ['/assets/music.OGG', 200, 'audio/ogg', 'no-cache'],
    ['/package.json', 200, 'application/json', 'no-cache', '{"served": true}\n'],
    ['/logo.svg', 200, 'image/svg+xml', 'no-cache'], // a link inside the tree
    // Traversal in every spelling: no route matches, nothing outside the tree is read.
    ['/../package.json', 404],
    ['/%2e%2e/package.json', 404],
    ['/%2E%2E/package.json', 404],
    ['/assets/../../package.json', 404],
    ['/assets/%2e%2e/%2e%2e/package.json', 404],
    ['/..%2fpackage.json', 404],
    ['/assets/..%5c..%5cpackage.json', 404],
    ['//etc/passwd', 404],
    // Links out of the folder, hidden files, names a route could not carry.
    ['/secret.txt', 404],
    ['/out/secret.txt', 404],
    ['/up.json', 404],
    ['/broken.js', 404],
    ['/.env', 404],
    ['/.git/config', 404],
    ['/a%20b.js', 404],
    ['/img/logo.svg', 200, 'image/svg+xml'], // a link to a folder inside the tree
    ['/assets/loop/index.html', 404], // a link to a folder above it is not followed
    ['/docs', 404],
    ['/assets/', 404], // a folder without index.html
    ['/healthz', 200, 'text/plain', undefined, 'ok\n'], // the server's own route wins
  ]
  for (const [path, status, type, cache, body] of cases) {
    const r = await rawGet(tw.port, path)
    t.equal(r.status, status, `${path}: ${status}`)
    if (r.status !== 200) {
      t.notMatch(r.body, /secret|hunter2|shadow/, `${path}: nothing of what is outside`)
      continue
    }
    if (type) t.equal(r.headers.get('content-type'), type, `${path}: ${type}`)
    if (cache) t.equal(r.headers.get('cache-control'), cache, `${path}: ${cache}`)
    if (cache) t.equal(r.headers.get('x-content-type-options'), 'nosniff', `${path}: nosniff`)
    if (body !== undefined) t.equal(r.body, body, `${path}: its body`)
  }
  const said = warnings.join('\n')
  for (const [what, path] of [
    ['symbolic link out of the folder', '/secret.txt'],
    ['symbolic link out of the folder', '/out'],
    ['symbolic link out of the folder', '/up.json'],
    ['broken symbolic link', '/broken.js'],
    ['symbolic link to a folder above it', '/assets/loop'],
    ['the server answers this path itself', '/healthz'],
    ['characters a URL path would have to encode', '/a b.js'],
  ] as const) {
    t.ok(said.split('\n').some((l) => l.includes(what) && l.includes(`path=${path}`)), `warned: ${path}: ${what}`)
  }
  t.notMatch(said, /\.env|\.git/, 'hidden files are skipped without a word')
})

t.test('limits: more files or bytes than allowed is an error naming the limit', async (t) => {
  const { web } = tree(t)
  t.throws(() => loadStatic(web, { limits: { maxFiles: 3, maxBytes: 1 << 20 } }), new WebDirError(`${web} holds more than 3 files, the limit of files served`))
  t.throws(() => loadStatic(web, { limits: { maxFiles: 100, maxBytes: 64 } }), { name: 'WebDirError', message: /holds more than 64 bytes .*the limit of bytes served/ })
  t.equal(loadStatic(join(web, 'nope')).size, 0, 'a folder that does not exist (the client not built) serves nothing')
})

t.test('the CLI: a --web-dir over the limit or missing is exit 2 naming it, for one process and for workers', async (t) => {
  const { root } = tree(t)
  const big = join(root, 'big')
  mkdirSync(big)
  writeFileSync(join(big, 'index.html'), 'x')
  writeFileSync(join(big, 'huge.bin'), '')
  truncateSync(join(big, 'huge.bin'), 129 * 1024 * 1024) // sparse: its size, not its bytes, trips the limit
  const args = ['--workers', '1', '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--log-format', 'pretty']
  const over = spawnSync(process.execPath, [main, ...args, '--web-dir', big], { encoding: 'utf8', timeout: 20000 })
  t.equal(over.status, 2, 'exit 2')
  t.match(over.stderr, /--web-dir: .*big holds more than 134217728 bytes \(128 MiB\), the limit of bytes served/)
  const missing = spawnSync(process.execPath, [main, ...args, '--web-dir', join(root, 'nope')], { encoding: 'utf8', timeout: 20000 })
  t.equal(missing.status, 2, 'exit 2')
  t.match(missing.stderr, /--web-dir: ".*nope" does not exist/)
  // Through the environment too, read by a supervisor's workers.
  const sup = spawnSync(process.execPath, [main, '--workers', '2', '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], {
    encoding: 'utf8',
    timeout: 20000,
    env: { ...process.env, TICKWIRE_WEB_DIR: big },
  })
  t.equal(sup.status, 2, 'a supervisor whose workers cannot load it exits 2')
  t.match(sup.stderr, /the limit of bytes served/)
})
