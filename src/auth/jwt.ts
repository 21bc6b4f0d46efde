/**
 * The join-token verifier: JWTs checked with `jose` against one key chosen at
 * start-up (`--auth-secret`, `--auth-public-key` or `--auth-jwks`) and one
 * algorithm (`--auth-algorithm`), never the one a token names. Keys are
 * loaded once; a JWKS URL is fetched with a timeout and cached, so a verify
 * costs one signature check and no I/O. A bad key file is a start-up error;
 * a bad token, or keys that cannot be had, is an outcome, never a throw.
 */

import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  importJWK,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  type JSONWebKeySet,
  type KeyObject,
} from 'jose'
import type { Logger } from '../log.js'
import { AuthFailure, type AuthAlgorithm, type AuthOutcome, type Identity, type Verifier } from './auth.js'

/** Longer tokens are refused before any parsing or crypto (a join token is a few hundred bytes). */
export const MAX_TOKEN_CHARS = 4096
/** Most UTF-8 bytes of `name` (the wire's limit for a player name). */
export const MAX_NAME_BYTES = 32
/** What a `room` claim may be: a room id, or a pattern with `*`. */
export const ROOM_CLAIM_PATTERN = /^[A-Za-z0-9_*-]{1,32}$/

export interface VerifierOptions {
  readonly algorithm: AuthAlgorithm
  /** `--auth-secret` (HS256). */
  readonly secret: string
  /** `--auth-public-key`: a PEM SPKI file, or ''. */
  readonly publicKeyFile: string
  /** `--auth-jwks`: a JWKS file, an https:// URL (http:// only to a loopback host), or ''. */
  readonly jwks: string
  /** `--auth-issuer`; '' : not checked. */
  readonly issuer: string
  /** `--auth-audience`; '' : not checked. */
  readonly audience: string
  readonly clockToleranceSeconds: number
  readonly log: Logger
  /** JWKS URL: a fetch that takes longer fails (keys_unavailable). Default 2000 ms. */
  readonly jwksTimeoutMs?: number
  /** JWKS URL: keys are fetched again after this long. Default 10 min. */
  readonly jwksCacheMaxAgeMs?: number
  /** JWKS URL: an unknown `kid` refetches at most once per this long. Default 30 s. */
  readonly jwksCooldownMs?: number
  /**
   * Most verifications running at once; the rest wait their turn (FIFO). A
   * storm of upgrades handed to verify() together would otherwise run back
   * to back and hold up the tick (bench/auth.ts measures it). Default 16.
   */
  readonly maxInFlight?: number
  /** JWKS URL: after a failed fetch, answer from the last keys (or 503) this long before trying again. Default 1000 ms. */
  readonly jwksRetryMs?: number
}

type Key = CryptoKey | KeyObject | Uint8Array | JWTVerifyGetKey

/** The key types each algorithm takes (a JWKS member of another type is ignored by jose; we want at least one). */
const KEY_FITS: Record<Exclude<AuthAlgorithm, 'HS256'>, (jwk: JWK) => boolean> = {
  ES256: (k) => k.kty === 'EC' && k.crv === 'P-256',
  EdDSA: (k) => k.kty === 'OKP' && k.crv === 'Ed25519',
  RS256: (k) => k.kty === 'RSA',
}

/** A JWKS URL that could not be fetched (timeout, refused, not 200, not a key set). */
class KeysUnavailable extends Error {
  override name = 'KeysUnavailable'
}

/** jose's errors that say something about the token, not about fetching keys. */
function isTokenKeyError(err: unknown): boolean {
  return err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported
}

function fail(reason: AuthFailure): AuthOutcome {
  return { ok: false, status: reason === AuthFailure.KEYS ? 503 : 401, reason }
}

