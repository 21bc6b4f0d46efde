/**
 * The one place that imports uWebSockets.js. Our package is an npm alias of an
 * unofficial build that silently falls back to a slow `ws`-based imitation when
 * its native binary does not load (other Node majors, older glibc): tickwire
 * refuses to run on that fallback.
 */
import uWS from 'uWebSockets.js'

export default uWS
export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js'

/** True when uWS.App is the native binding. */
export function uwsIsNative(): boolean {
  return Function.prototype.toString.call(uWS.App).includes('[native code]')
}

/** Throws a clear error unless the native binding is loaded. */
export function assertNativeUws(): void {
  if (uwsIsNative()) return
  throw new Error(
    `uWebSockets.js native binding is not loaded (Node ${process.versions.node}, ` +
      `${process.platform}-${process.arch}, ABI ${process.versions.modules}); its package fell back to a slow ws-based ` +
      'imitation. tickwire needs Node 20 (16/18 also work) on Linux/macOS/Windows x64 or arm64 with glibc >= 2.27. Refusing to start.',
  )
}

type ListenCallback = (sock: import('uWebSockets.js').us_listen_socket | false) => void

/**
 * Listens without SO_REUSEPORT, so a port already taken fails instead of being
 * shared. Not for the public port (which workers share on purpose). The
 * typings lack both the constant and the (host, port, options, cb) overload.
 */
export function listenExclusive(app: import('uWebSockets.js').TemplatedApp, host: string, port: number, cb: ListenCallback): void {
  const flag = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT: number }).LIBUS_LISTEN_EXCLUSIVE_PORT
  const listen = app.listen as unknown as (h: string, p: number, o: number, cb: ListenCallback) => void
  listen.call(app, host, port, flag, cb)
}
