/**
 * The `Origin` check at the upgrade (cross-site WebSocket hijacking): a
 * browser sends the page's origin with every WebSocket; a page of another
 * site must not play in a victim's room with the victim's network position.
 * Clients outside a browser send no `Origin` and are always let through (they
 * can send any header they like, so refusing them protects nobody).
 */

/**
 * `*`: every origin; a list: exactly those origins; empty: the server's own,
 * judged by the request's Host (which DNS rebinding can make any name: list
 * your origins in production).
 */
export type OriginPolicy = { readonly any: true } | { readonly any: false; readonly allowed: ReadonlySet<string> }

/** Parses `--allowed-origins`; throws a message naming a bad entry. */
export function parseAllowedOrigins(list: string): OriginPolicy {
  const allowed = new Set<string>()
  for (const raw of list.split(',')) {
    const o = raw.trim()
    if (o === '') continue
    if (o === '*') return { any: true }
    let url: URL
    try {
      url = new URL(o)
    } catch {
      throw new Error(`--allowed-origins: ${JSON.stringify(o)} is not an origin (expected scheme://host[:port], e.g. https://game.example.com)`)
    }
    if (url.origin === 'null' || url.origin !== o.replace(/\/$/, '').toLowerCase()) {
      throw new Error(`--allowed-origins: ${JSON.stringify(o)} is not an origin (expected scheme://host[:port] with no path, e.g. https://game.example.com)`)
    }
    allowed.add(url.origin)
  }
  return { any: false, allowed }
}

/**
 * Whether a browser page of `origin` may open a game socket. With a list, only
 * its origins. Without one, the server's own: `host` is the request's Host
 * header, and the own origin is the one whose host is that Host (so the page
 * served at `/` may connect), or that Host's name with `publicPort` (a page of
 * the public port redirected to a worker's direct port).
 */
export function originAllowed(policy: OriginPolicy, origin: string, host: string, publicPort: number): boolean {
  if (origin === '' || policy.any) return true
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false // "null" (sandboxed frames, file:) and junk
  }
  if (policy.allowed.size > 0) return policy.allowed.has(url.origin) // a list replaces the Host-based default
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false
  const h = host.toLowerCase()
  const defaultPort = url.protocol === 'https:' ? '443' : '80'
  if (url.host === h || `${url.host}:${defaultPort}` === h) return true
  const sep = h.lastIndexOf(':')
  const hostName = sep > 0 && !h.endsWith(']') ? h.slice(0, sep) : h
  return url.hostname === hostName && (url.port || defaultPort) === String(publicPort)
}
