/**
 * Plain counters the hot path bumps (a property increment, no labels, no
 * allocation). The Prometheus registry (registry.ts) reads them at scrape
 * time, so nothing on the tick path touches prom-client.
 */
import { AuthFailure } from '../auth/auth.js'

/** Why a socket closed, as counted in `tickwire_disconnects_total{reason}`. */
export const DisconnectReason = {
  CLIENT_CLOSED: 'client_closed',
  ABNORMAL: 'abnormal',
  IDLE_TIMEOUT: 'idle_timeout',
  SHUTDOWN: 'shutdown',
  TOO_SLOW: 'too_slow',
  RATE_LIMITED: 'rate_limited',
  BAD_MESSAGE: 'bad_message',
  BAD_INPUT: 'bad_input',
  BAD_ACK: 'bad_ack',
  TEXT_FRAME: 'text_frame',
  TOO_BIG: 'too_big',
  ROOM_FULL: 'room_full',
  SERVER_FULL: 'server_full',
  DESYNC: 'desync',
  INTERNAL_ERROR: 'internal_error',
  REDIRECT: 'redirect',
  RESUME_REFUSED: 'resume_refused',
  REPLACED: 'replaced',
  ADDRESS_LIMIT: 'address_limit',
  /** The room's directory registration was taken over by another worker (this one was cut off): players rejoin there. */
  ROOM_MOVED: 'room_moved',
  /** The game's join refused the player with a reason (JOIN_REFUSED). */
  JOIN_REFUSED: 'join_refused',
  /** More unacknowledged game messages and props than --outbox-bytes/--outbox-frames (closed TOO_SLOW; the seat is not held). */
  OUTBOX_FULL: 'outbox_full',
  /** An operator closed the player, or its room, from the monitor page (CLOSED_BY_OPERATOR). */
  CLOSED_BY_OPERATOR: 'closed_by_operator',
} as const
export type DisconnectReason = (typeof DisconnectReason)[keyof typeof DisconnectReason]

/** Why a client message was rejected, as counted in `tickwire_inputs_rejected_total{reason}`. */
export const RejectReason = {
  MALFORMED: 'malformed',
  TYPE: 'type',
  RANGE: 'range',
  SEQUENCE: 'sequence',
  BAD_ACK: 'bad_ack',
  RATE_LIMITED: 'rate_limited',
  /** CLIENT_MESSAGEs faster than --message-rate (closed RATE_LIMITED). */
  MESSAGE_RATE: 'message_rate',
  TEXT_FRAME: 'text_frame',
  TOO_BIG: 'too_big',
} as const
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason]

/** Why a player's frame was not sent this tick: `tickwire_deltas_skipped_total{reason}`. */
export const SkipReason = { ACK_WINDOW: 'ack_window', BUFFERED: 'buffered' } as const
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason]

/** Why a full state was sent: `tickwire_full_states_total{reason}`. */
export const FullStateReason = { JOIN: 'join', BASELINE_EXPIRED: 'baseline_expired' } as const
export type FullStateReason = (typeof FullStateReason)[keyof typeof FullStateReason]

/** Why an upgrade was refused with an HTTP status: `tickwire_http_rejected_total{reason}`. */
export const UpgradeRejectReason = {
  BAD_QUERY: 'bad_query',
  NOT_READY: 'not_ready',
  NOT_FOUND: 'not_found',
  DIRECTORY: 'directory',
  /** A browser page of an origin not in --allowed-origins (403). */
  ORIGIN: 'origin',
  /** Too many connections or upgrades from one address (429; see AddressLimit). */
  ADDRESS_LIMIT: 'address_limit',
  /** Not a valid WebSocket handshake: wrong version (426), bad key (400), GET /play without an upgrade (426). */
  HANDSHAKE: 'handshake',
  /** A join token missing, invalid or expired (401), not allowing the room (403), or its keys unavailable (503); see AuthFailure. */
  AUTH: 'auth',
} as const
export type UpgradeRejectReason = (typeof UpgradeRejectReason)[keyof typeof UpgradeRejectReason]

