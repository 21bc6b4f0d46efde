/**
 * Where a named room's player goes when this worker does not run the room:
 * the REDIRECT frame for the client's protocol version. With `--public-url`
 * a protocol-3 client is sent to the public endpoint with `route=<worker>`
 * (the load balancer's contract: a request carrying `route=R` reaches worker
 * R); otherwise, and for protocol-2 clients, to the owner's direct port.
 */
import { encodeRedirect } from '../../proto/index.js'
import type { WorkerAddress } from '../directory/directory.js'
import { RedirectKind, type Stats } from '../metrics/stats.js'

export interface Redirect {
  readonly frame: Uint8Array
  readonly kind: RedirectKind
}

export class Routing {
  readonly #publicUrl: URL | null
  readonly #self: string
  readonly #stats: Stats

  /** @param publicUrl `--public-url` ('' : none); @param self this worker's name ('' : unnamed, a single process). */
  constructor(publicUrl: string, self: string, stats: Stats) {
    this.#publicUrl = publicUrl === '' ? null : new URL(publicUrl)
    this.#self = self
    this.#stats = stats
  }

  /** The REDIRECT for a client speaking `version` whose room `room` lives on `owner`. */
  redirect(owner: WorkerAddress, version: number, room: string): Redirect {
    if (this.#publicUrl && version >= 3) {
      const u = new URL(this.#publicUrl)
      u.searchParams.set('room', room)
      u.searchParams.set('route', owner.name)
      return { frame: encodeRedirect({ port: 0, host: '', url: u.toString() }, version), kind: RedirectKind.ROUTE }
    }
    return { frame: encodeRedirect({ port: owner.port, host: owner.host, url: '' }, version), kind: RedirectKind.DIRECT }
  }

  /**
   * A request arrived carrying `route`: if it names another worker, the load
   * balancer broke its contract (or a client made the route up); counted, so
   * an operator sees a misconfigured balancer. The directory still decides.
   */
  arrived(route: string | null): boolean {
    if (route === null || this.#self === '' || route === this.#self) return true
    this.#stats.routeMisses++
    return false
  }
}
