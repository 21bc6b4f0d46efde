/**
 * The public port's plain HTTP routes: `/healthz`, `/readyz`, `/info`, the
 * browser client's files, `/play` without a WebSocket upgrade (426/400/405),
 * and 404 for the rest. Every GET route answers HEAD too.
 */
import { UpgradeRejectReason, type Stats } from '../metrics/stats.js'
import { HandshakeRefusal, endBody, handshakeRefusal, writeRefusal } from './handshake.js'
import type { StaticFile } from './static.js'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js'

export interface HttpRouteDeps {
  readonly stats: Stats
  /** Whether `/readyz` answers 200. */
  readonly ready: () => boolean
  /** Served as JSON at `/info`: what a browser client needs beyond WELCOME. */
  readonly info: Readonly<Record<string, unknown>>
  /** The browser client's files by path (see static.ts); without `/`, `/` answers 404. */
  readonly web: ReadonlyMap<string, StaticFile>
}

/** Sent with every file of the browser client. The page talks WebSocket to this host and to the direct ports. */
const WEB_HEADERS: readonly (readonly [string, string])[] = [
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'no-referrer'],
  ['x-frame-options', 'DENY'],
  ['content-security-policy', "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"],
]

/** Registers the routes on `app`. Call after `app.ws('/play', ...)`. */
export function mountHttpRoutes(app: TemplatedApp, deps: HttpRouteDeps): void {
  const { stats, ready } = deps
  // Every GET route answers HEAD too (same headers, no body: see endBody).
  const get = (path: string, handler: (res: HttpResponse, req: HttpRequest, head: boolean) => void): void => {
    app.get(path, (res, req) => handler(res, req, false))
    app.head(path, (res, req) => handler(res, req, true))
  }
  // uWS routes a GET /play here, not to the upgrade handler, when its Sec-WebSocket-Key is absent or not 24 characters.
  get('/play', (res, req, head) => {
    stats.upgradesRejected[UpgradeRejectReason.HANDSHAKE]++
    writeRefusal(res, handshakeRefusal(req) ?? HandshakeRefusal.BAD_KEY, head)
  })
  app.any('/play', (res) => {
    stats.upgradesRejected[UpgradeRejectReason.HANDSHAKE]++
    res.writeStatus('405 Method Not Allowed').writeHeader('allow', 'GET, HEAD').writeHeader('content-type', 'text/plain').end('use GET with a websocket upgrade\n', true)
  })
  get('/healthz', (res, _req, head) => {
    endBody(res.writeHeader('content-type', 'text/plain'), 'ok\n', head)
  })
  get('/readyz', (res, _req, head) => {
    if (ready()) endBody(res.writeHeader('content-type', 'text/plain'), 'ready\n', head)
    else endBody(res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain'), 'not ready\n', head)
  })
  const info = JSON.stringify(deps.info)
  get('/info', (res, _req, head) => {
    endBody(res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-cache'), info, head)
  })
  const web = deps.web
  // One exact route per file: a request path never reaches the file system.
  for (const [path, file] of web) {
    get(path, (res, req, head) => {
      if (req.getHeader('if-none-match') === file.etag) {
        // endWithoutBody: uWS's end() would add Content-Length: 0, which a 304 must not carry (RFC 9110 §8.6).
        res.writeStatus('304 Not Modified').writeHeader('etag', file.etag).writeHeader('cache-control', file.cacheControl).endWithoutBody()
        return
      }
      res.writeHeader('content-type', file.type).writeHeader('etag', file.etag).writeHeader('cache-control', file.cacheControl)
      for (const [k, v] of WEB_HEADERS) res.writeHeader(k, v)
      endBody(res, file.body, head)
    })
  }
  if (!web.has('/')) {
    get('/', (res, _req, head) => {
      stats.upgradesRejected[UpgradeRejectReason.NOT_FOUND]++
      endBody(res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain'), 'web client not built: run npm run build\n', head)
    })
  }
  app.any('/*', (res, req) => {
    stats.upgradesRejected[UpgradeRejectReason.NOT_FOUND]++
    endBody(res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain'), 'not found\n', req.getMethod() === 'head')
  })
}
