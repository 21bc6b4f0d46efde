/**
 * What the load generator needs from a server under test: a way to connect
 * one bot and drive it. tickwire's adapter is bench/load/tickwire.ts; the
 * peers' are bench/peers/<name>/adapter.ts. Every adapter plays the same
 * scenario: the reference arena, quick play or named rooms of up to 64
 * players, a stick input a few times a second. An adapter that learns the
 * game's input schema from the server (tickwire's WELCOME) exposes it, and
 * the bots then send valid inputs for whatever game the server runs.
 */
import type { InputSpec, MessageSpec, Value } from '../../proto/index.js'

/** One simulated player. */
export interface Bot {
  /** Sends input number `seq` (1, 2, 3, ... per bot): a stick position, each axis an integer in [-100, 100]. */
  input(seq: number, mx: number, my: number): void
  /**
   * The input values the server's game declares (name, min, max), once known;
   * undefined: the adapter speaks only the arena stick (`input`).
   */
  readonly schema?: readonly InputSpec[] | undefined
  /** Sends input number `seq` with one integer per `schema` entry. Present whenever `schema` can be. */
  inputValues?(seq: number, values: readonly number[]): void
  /** The game messages a client may send (WELCOME's clientMessages), once known; undefined or empty: none. */
  readonly messages?: readonly MessageSpec[] | undefined
  /** Sends game message number `kind` of `messages` with its values in declared order. */
  message?(kind: number, values: readonly Value[]): void
  /** Stops reading from the socket (the kernel buffers fill, the server sees a slow client). */
  pause(): void
  /** Reads again. */
  resume(): void
  /** Closes the connection politely. */
  close(): void
}

export interface BotEvents {
  /**
   * A state message arrived: its payload bytes, and the newest input `seq`
   * the server reports applied for this bot as of that state (0: none yet).
   * The time from sending input `seq` to the first state with
   * `appliedSeq >= seq` is the input-to-state latency.
   */
  state(bytes: number, appliedSeq: number): void
  /** Any other server message (welcome, pong, ...): its payload bytes. */
  other(bytes: number): void
  /** The bot's check of what it received failed (state that does not add up). Reported, never ignored. */
  error(err: Error): void
  /** The bot sent a frame; `ack`: a standalone ACK. Optional: adapters that do not call it count only inputs and messages. */
  sent?(ack: boolean): void
  /** The connection closed: the close code (1006 when cut). Not called after the bot's own close(). */
  close(code: number): void
}

export interface ConnectOptions {
  /** Server address, e.g. ws://127.0.0.1:9001/play (the adapter may use its own path or protocol). */
  readonly url: string
  /** Named room to join, or null for quick play. */
  readonly room: string | null
  readonly name: string
  /** Source address for the TCP connection (127.0.0.x), so one machine can open more than ~28k connections; undefined: the system's choice. */
  readonly localAddress: string | undefined
  /** Decode and check the state this bot receives (a sample of bots does; the rest only count bytes). */
  readonly check: boolean
}

export interface Adapter {
  /** 'tickwire', 'ws-json', 'colyseus'. */
  readonly name: string
  /** Connects one bot; resolves once it is in a room (state starts flowing). Rejects with a clear error. */
  connect(opts: ConnectOptions, events: BotEvents): Promise<Bot>
}