/** jose's error → why the token was refused. */
export function reasonOf(err: unknown): AuthFailure {
  if (err instanceof KeysUnavailable || err instanceof errors.JWKSTimeout) return AuthFailure.KEYS
  if (err instanceof errors.JWTExpired) return AuthFailure.EXPIRED
  if (err instanceof errors.JWTClaimValidationFailed) {
    // A claim of the wrong type ("exp": "soon") is a malformed token; a missing iss/aud is a wrong one.
    if (err.reason === 'invalid') return AuthFailure.MALFORMED
    switch (err.claim) {
      case 'nbf':
      case 'iat':
        return AuthFailure.NOT_YET_VALID
      case 'iss':
        return AuthFailure.ISSUER
      case 'aud':
        return AuthFailure.AUDIENCE
      default:
        return AuthFailure.MALFORMED
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return AuthFailure.ALGORITHM
  if (err instanceof errors.JWSSignatureVerificationFailed) return AuthFailure.SIGNATURE
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return AuthFailure.SIGNATURE
  return AuthFailure.MALFORMED
}

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

// C0, DEL and C1 controls; lone surrogates (they do not survive UTF-8).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]|\p{Cs}/u

/** `s` cut to at most `max` UTF-8 bytes, on a character boundary. */
function cutUtf8(s: string, max: number): string {
  if (utf8Bytes(s) <= max) return s
  let out = ''
  let bytes = 0
  for (const ch of s) {
    const n = utf8Bytes(ch)
    if (bytes + n > max) break
    out += ch
    bytes += n
  }
  return out
}

/** The Identity of a verified payload, or null when its claims are not what tickwire needs. */
export function identityOf(p: JWTPayload): Identity | null {
  const { sub, exp } = p
  const name: unknown = p.name
  const roles: unknown = p.roles
  const room: unknown = p.room
  if (typeof sub !== 'string' || sub === '') return null
  if (name !== undefined && (typeof name !== 'string' || name === '' || utf8Bytes(name) > MAX_NAME_BYTES || CONTROL.test(name))) return null
  if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === 'string'))) return null
  if (room !== undefined && room !== null && !(typeof room === 'string' && ROOM_CLAIM_PATTERN.test(room))) return null
  return {
    sub,
    // sub is an opaque id: controls are replaced, not refused, when it stands in for the name.
    name: typeof name === 'string' ? name : cutUtf8(sub.replace(new RegExp(CONTROL.source, 'gu'), '_'), MAX_NAME_BYTES),
    roles: Object.freeze(Array.isArray(roles) ? [...(roles as string[])] : []),
    room: typeof room === 'string' ? room : null,
    expiresAt: typeof exp === 'number' ? exp * 1000 : 0,
  }
}

function isJwkSet(v: unknown): v is JSONWebKeySet {
  return typeof v === 'object' && v !== null && Array.isArray((v as { keys?: unknown }).keys)
}

/** A JWKS's members must be public, and at least one must fit `alg`: checked at start, so a wrong file fails loudly. */
async function checkJwks(set: unknown, alg: Exclude<AuthAlgorithm, 'HS256'>, where: string): Promise<JSONWebKeySet> {
  if (!isJwkSet(set)) throw new Error(`${where}: not a JWK Set (expected {"keys": [...]})`)
  let fitting = 0
  for (const [i, jwk] of set.keys.entries()) {
    if (typeof jwk !== 'object' || jwk === null) throw new Error(`${where}: key ${i} is not an object`)
    if ('d' in jwk || jwk.kty === 'oct') throw new Error(`${where}: key ${jwk.kid ?? i} is a private or secret key; a JWKS here holds public keys only`)
    if (!KEY_FITS[alg](jwk)) continue
    try {
      await importJWK(jwk, alg)
    } catch (err) {
      throw new Error(`${where}: key ${jwk.kid ?? i} cannot be used for ${alg}: ${(err as Error).message}`)
    }
    fitting++
  }
  if (fitting === 0) throw new Error(`${where}: no key in the set fits --auth-algorithm ${alg} (${set.keys.length} keys)`)
  return set
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '')
  if (h === 'localhost') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  return h === '::1'
}

