/**
 * The browser client's files, served from the public port: read once at
 * start into memory, each under its exact path (so no path from a request
 * ever reaches the file system), with a fixed content type per extension,
 * an ETag, and caching by kind: the page itself is revalidated every time,
 * the hashed bundle files are immutable.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface StaticFile {
  readonly body: Buffer
  readonly type: string
  readonly etag: string
  readonly cacheControl: string
}

/** Extensions served, and their content types; anything else in the folder is ignored. */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
}

/** Files whose names carry a content hash (`app-3F2A....js`) never change: cache them for a year. */
const HASHED = /-[A-Z0-9]{8,}\.[a-z]+$/

/** The built web client's folder: `dist/web`, whether this module runs from dist/ or from source (tests). */
export function defaultWebDir(): string {
  const here = fileURLToPath(import.meta.url)
  const i = here.lastIndexOf(`${'/'}dist${'/'}`)
  const root = i >= 0 ? here.slice(0, i) : resolve(dirname(here), '../..')
  return join(root, 'dist', 'web')
}

/**
 * Reads the servable files of `dir` (not recursive). `/` is `index.html`.
 * Returns an empty map if the folder does not exist (the client was not built).
 */
export function loadStatic(dir: string): Map<string, StaticFile> {
  const out = new Map<string, StaticFile>()
  if (!existsSync(dir)) return out
  for (const name of readdirSync(dir).sort()) {
    const ext = name.slice(name.lastIndexOf('.'))
    const type = TYPES[ext]
    if (!type || !/^[A-Za-z0-9._-]+$/.test(name)) continue
    const body = readFileSync(join(dir, name))
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    const cacheControl = HASHED.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache'
    const file = { body, type, etag, cacheControl }
    out.set(`/${name}`, file)
    if (name === 'index.html') out.set('/', file)
  }
  return out
}
