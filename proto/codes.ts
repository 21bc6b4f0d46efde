/**
 * Wire codes of the tickwire protocol: message types and close codes.
 *
 * This module imports nothing. PROTOCOL.md beside it is the written spec;
 * test/proto-spec.test.ts checks that every code here is documented there.
 */

/**
 * Bumped on any incompatible change to a frame layout. A client announces the
 * version it speaks with the upgrade query `v` (absent: 2); the server answers
 * WELCOME with that version and writes REDIRECT in its layout. Version 3 added
 * `v`, the REDIRECT `url` (a public endpoint with a route), `ROOM_MOVED`,
 * WELCOME's five trailing elements, game messages (MESSAGE, CLIENT_MESSAGE)
 * and entity props (PROPS).
 */
export const PROTOCOL_VERSION = 3 as const
/** The oldest version a server still speaks (and that the SDK accepts in WELCOME). */
export const MIN_PROTOCOL_VERSION = 2 as const

/** First element of every frame (every frame is a MessagePack array). */
export const MsgType = {
  /**
   * server -> client: `[1, version, playerId, roomId, tickHz, entityId, historyTicks, fields, input, resumeToken]`;
   * protocol 3 adds `ackWindow, messageSeq, messages, clientMessages, props`
   */
  WELCOME: 1,
  /** server -> client: `[2, tick, baseAge, inputSeq, removed, changed, created]`; ids gap-coded */
  STATE: 2,
  /** server -> client: `[3, clientTime, roomPlayers]`: answer to PING */
  PONG: 3,
  /**
   * server -> client: the room lives on another worker; reconnect there (then close REDIRECT).
   * Protocol 2: `[4, port, host]`. Protocol 3: `[4, port, host, url]`, where a non-empty `url`
   * (the public endpoint with `route` and `room`) replaces `port` and `host`.
   */
  REDIRECT: 4,
  /** server -> client (protocol 3): `[5, kind, ...values]`: a game message; one of the reliable stream's frames */
  MESSAGE: 5,
  /** server -> client (protocol 3): `[6, entity, ...values]`: an entity's props (no values: cleared); one of the reliable stream's frames */
  PROPS: 6,
  /** client -> server: `[16, seq, ackTick, ...inputValues]` */
  INPUT: 16,
  /** client -> server: `[17, ackTick]`: ack without input */
  ACK: 17,
  /** client -> server: `[18, clientTime]`: answered by PONG */
  PING: 18,
  /** client -> server (protocol 3): `[19, kind, ...values]`: a game message of a kind WELCOME's `clientMessages` declares */
  CLIENT_MESSAGE: 19,
} as const
export type MsgType = (typeof MsgType)[keyof typeof MsgType]

/**
 * Close codes the server uses. 1000-1015 are the standard WebSocket codes;
 * 4000-4099 are tickwire's. The reason string sent in the close frame is the
 * `reason` here, so clients in any language can match on the number.
 */
export const CloseCode = {
  /** The server is shutting down (SIGTERM/SIGINT). Reconnect later. */
  SHUTDOWN: 1001,
  /**
   * A frame larger than the server's max message size. Reserved: the bundled
   * uWS build cuts such a connection without a close frame, so clients see 1006.
   */
  TOO_BIG: 1009,
  /** The frame is not valid MessagePack, or not an array with a known type. */
  BAD_MESSAGE: 4000,
  /** The frame decoded but a field has the wrong type, is not finite, or is out of range. */
  BAD_INPUT: 4001,
  /** More frames per second than the input rate limit allows, or more CLIENT_MESSAGEs than the message rate limit. */
  RATE_LIMITED: 4002,
  /**
   * The client could not keep up: too many bytes buffered toward it, skipped
   * for too long, or more unacknowledged game messages than the outbox holds
   * (then the seat is not held: a resume gets RESUME_EXPIRED, and the client joins afresh).
   */
  TOO_SLOW: 4003,
  /** The requested room has no free seat. */
  ROOM_FULL: 4004,
  /** The client acknowledged a tick that the server never sent to it, or an older tick than it acked before. */
  BAD_ACK: 4005,
  /** A text frame: the protocol is binary only. */
  TEXT_FRAME: 4006,
  /** The server has no room for another room or player (its configured limits are reached). */
  SERVER_FULL: 4007,
  /** A send that the client's state depends on was dropped by the transport; the client must rejoin. */
  DESYNC: 4008,
  /** The room's game code failed on the server; the room is closed. Rejoin (quick play or a new room). */
  INTERNAL_ERROR: 1011,
  /** Sent after a REDIRECT frame: the room lives on another worker; reconnect to the address it gave. */
  REDIRECT: 4009,
  /** The resume token is forged, tampered with, or not this player's for this room. Join afresh. */
  RESUME_INVALID: 4010,
  /** The seat is no longer held (resume window passed, room gone, or the player left). Join afresh. */
  RESUME_EXPIRED: 4011,
  /** The resume token was already used; each WELCOME carries a new one. Join afresh. */
  RESUME_USED: 4012,
  /** Another connection resumed this seat with its token; this one is closed. Do not reconnect. */
  REPLACED: 4013,
  /** One client address holds too much of what players share (rooms it created, room claims). Retry later; do not loop. */
  ADDRESS_LIMIT: 4014,
  /**
   * Another worker took this room over (the room directory gave its lease to
   * another worker while this one was cut off). Join the same room id again
   * through the public endpoint; the seat is not carried over. Protocol 3.
   */
  ROOM_MOVED: 4015,
  /**
   * The game refused the player (its `join` returned `{ refuse }`): the close
   * reason is the game's text (e.g. `team red is full`). Do not retry as is.
   */
  JOIN_REFUSED: 4016,
  /**
   * An operator closed this player, or its whole room, from the monitor page
   * (`--monitor`); the seat is not held. Do not reconnect by yourself.
   */
  CLOSED_BY_OPERATOR: 4017,
} as const
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]

