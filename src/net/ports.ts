/**
 * Port checks done before binding: a free port for port 0, and the guard
 * that keeps a second server off a public port someone already listens on.
 */
import { createServer } from 'node:net'

/** A port the kernel considered free on `host` a moment ago (its pick for port 0); another process may take it before use. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const addr = srv.address()
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no free port'))))
    })
  })
}

/** The public port is already listened on by another process. `code`: `'TICKWIRE_PORT_IN_USE'`. */
export class PortInUseError extends Error {
  readonly code = 'TICKWIRE_PORT_IN_USE' as const
  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super(`port ${port} on ${host} is already in use by another process (another tickwire server?); each server needs its own --port`)
    this.name = 'PortInUseError'
  }
}

/** Why a bind failed, for errors other than EADDRINUSE. */
function probeFailure(host: string, port: number, err: NodeJS.ErrnoException): Error {
  const where = `cannot bind port ${port} on ${host}`
  const why =
    err.code === 'EACCES'
      ? 'permission denied (ports below net.ipv4.ip_unprivileged_port_start, usually 1024, need root or CAP_NET_BIND_SERVICE)'
      : err.code === 'EADDRNOTAVAIL'
        ? `${host} is not an address of this machine; set --host to one of its addresses, or 0.0.0.0`
        : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
          ? `cannot resolve ${host} (${err.code}); set --host to an IP address`
          : `${err.code ?? 'error'}: ${err.message}`
  return new Error(`${where}: ${why}`, { cause: err })
}

/**
 * Resolves when nothing listens on `host:port`; rejects with `PortInUseError`
 * when something does, or with an Error naming the cause when the port cannot
 * be bound at all (EACCES, EADDRNOTAVAIL, an unresolvable host). Port 0 is a
 * no-op (the kernel picks a free port).
 *
 * uWS binds the public port with SO_REUSEPORT so that our own workers share
 * it, and the kernel would just as well let an unrelated tickwire (same user)
 * join that group and split rooms of the same id between two servers. So the
 * supervisor calls this before its first worker binds, and a single process
 * before its one bind. The probe is an ordinary node:net listen, which sets
 * SO_REUSEADDR but not SO_REUSEPORT: on Linux its bind fails with EADDRINUSE
 * against any listening socket whose address overlaps, with or without
 * SO_REUSEPORT. Overlap (checked by test/ports.test.ts): the same address;
 * 0.0.0.0 against any IPv4 address and back; :: (dual-stack, as both node and
 * uWS bind it) against everything; ::1 only against ::1 and ::. Distinct
 * addresses do not overlap: 127.0.1.1 and 127.0.1.2 with one port are two
 * servers, as the test machines on loopback addresses need.
 *
 * Race: this is a check, not a lock. The probe closes its socket before the
 * workers bind, so a process that binds in between (milliseconds) is not
 * seen, and if it also uses SO_REUSEPORT as the same user, the two share the
 * port as before. Nor does it guard a later re-bind of the port (a worker
 * restarted after all workers died, a listen socket reopened after a pause).
 * Running each server as its own user closes both: the kernel only groups
 * SO_REUSEPORT sockets of one effective uid.
 *
 * @example
 * await assertPortFree(config.host, config.port) // before the first worker binds
 */
export async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return
  await new Promise<void>((resolve, reject) => {
    const probe = createServer()
    probe.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(host, port) : probeFailure(host, port, err))
    })
    // exclusive: in a node:cluster worker, bind here rather than share the primary's handle.
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()))
  })
}
