/** Messages between the load generator and its bot processes (Node IPC, JSON). */

/** `floor` is the floor peer (bench/peers/floor), driven by tickwire's own bots. */
export type AdapterName = 'tickwire' | 'ws-json' | 'colyseus' | 'floor'

export type ToBots =
  | {
      readonly t: 'init'
      readonly adapter: AdapterName
      readonly url: string
      /** Inputs per second per bot. */
      readonly inputHz: number
      /** Game messages per second per bot, of the kinds the game declares (0: none). */
      readonly messageHz: number
      /** One bot in this many decodes and checks everything it receives (1: all; 0: none). */
      readonly checkEvery: number
      /** Source addresses to spread connections over; empty: the system's choice. */
      readonly addresses: readonly string[]
      /** Share of bots (0..1) that join named rooms instead of quick play. */
      readonly named: number
      /** Share of bots (0..1) that send an out-of-range input value (tickwire adapter only), so the server drops them: checks the report. */
      readonly badInputs: number
      /** This process's index, to make bot names and room names unique. */
      readonly proc: number
    }
  /** Connect `n` more bots, `perSecond` at most. */
  | { readonly t: 'add'; readonly n: number; readonly perSecond: number }
  /** Stop reading on this share of the bots (0..1), or read again (0). */
  | { readonly t: 'pause'; readonly fraction: number }
  /** Report now (a window starts or ends); the report carries `id`. */
  | { readonly t: 'flush'; readonly id: number }
  | { readonly t: 'stop' }

/** Counters since the bot process started (the latency counts are since the last report). */
export interface BotStats {
  readonly connected: number
  readonly opened: number
  readonly failed: number
  /** Connections the server closed or that were cut (not by the bot). */
  readonly dropped: number
  readonly dropCodes: Record<string, number>
  readonly stateMsgs: number
  readonly stateBytes: number
  readonly otherMsgs: number
  readonly otherBytes: number
  readonly inputs: number
  /** Game messages (CLIENT_MESSAGE) sent. */
  readonly messages: number
  /** Standalone ACK frames sent (acks carried by INPUTs are not counted here). */
  readonly acksSent: number
  /** Every client frame sent: inputs, acks, messages, pings; over stateMsgs it is client frames per STATE. */
  readonly framesSent: number
  readonly errors: number
  readonly errorSamples: string[]
  readonly failSamples: string[]
  readonly paused: number
  /** Bots done connecting (connected or failed) out of those asked for. */
  readonly pending: number
  /** Latency histograms since the last report: all bots, and bots that were never paused. */
  readonly latency: { counts: number[]; max: number; sum: number }
  readonly latencyUnpaused: { counts: number[]; max: number; sum: number }
  /** Sent/received bytes and messages of bots that were never paused (scenario iii reports on them). */
  readonly unpausedStateMsgs: number
  readonly unpausedStateBytes: number
  readonly unpausedDropped: number
  /** Bots connected that were never paused. */
  readonly unpausedConnected: number
  /** Inputs no state reflected within STALE_MS: counted in the latency histograms at that age (a lower bound). */
  readonly stale: number
}

/** An input not reflected after this long is recorded at this age and given up on. */
export const STALE_MS = 1000

export type FromBots = { readonly t: 'ready' } | { readonly t: 'stats'; readonly stats: BotStats; readonly flush: number }
