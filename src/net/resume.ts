/**
 * Resume tokens: `<instance>.<gen>.<mac>`. The MAC (HMAC-SHA256, 128 bits)
 * covers the room id, the room's instance (a random id per room incarnation,
 * so a token outlives neither a restarted worker nor a re-created room), the
 * player id, the seat's generation (bumped on every resume, so a token
 * works once) and, with `--auth`, the player's `sub` (so only the same
 * authenticated player can resume the seat). Any worker can check the MAC without state; only the room's
 * owner knows whether the seat is still held and at which generation.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

const MAC_BYTES = 16
const TOKEN_PATTERN = /^([A-Za-z0-9_-]{11})\.(0|[1-9][0-9]{0,9})\.([A-Za-z0-9_-]{22})$/

export interface TokenClaims {
  /** The room incarnation the seat was issued in. */
  readonly instance: string
  /** The seat generation the token was issued for. */
  readonly gen: number
}

export class ResumeTokens {
  readonly #key: Buffer

  /** @param secret HMAC key, shared by every worker of one deployment. */
  constructor(secret: Buffer) {
    if (secret.length < 16) throw new Error('resume secret must be at least 16 bytes')
    this.#key = secret
  }

  /** A fresh random room instance id (8 bytes, base64url). */
  static newInstance(): string {
    return randomBytes(8).toString('base64url')
  }

  /** @param sub the authenticated player's `sub` ('' : none), bound into the MAC. */
  issue(roomId: string, instance: string, playerId: number, gen: number, sub = ''): string {
    return `${instance}.${gen}.${this.#mac(roomId, instance, playerId, gen, sub).toString('base64url')}`
  }

  /** The token's claims if its MAC is right for this room and player; null if it is malformed, forged or someone else's. */
  verify(token: string, roomId: string, playerId: number, sub = ''): TokenClaims | null {
    const m = TOKEN_PATTERN.exec(token)
    if (!m) return null
    const instance = m[1] as string
    const gen = Number(m[2])
    if (gen > 0xffffffff) return null
    const given = Buffer.from(m[3] as string, 'base64url')
    // Re-encoded and compared: base64url's last character has spare bits, so two spellings decode alike.
    if (given.length !== MAC_BYTES || given.toString('base64url') !== m[3]) return null
    return timingSafeEqual(given, this.#mac(roomId, instance, playerId, gen, sub)) ? { instance, gen } : null
  }

  #mac(roomId: string, instance: string, playerId: number, gen: number, sub: string): Buffer {
    return createHmac('sha256', this.#key).update(`tickwire-resume-2\0${roomId}\0${instance}\0${playerId}\0${gen}\0${sub}`).digest().subarray(0, MAC_BYTES)
  }
}
