/**
 * One player connection as the network layer keeps it (uWS's per-socket user
 * data), the per-room state it keeps (`Room.link`), and the one way it
 * closes a socket. Shared by the upgrade (upgrade.ts), seating (seats.ts),
 * input handling (input.ts) and the server (server.ts).
 */
import { CloseCode, CloseReason, type ClientMessage } from '../../proto/index.js'
import type { DisconnectReason } from '../metrics/stats.js'
import type { RoomReplicator, Viewer } from '../replicate/replicator.js'
import type { Seat } from '../sim/room.js'
import type { Identity } from '../auth/auth.js'
import type { JoinOptions } from '../sim/game.js'
import type { AddressEntry } from './addresses.js'
import type { Session as HoldSession } from './holds.js'
import type { TokenClaims } from './resume.js'
import type { WebSocket } from './uws.js'

/** Per-room state of the network layer (`Room.link`). */
export interface RoomLink {
  readonly rep: RoomReplicator
  /** Random id of this incarnation of the room, covered by resume tokens. */
  readonly instance: string
  /** The address that created the room (its budget counts the room until disposal). */
  readonly creator: AddressEntry | null
}

/** A player's hold on a seat, across connections (`Seat.link`). */
export type Session = HoldSession<Conn>

/** What a connection asked for beyond a plain join, decided at the upgrade. */
export type Intent =
  | { readonly kind: 'join' }
  | { readonly kind: 'resume'; readonly claims: TokenClaims }
  | { readonly kind: 'redirect'; readonly frame: Uint8Array; readonly route: boolean }
  | { readonly kind: 'refuse'; readonly code: keyof typeof CloseCode; readonly reason: DisconnectReason }

export const JOIN: Intent = { kind: 'join' }

/** One connection; uWS's per-socket user data. */
export interface Conn {
  ws: WebSocket<Conn> | null
  /** The client's address (for logs) and the budget it counts against. */
  readonly address: string
  readonly addr: AddressEntry
  readonly playerId: number
  /** The protocol version the client announced (`v`; 2 when absent): WELCOME and REDIRECT are written for it. */
  readonly version: number
  /** Who the join token says the player is (`--auth`); null without one. */
  readonly identity: Identity | null
  intent: Intent
  readonly name: string
  /** The client's join options (query `opts`), for the game's join. */
  readonly options: JoinOptions
  readonly roomId: string | null
  seat: Seat | null
  session: Session | null
  viewer: Viewer | null
  /** Token bucket for the input rate limit (every frame). */
  tokens: number
  lastRefill: number
  /** Token bucket for the game message rate limit (CLIENT_MESSAGE only). */
  msgTokens: number
  msgRefill: number
  /** Highest input sequence number received. */
  lastSeq: number
  /** When the current run of skipped frames began (0: not skipping). */
  stallSince: number
  /** Set before the server closes the socket, so the close handler counts the right reason. */
  closing: DisconnectReason | null
  readonly msg: ClientMessage
}

/**
 * Closes a socket with one of our close codes; the close handler counts
 * `reason`. `text` replaces the code's usual reason (cut to the 123 bytes a
 * close frame allows). A second close is a no-op.
 */
export function closeConn(conn: Conn, code: keyof typeof CloseCode, reason: DisconnectReason, text?: string): void {
  const ws = conn.ws
  if (!ws || conn.closing) return
  conn.closing = reason
  ws.end(CloseCode[code], text === undefined || text === '' ? CloseReason[code] : closeText(text))
}

/** `text` cut to at most 123 bytes of UTF-8 at a character boundary. */
export function closeText(text: string): string {
  const bytes = Buffer.from(text)
  if (bytes.length <= 123) return text
  let end = 123
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--
  return bytes.subarray(0, end).toString()
}