/** Which per-address budget refused something: `tickwire_address_limited_total{reason}`. */
export const AddressLimit = {
  /** --max-connections-per-address: upgrade refused with 429. */
  CONNECTIONS: 'connections',
  /** --upgrade-rate-per-address: upgrade refused with 429. */
  UPGRADE_RATE: 'upgrade_rate',
  /** --max-rooms-per-address: a room creation refused (close ADDRESS_LIMIT). */
  ROOMS: 'rooms',
  /** --max-rooms-per-address in the directory: a room claim refused (close ADDRESS_LIMIT). */
  CLAIMS: 'claims',
  /** --max-held-per-address: a dropped seat released at once instead of held. */
  HELD: 'held',
  /** --max-idle-rooms-per-address: a dropped seat not held because only held seats would keep its room alive. */
  IDLE_ROOMS: 'idle_rooms',
} as const
export type AddressLimit = (typeof AddressLimit)[keyof typeof AddressLimit]

/** Where a REDIRECT sent a client: `tickwire_redirects_total{kind}`. */
export const RedirectKind = {
  /** To the owner's direct port (no --public-url, or a protocol-2 client). */
  DIRECT: 'direct',
  /** To --public-url with route=<owner> (through the load balancer). */
  ROUTE: 'route',
} as const
export type RedirectKind = (typeof RedirectKind)[keyof typeof RedirectKind]

/** How a resume attempt ended: `tickwire_resumes_total{outcome}`. */
export const ResumeOutcome = { RESUMED: 'resumed', INVALID: 'invalid', EXPIRED: 'expired', USED: 'used' } as const
export type ResumeOutcome = (typeof ResumeOutcome)[keyof typeof ResumeOutcome]

/** How a `GET /rooms` ended: `tickwire_room_list_requests_total{outcome}` (src/net/room-list.ts). */
export const RoomListOutcome = {
  OK: 'ok',
  /** 400: an unknown parameter or a bad value. */
  BAD_QUERY: 'bad_query',
  /** 405: not GET or HEAD. */
  METHOD: 'method',
  /** 429: over the per-address rate. */
  RATE_LIMITED: 'rate_limited',
  /** 503: the directory did not answer. */
  UNAVAILABLE: 'unavailable',
} as const
export type RoomListOutcome = (typeof RoomListOutcome)[keyof typeof RoomListOutcome]

function zeroes<T extends string>(values: Record<string, T>): Record<T, number> {
  const out = {} as Record<T, number>
  for (const v of Object.values(values)) out[v] = 0
  return out
}

export class Stats {
  connections = 0
  bytesSent = 0
  framesSent = 0
  messagesSent = 0
  bytesReceived = 0
  messagesReceived = 0
  inputsApplied = 0
  /** Game message and props frames queued for players (one per player a frame goes to). */
  gameMessagesQueued = 0
  /** CLIENT_MESSAGEs accepted and handed to the room. */
  gameMessagesReceived = 0
  /** Players whose outbox overflowed (closed TOO_SLOW, or their held seat released). */
  outboxOverflows = 0
  /** Rooms closed because their game code (create, join, leave, step) or their replication threw; each counts once. */
  roomErrors = 0
  readonly disconnects = zeroes(DisconnectReason)
  readonly rejected = zeroes(RejectReason)
  readonly skipped = zeroes(SkipReason)
  readonly fullStates = zeroes(FullStateReason)
  readonly upgradesRejected = zeroes(UpgradeRejectReason)
  /** Clients sent to the worker that owns their room, by where. */
  readonly redirects = zeroes(RedirectKind)
  /** Upgrades that carried route=R naming another worker (the load balancer did not keep its contract). */
  routeMisses = 0
  /** Held seats released because nobody resumed them within the window. */
  holdsExpired = 0
  readonly resumes = zeroes(ResumeOutcome)
  readonly addressLimited = zeroes(AddressLimit)
  /** Join tokens that verified (`--auth`). */
  authAccepted = 0
  /** Join tokens refused, by why (src/auth/auth.ts AuthFailure). */
  readonly authRefused = zeroes(AuthFailure)
  /** `GET /rooms` requests, by outcome. */
  readonly roomList = zeroes(RoomListOutcome)
  /** Rooms whose game `meta()` threw or returned a bad value (each logged once, listed as {}). */
  badRoomMeta = 0
  /** Times the public port stopped accepting because file descriptors ran short (see fd guard). */
  acceptPauses = 0
}