/**
 * A remote JWKS (jose caches it and refetches on an unknown `kid`, at most
 * once per cooldown) behind a guard: a failed fetch becomes KeysUnavailable,
 * the last keys fetched keep answering while the server is down, and for
 * `retryMs` after a failure no new fetch is tried, so a storm of joins during
 * an outage waits on one timeout, not one each.
 */
function remoteKeys(url: URL, o: VerifierOptions): { getKey: JWTVerifyGetKey; warm: () => void } {
  const remote = createRemoteJWKSet(url, {
    timeoutDuration: o.jwksTimeoutMs ?? 2000,
    cooldownDuration: o.jwksCooldownMs ?? 30_000,
    cacheMaxAge: o.jwksCacheMaxAgeMs ?? 600_000,
  })
  const retryMs = o.jwksRetryMs ?? 1000
  let failedAt = -Infinity
  let stale: JWTVerifyGetKey | null = null
  const onFailure = (err: unknown): JWTVerifyGetKey | null => {
    failedAt = performance.now()
    o.log.warn('auth: JWKS fetch failed', { jwks: url.origin + url.pathname, error: (err as Error).message, cause: String((err as Error).cause ?? '') })
    // jose keeps the last good set when a reload fails.
    const last = remote.jwks()
    if (last && !stale) stale = createLocalJWKSet(last)
    return stale
  }
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (stale) {
      // Stale-while-revalidate: during an outage joins verify with the last keys at once; one background
      // refetch per retryMs, never awaited by a join (else each would wait out the fetch timeout).
      if (performance.now() - failedAt >= retryMs) {
        failedAt = performance.now()
        remote.reload().then(
          () => {
            stale = null
          },
          (err: unknown) => void onFailure(err),
        )
      }
      return stale(header, token)
    }
    if (performance.now() - failedAt < retryMs) throw new KeysUnavailable('JWKS fetch failed recently')
    try {
      const key = await remote(header, token)
      stale = null
      return key
    } catch (err) {
      if (isTokenKeyError(err)) throw err
      const fallback = onFailure(err)
      if (fallback) return fallback(header, token)
      throw new KeysUnavailable('JWKS unavailable', { cause: err })
    }
  }
  // Fetch at start so the first joins do not wait; a failure here is logged and retried at the first join.
  const warm = (): void => {
    remote.reload().then(
      () => o.log.info('auth: JWKS fetched', { jwks: url.origin + url.pathname, keys: remote.jwks()?.keys.length ?? 0 }),
      (err: unknown) => void onFailure(err),
    )
  }
  return { getKey, warm }
}