/** The reason string sent with each close code (at most 123 bytes by the WebSocket spec). */
export const CloseReason: { readonly [K in keyof typeof CloseCode]: string } = {
  SHUTDOWN: 'server shutting down',
  TOO_BIG: 'message too big',
  BAD_MESSAGE: 'malformed message',
  BAD_INPUT: 'invalid input',
  RATE_LIMITED: 'input rate limit exceeded',
  TOO_SLOW: 'client too slow',
  ROOM_FULL: 'room full',
  BAD_ACK: 'invalid ack',
  TEXT_FRAME: 'binary frames only',
  SERVER_FULL: 'server full',
  DESYNC: 'transport dropped a state frame',
  INTERNAL_ERROR: 'room failed on the server',
  REDIRECT: 'room lives on another worker',
  RESUME_INVALID: 'invalid resume token',
  RESUME_EXPIRED: 'seat no longer held',
  RESUME_USED: 'resume token already used',
  REPLACED: 'session resumed elsewhere',
  ADDRESS_LIMIT: 'too many rooms from your address',
  ROOM_MOVED: 'room moved to another server',
  JOIN_REFUSED: 'join refused by the game',
  CLOSED_BY_OPERATOR: 'closed by the operator',
}

/** Close code number -> its name, e.g. 4003 -> 'TOO_SLOW'. */
export function closeCodeName(code: number): keyof typeof CloseCode | undefined {
  for (const k in CloseCode) {
    const key = k as keyof typeof CloseCode
    if (CloseCode[key] === code) return key
  }
  return undefined
}

/** Upgrade query limits, enforced with HTTP 400 before the upgrade. */
export const ROOM_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
export const MAX_NAME_BYTES = 32
/** Resume tokens are base64url and at most this long (checked with HTTP 400 before the upgrade). */
export const MAX_TOKEN_CHARS = 64
/** Upgrade query `route` (protocol 3): a worker name, as the load balancer routes on it. */
export const ROUTE_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
/**
 * Upgrade query `opts`: join options for the game's `join`, a JSON object of
 * at most MAX_JOIN_OPTIONS keys (names like identifiers, at most 32
 * characters) whose values are strings of at most MAX_JOIN_OPTION_BYTES UTF-8
 * bytes, finite numbers or booleans; the whole value at most
 * MAX_JOIN_OPTIONS_CHARS characters. Anything else gets HTTP 400.
 */
export const MAX_JOIN_OPTIONS_CHARS = 512
export const MAX_JOIN_OPTIONS = 16
export const MAX_JOIN_OPTION_BYTES = 128
export const JOIN_OPTION_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/
/** Longest REDIRECT `url` a client accepts (protocol 3). */
export const MAX_REDIRECT_URL_CHARS = 2048

/**
 * How often a client must acknowledge (PROTOCOL.md §6): at least once every
 * `ackEvery(ackWindow)` STATE frames it applies, counting from its last ack
 * (an INPUT's `ackTick` counts). The server resumes a paused client once
 * fewer than this many frames are unacked, so a client that acks this often
 * never deadlocks the window, and sends about a third as many ACKs as one
 * that acks every frame. `ackWindow` 0 (a protocol 2 WELCOME, which does not
 * say): 1, ack every frame.
 */
export function ackEvery(ackWindow: number): number {
  return Math.max(1, Math.floor(ackWindow / 3))
}
