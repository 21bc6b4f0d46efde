/**
 * The browser client's files (the bundled arena page, or a game's own built
 * folder: `--web-dir`), served from the public port. The whole tree is read
 * once at start into memory, each file under its exact path, so no path from
 * a request ever reaches the file system (`/../x`, `/%2e%2e/x` match no route:
 * 404). Hidden names (`.git`, `.env`) are skipped, and so, with a warning,
 * are symbolic links that lead out of the folder and names a route could not
 * carry verbatim. Content types come from a fixed table by extension (others:
 * `application/octet-stream`, sent with `nosniff`); every file has an ETag;
 * pages are revalidated every time (`no-cache`) while content-hashed names
 * (`index-B3xk91Qa.js`) are immutable for a year. `index.html` is also served
 * at its folder's path (`/`, `/docs/`). The tree is bounded (`WEB_LIMITS`):
 * past a bound, start-up fails naming it.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface StaticFile {
  readonly body: Buffer
  readonly type: string
  readonly etag: string
  readonly cacheControl: string
}

/** Content types by extension (lower-cased); anything else is `application/octet-stream`. */
const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.wav': 'audio/wav',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
}
const UNKNOWN_TYPE = 'application/octet-stream'

/**
 * A content hash before the extension: `-` then 8+ of [A-Za-z0-9_-] holding a
 * digit or a capital (esbuild's `app-3F2A9C1B.js`, Vite's `index-B_x2aQ1d.js`),
 * so a plain word (`my-components.js`) is not taken for one and stays revalidated.
 */
const HASHED = /-([A-Za-z0-9_-]{8,})\.[A-Za-z0-9]+$/
const IMMUTABLE = 'public, max-age=31536000, immutable'

/** Names served: what a URL path carries verbatim (no percent-encoding, no `:` or `*`, which uWS routes read as patterns). */
const SAFE_NAME = /^[A-Za-z0-9_~@+-][A-Za-z0-9._~@+-]*$/

/** Paths the server answers itself; a file there would be shadowed, so it is skipped with a warning. */
const RESERVED = new Set(['/play', '/healthz', '/readyz', '/info', '/rooms', '/metrics'])

export interface WebLimits {
  /** Most files served (each is one route). */
  readonly maxFiles: number
  /** Most bytes held in memory for them (per process: every worker holds its own copy). */
  readonly maxBytes: number
}

/** The bounds of a web folder: 10,000 files, 128 MiB (larger assets belong on a CDN). */
export const WEB_LIMITS: WebLimits = { maxFiles: 10_000, maxBytes: 128 * 1024 * 1024 }

/** A web folder that cannot be served (over a bound, unreadable): start-up fails with this message. */
export class WebDirError extends Error {
  override name = 'WebDirError'
}

/** The built web client's folder: `dist/web`, whether this module runs from dist/ or from source (tests). */
export function defaultWebDir(): string {
  const here = fileURLToPath(import.meta.url)
  const i = here.lastIndexOf(`${'/'}dist${'/'}`)
  const root = i >= 0 ? here.slice(0, i) : resolve(dirname(here), '../..')
  return join(root, 'dist', 'web')
}

export interface LoadStaticOptions {
  readonly limits?: WebLimits
  /** Told about each file or folder skipped for a reason the operator should know (a link out, an odd name). */
  readonly warn?: (msg: string, fields: Record<string, unknown>) => void
}

/**
 * Reads the tree under `dir` into path -> file. Returns an empty map if the
 * folder does not exist (the client was not built). Throws WebDirError past
 * a limit, naming it.
 */
export function loadStatic(dir: string, opts: LoadStaticOptions = {}): Map<string, StaticFile> {
  const out = new Map<string, StaticFile>()
  if (!existsSync(dir)) return out
  const limits = opts.limits ?? WEB_LIMITS
  const warn = opts.warn ?? (() => {})
  const root = realpathSync(dir)
  if (!statSync(root).isDirectory()) throw new WebDirError(`${dir} is not a folder`)
  // A file reached twice (a link inside the tree) is held once.
  const byRealPath = new Map<string, StaticFile>()
  let bytes = 0
  // Folders on the current path, by real path: a link back up the tree is not followed forever.
  const open = new Set<string>()
  const walk = (real: string, route: string): void => {
    open.add(real)
    const entries = readdirSync(real, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const ent of entries) {
      const name = ent.name
      if (name.startsWith('.')) continue // hidden: .git, .env, .DS_Store; also never `..`
      const path = route + name
      if (!SAFE_NAME.test(name)) {
        warn('web folder: not served: the name has characters a URL path would have to encode', { path })
        continue
      }
      let target = join(real, name)
      if (ent.isSymbolicLink()) {
        try {
          target = realpathSync(target)
        } catch {
          warn('web folder: not served: broken symbolic link', { path })
          continue
        }
        if (!inside(root, target)) {
          warn('web folder: not served: symbolic link out of the folder', { path, target })
          continue
        }
      }
      const st = statSync(target)
      if (st.isDirectory()) {
        if (open.has(target)) warn('web folder: not served: symbolic link to a folder above it', { path, target })
        else walk(target, `${path}/`)
        continue
      }
      if (!st.isFile()) continue // sockets, fifos, devices
      if (RESERVED.has(path)) {
        warn('web folder: not served: the server answers this path itself', { path })
        continue
      }
      if (out.size >= limits.maxFiles) {
        throw new WebDirError(`${dir} holds more than ${limits.maxFiles} files, the limit of files served`)
      }
      let file = byRealPath.get(target)
      if (!file) {
        bytes += st.size
        if (bytes > limits.maxBytes) {
          throw new WebDirError(`${dir} holds more than ${limits.maxBytes} bytes (${Math.round(limits.maxBytes / 1024 / 1024)} MiB), the limit of bytes served (at ${path})`)
        }
        const body = readFileSync(target)
        const dot = name.lastIndexOf('.')
        const type = (dot > 0 ? TYPES[name.slice(dot).toLowerCase()] : undefined) ?? UNKNOWN_TYPE
        const hash = HASHED.exec(name)?.[1]
        const hashed = hash !== undefined && /[A-Z0-9]/.test(hash) && type !== TYPES['.html']
        file = {
          body,
          type,
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
          cacheControl: hashed ? IMMUTABLE : 'no-cache',
        }
        byRealPath.set(target, file)
      }
      out.set(path, file)
      if (name === 'index.html') out.set(route, file)
    }
    open.delete(real)
  }
  walk(root, '/')
  return out
}

/** Whether real path `p` is `root` or below it. */
function inside(root: string, p: string): boolean {
  const rel = relative(root, p)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep) && !/^[A-Za-z]:/.test(rel))
}
