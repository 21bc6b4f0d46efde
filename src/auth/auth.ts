/**
 * Who may play: the identity a signed join token (a JWT) gives a connection,
 * checked at the WebSocket upgrade before any seat or room is touched
 * (`--auth off|optional|required`). The verifier (jwt.ts) knows tokens and
 * keys; the network layer knows where a token travels (`tokenOf`); the game
 * sees the identity in `join()`.
 */

/** `--auth`: off (nobody is asked), optional (a token is checked if given), required (no token, no play). */
export const AuthMode = { OFF: 'off', OPTIONAL: 'optional', REQUIRED: 'required' } as const
export type AuthMode = (typeof AuthMode)[keyof typeof AuthMode]

/** `--auth-algorithm`: the one algorithm tokens must be signed with (never taken from the token). */
export const AUTH_ALGORITHMS = ['HS256', 'ES256', 'EdDSA', 'RS256'] as const
export type AuthAlgorithm = (typeof AUTH_ALGORITHMS)[number]

/** Who a verified token says the player is. */
export interface Identity {
  /** `sub`: the player's stable id in the game's backend (resume tokens bind to it). */
  readonly sub: string
  /** `name` (else `sub`), at most 32 bytes of UTF-8: the player's name on the wire. */
  readonly name: string
  /** `roles`: strings, possibly none. */
  readonly roles: readonly string[]
  /** `room`: the room id the player may join, or a pattern with `*` (any run of id characters); null: any room. */
  readonly room: string | null
  /** `exp` in ms since the epoch; 0: the token does not expire. */
  readonly expiresAt: number
}

/** Why a token was refused: `tickwire_auth_refused_total{reason}`. */
export const AuthFailure = {
  /** `--auth required` and no token (401). */
  MISSING: 'missing',
  /** Not a JWS compact token, a bad header or payload, or claims of the wrong type (401). */
  MALFORMED: 'malformed',
  /** The header names another algorithm than `--auth-algorithm` (`none` included) (401). */
  ALGORITHM: 'algorithm',
  /** The signature does not verify with the configured key (401). */
  SIGNATURE: 'signature',
  /** `exp` passed (beyond the clock tolerance) (401). */
  EXPIRED: 'expired',
  /** `nbf` or `iat` in the future (beyond the clock tolerance) (401). */
  NOT_YET_VALID: 'not_yet_valid',
  /** `iss` is not `--auth-issuer` (401). */
  ISSUER: 'issuer',
  /** `aud` does not name `--auth-audience` (401). */
  AUDIENCE: 'audience',
  /** A valid token whose `room` does not allow the room asked for (403). */
  ROOM: 'room',
  /** The keys could not be had (a JWKS URL that does not answer) (503). */
  KEYS: 'keys_unavailable',
} as const
export type AuthFailure = (typeof AuthFailure)[keyof typeof AuthFailure]

export type AuthOutcome = { readonly ok: true; readonly identity: Identity } | { readonly ok: false; readonly status: 401 | 403 | 503; readonly reason: AuthFailure }

/** Verifies join tokens with the configured key and claims. Never throws: a bad token is an outcome. */
export interface Verifier {
  verify(token: string): Promise<AuthOutcome>
  /** Stops background work (a JWKS refresh). */
  close(): void
}

/** Subprotocol prefix a browser can carry its token in: `new WebSocket(url, ['tickwire', 'tickwire.bearer.' + jwt])`. */
export const BEARER_PROTOCOL = 'tickwire.bearer.'
/** The subprotocol the server answers with when the client offered a bearer entry. */
export const TICKWIRE_PROTOCOL = 'tickwire'

/**
 * The token of an upgrade and the subprotocol to answer with: from
 * `Sec-WebSocket-Protocol` (`tickwire.bearer.<jwt>`, the way a browser can
 * send one), else the `token` query parameter. The answer never echoes the
 * bearer entry.
 */
export function tokenOf(protocolHeader: string, queryToken: string | null): { token: string | null; protocol: string } {
  if (protocolHeader === '') return { token: queryToken, protocol: '' }
  let token: string | null = null
  const others: string[] = []
  for (const p of protocolHeader.split(',')) {
    const v = p.trim()
    if (v.startsWith(BEARER_PROTOCOL)) token ??= v.slice(BEARER_PROTOCOL.length)
    else if (v !== '') others.push(v)
  }
  // One answer (uWS would send the whole header, or its first entry): tickwire if offered, else the first one.
  return { token: token ?? queryToken, protocol: others.includes(TICKWIRE_PROTOCOL) ? TICKWIRE_PROTOCOL : (others[0] ?? '') }
}

const ID_CHARS = /^[A-Za-z0-9_-]*$/

/** Whether `identity` may join room `roomId` (null: quick play, which a token bound to a room does not allow). */
export function roomAllowed(identity: Identity, roomId: string | null): boolean {
  if (identity.room === null) return true
  if (roomId === null) return false
  return wildcardMatch(identity.room, roomId)
}

/**
 * `pattern` (with `*`: any run of characters) matches all of `text`. Linear
 * in practice (the classic backtrack-to-the-last-star walk, O(n x m) at
 * worst on 32-character ids), never a regex: a claim like `*a*a*a...` must
 * not stall the worker that checks it.
 */
export function wildcardMatch(pattern: string, text: string): boolean {
  if (!ID_CHARS.test(text)) return false // `*` stands for room-id characters only
  let p = 0
  let t = 0
  let star = -1
  let mark = 0
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++
      t++
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++
      mark = t
    } else if (star >= 0) {
      p = star + 1
      t = ++mark
    } else return false
  }
  while (p < pattern.length && pattern[p] === '*') p++
  return p === pattern.length
}