async function loadKey(o: VerifierOptions): Promise<{ key: Key; warm: () => void }> {
  const none = (): void => {}
  if (o.algorithm === 'HS256') {
    if (o.secret.length < 32) throw new Error(`--auth-secret: HS256 needs at least 32 characters (got ${o.secret.length})`)
    return { key: new TextEncoder().encode(o.secret), warm: none }
  }
  const alg = o.algorithm
  if (o.publicKeyFile !== '') {
    let pem: string
    try {
      pem = readFileSync(o.publicKeyFile, 'utf8')
    } catch (err) {
      throw new Error(`--auth-public-key: cannot read ${o.publicKeyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    pem = pem.trim()
    if (!pem.startsWith('-----BEGIN PUBLIC KEY-----')) {
      const hint = pem.includes('PRIVATE KEY') ? ' (this is a private key: give the public one, e.g. openssl pkey -pubout)' : pem.includes('CERTIFICATE') ? ' (a certificate: give its public key, openssl x509 -pubkey -noout)' : ''
      throw new Error(`--auth-public-key: ${o.publicKeyFile} is not a PEM public key (expected -----BEGIN PUBLIC KEY-----)${hint}`)
    }
    try {
      return { key: await importSPKI(pem, alg), warm: none }
    } catch (err) {
      throw new Error(`--auth-public-key: ${o.publicKeyFile} is not a public key for ${alg}: ${(err as Error).message}`)
    }
  }
  if (o.jwks === '') throw new Error(`--auth-algorithm ${alg} needs --auth-public-key or --auth-jwks`)
  if (/^https?:\/\//i.test(o.jwks)) {
    let url: URL
    try {
      url = new URL(o.jwks)
    } catch {
      throw new Error(`--auth-jwks: ${JSON.stringify(o.jwks)} is not a URL`)
    }
    if (url.username !== '' || url.password !== '') throw new Error('--auth-jwks: the URL must not carry credentials')
    // Keys fetched in the clear could be swapped by anyone on the path; a local sidecar is the one exception.
    if (url.protocol === 'http:' && !isLoopback(url.hostname)) throw new Error(`--auth-jwks: ${url.origin} must be https:// (http:// only to a loopback address)`)
    const { getKey, warm } = remoteKeys(url, o)
    return { key: getKey, warm }
  }
  let json: unknown
  try {
    json = JSON.parse(readFileSync(o.jwks, 'utf8'))
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new Error(`--auth-jwks: cannot read ${o.jwks} as JSON: ${e.code ?? e.message}`)
  }
  const set = await checkJwks(json, alg, `--auth-jwks ${o.jwks}`)
  return { key: createLocalJWKSet(set), warm: none }
}

/**
 * Loads the key (once) and returns the verifier. Throws an Error naming the
 * option (`--auth-secret`, `--auth-public-key`, `--auth-jwks`) when the key
 * cannot be loaded or does not fit `--auth-algorithm`: a start-up error.
 */
export async function createVerifier(o: VerifierOptions): Promise<Verifier> {
  const { key, warm } = await loadKey(o)
  const options: JWTVerifyOptions = {
    algorithms: [o.algorithm], // pinned: the token's header never picks the algorithm
    requiredClaims: ['exp'], // join tokens are short-lived: one without an expiry would be good forever
    clockTolerance: o.clockToleranceSeconds,
    ...(o.issuer !== '' ? { issuer: o.issuer } : {}),
    ...(o.audience !== '' ? { audience: o.audience } : {}),
  }
  const toleranceMs = o.clockToleranceSeconds * 1000
  const maxInFlight = o.maxInFlight ?? 16
  let active = 0
  const waiting: (() => void)[] = []
  let closed = false
  warm()

  async function check(token: string): Promise<JWTPayload> {
    try {
      // Overloads differ between a key and a key function; both are the same call.
      return (await jwtVerify(token, key as Uint8Array, options)).payload
    } catch (err) {
      // A JWKS with several keys that fit a token without `kid`: try each.
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err
      let last: unknown = err
      for await (const k of err) {
        try {
          return (await jwtVerify(token, k, options)).payload
        } catch (e) {
          last = e
          if (!(e instanceof errors.JWSSignatureVerificationFailed)) break
        }
      }
      throw last
    }
  }

  return {
    async verify(token: string): Promise<AuthOutcome> {
      if (token.length > MAX_TOKEN_CHARS) return fail(AuthFailure.MALFORMED)
      if (closed) return fail(AuthFailure.KEYS)
      // A freed slot is handed to the next waiter, so `active` never exceeds the cap.
      if (active < maxInFlight) active++
      else await new Promise<void>((resolve) => waiting.push(resolve))
      let payload: JWTPayload
      try {
        payload = await check(token)
      } catch (err) {
        const reason = reasonOf(err)
        // Only the reason: the token is a credential, and error messages may quote its claims.
        o.log.debug('auth: token refused', { reason })
        return fail(reason)
      } finally {
        const next = waiting.shift()
        if (next) next()
        else active--
      }
      // jose checks `iat` only with maxTokenAge; one from the future is not valid yet either.
      if (typeof payload.iat === 'number' && payload.iat * 1000 > Date.now() + toleranceMs) return fail(AuthFailure.NOT_YET_VALID)
      const identity = identityOf(payload)
      if (!identity) return fail(AuthFailure.MALFORMED)
      return { ok: true, identity }
    },
    close(): void {
      // jose's remote set has no timers (it refetches on demand): nothing runs in the background.
      closed = true
    },
  }
}
