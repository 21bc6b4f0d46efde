/**
 * The metrics listener: `GET /metrics` in Prometheus text format on its own
 * port, so it can stay private while the game port is public.
 */
import type { Logger } from '../log.js'
import uWS, { listenExclusive, type us_listen_socket } from './uws.js'

export interface MetricsEndpoint {
  readonly port: number
  close(): void
}

export function serveMetrics(
  host: string,
  port: number,
  contentType: string,
  render: () => Promise<string>,
  log: Logger,
): Promise<MetricsEndpoint> {
  const app = uWS.App()
  app.get('/metrics', (res) => {
    let aborted = false
    res.onAborted(() => {
      aborted = true
    })
    render().then(
      (body) => {
        if (!aborted) res.cork(() => res.writeHeader('content-type', contentType).end(body))
      },
      (err: Error) => {
        log.error('metrics render failed', { error: err.message })
        if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end('metrics failed\n'))
      },
    )
  })
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain').end('not found: try /metrics\n')
  })
  return new Promise((resolve, reject) => {
    // Exclusive: a second process on the same metrics port must fail loudly, not share it.
    listenExclusive(app, host, port, (sock: us_listen_socket | false) => {
      if (!sock) return reject(new Error(`cannot listen for metrics on ${host}:${port} (in use, or not permitted)`))
      let open = true
      resolve({
        port: uWS.us_socket_local_port(sock as never),
        // Idempotent: closing a listen socket twice is a use-after-free in uWS (a segfault).
        close: () => {
          if (open) uWS.us_listen_socket_close(sock)
          open = false
        },
      })
    })
  })
}
