/**
 * What one process tells the monitor page (`--monitor`, see monitor/http.ts):
 * its rooms (players, capacity, age), the tick times of the last seconds,
 * and its recent disconnects; and the operator's closes of a room or a
 * player. A single process serves it itself; a worker answers its
 * supervisor over IPC (cluster/ipc.ts), which merges every worker's.
 *
 * Bounded everywhere: at most MAX_ROOMS rooms, MAX_PLAYERS_LISTED players
 * per room, MAX_DISCONNECTS disconnects, one ring of tick durations. The
 * tick path only writes two numbers into a typed array (`TickWindow.record`).
 */
import type { GameServer } from '../net/server.js'
import type { Room, Rooms } from '../sim/room.js'

/** Rooms one process lists at most (the fullest first). */
export const MAX_ROOMS = 500
/** Players listed by name per room (the count is always exact). */
export const MAX_PLAYERS_LISTED = 32
/** Recent disconnects kept per process. */
export const MAX_DISCONNECTS = 50
/** The window of tick figures, seconds. */
export const TICK_WINDOW_SECONDS = 10
/** Per-second tick figures kept for the page's charts (one a second: two minutes). */
export const HISTORY_SECONDS = 120

export interface MonitorPlayer {
  readonly id: number
  readonly name: string
  /** False while the seat is held for a resume (the connection dropped). */
  readonly connected: boolean
}

export interface MonitorRoom {
  readonly id: string
  readonly players: number
  readonly capacity: number
  /** Seconds since the room opened; null when not known (a room another machine lists). */
  readonly age: number | null
  readonly list: readonly MonitorPlayer[]
}

export interface TickFigures {
  /** Ticks in the window. */
  readonly ticks: number
  /** Tick wall time, median and 99th percentile over the window, seconds. */
  readonly p50: number
  readonly p99: number
  /** 1 / tick rate, seconds. */
  readonly budget: number
  /** Share of the window spent ticking (sum of tick times / window): mean tick time / budget at the full rate. */
  readonly load: number
}

/** One second of ticks, for the charts. */
export interface SecondFigures {
  /** Unix ms at the end of the second. */
  readonly at: number
  readonly p50: number
  readonly p99: number
  readonly load: number
}

export interface MonitorDisconnect {
  /** Unix time, ms. */
  readonly at: number
  /** As in `tickwire_disconnects_total{reason}`. */
  readonly reason: string
  readonly room: string | null
  readonly player: number
}

/** One process's figures. */
export interface ProcessState {
  readonly rooms: readonly MonitorRoom[]
  /** Rooms open (may exceed `rooms.length`, which is capped). */
  readonly roomCount: number
  readonly players: number
  readonly tick: TickFigures
  /** The last HISTORY_SECONDS seconds, oldest first. */
  readonly history: readonly SecondFigures[]
  readonly disconnects: readonly MonitorDisconnect[]
}

/** Durations of the last ticks and when they ended: a ring the tick path writes two numbers into. */
export class TickWindow {
  readonly #at: Float64Array
  readonly #dur: Float64Array
  #next = 0
  #size = 0

  /** `capacity`: ticks kept (a window's worth at the tick rate). */
  constructor(capacity: number) {
    this.#at = new Float64Array(capacity)
    this.#dur = new Float64Array(capacity)
  }

  /** One tick of `seconds` that ended at `nowMs` (monotonic). */
  record(nowMs: number, seconds: number): void {
    this.#at[this.#next] = nowMs
    this.#dur[this.#next] = seconds
    this.#next = (this.#next + 1) % this.#at.length
    if (this.#size < this.#at.length) this.#size++
  }

  /** Figures over the ticks that ended in the last `windowSeconds` before `nowMs`. */
  figures(nowMs: number, windowSeconds: number, budget: number): TickFigures {
    const from = nowMs - windowSeconds * 1000
    const d: number[] = []
    let sum = 0
    for (let i = 0; i < this.#size; i++) {
      if ((this.#at[i] as number) < from) continue
      const v = this.#dur[i] as number
      d.push(v)
      sum += v
    }
    d.sort((a, b) => a - b)
    const q = (p: number) => (d.length === 0 ? 0 : (d[Math.min(d.length - 1, Math.floor(p * d.length))] as number))
    return { ticks: d.length, p50: q(0.5), p99: q(0.99), budget, load: sum / windowSeconds }
  }
}

/** The last disconnects, newest last. */
export class DisconnectLog {
  readonly #items: MonitorDisconnect[] = []
  readonly #max: number

  constructor(max = MAX_DISCONNECTS) {
    this.#max = max
  }

  add(d: MonitorDisconnect): void {
    this.#items.push(d)
    if (this.#items.length > this.#max) this.#items.shift()
  }

  list(): readonly MonitorDisconnect[] {
    return this.#items.slice()
  }
}

/** Disconnects not worth an operator's eye: a redirect is routing (the player goes on elsewhere). */
const UNLISTED = new Set(['redirect'])

export interface LocalMonitorOptions {
  readonly rooms: Rooms
  readonly server: GameServer
  readonly tickHz: number
  /** Clocks (tests): Unix ms, and monotonic ms. */
  readonly now?: () => number
  readonly mono?: () => number
}

/** One process's monitor state and closes. */
export class LocalMonitor {
  readonly ticks: TickWindow
  readonly disconnects = new DisconnectLog()
  readonly #rooms: Rooms
  readonly #server: GameServer
  readonly #budget: number
  readonly #now: () => number
  readonly #mono: () => number
  /** When each room opened (Unix ms); rooms are the keys, so a disposed room's entry goes with it. */
  readonly #opened = new WeakMap<Room, number>()
  readonly #history: SecondFigures[] = []
  readonly #sampler: NodeJS.Timeout

  constructor(opts: LocalMonitorOptions) {
    this.#rooms = opts.rooms
    this.#server = opts.server
    this.#budget = 1 / opts.tickHz
    this.#now = opts.now ?? Date.now
    this.#mono = opts.mono ?? (() => performance.now())
    this.ticks = new TickWindow(Math.ceil(opts.tickHz * TICK_WINDOW_SECONDS) + 1)
    const created = opts.rooms.onCreate
    opts.rooms.onCreate = (room) => {
      created(room)
      this.#opened.set(room, this.#now())
    }
    opts.server.onDisconnect = (reason, room, player) => {
      if (!UNLISTED.has(reason)) this.disconnects.add({ at: this.#now(), reason, room, player })
    }
    // Once a second, off the tick path: the last second's figures (a sort of at most tick-hz numbers).
    this.#sampler = setInterval(() => {
      const f = this.ticks.figures(this.#mono(), 1, this.#budget)
      this.#history.push({ at: this.#now(), p50: f.p50, p99: f.p99, load: f.load })
      if (this.#history.length > HISTORY_SECONDS) this.#history.shift()
    }, 1000)
    this.#sampler.unref()
  }

  stop(): void {
    clearInterval(this.#sampler)
  }

  /** Called by the tick loop after each tick with its wall time. */
  tick(seconds: number): void {
    this.ticks.record(this.#mono(), seconds)
  }

  state(): ProcessState {
    const now = this.#now()
    const all = this.#rooms.list
    const sorted = all.length > MAX_ROOMS ? [...all].sort((a, b) => b.seats.length - a.seats.length).slice(0, MAX_ROOMS) : all
    const rooms: MonitorRoom[] = sorted.map((r) => {
      const list: MonitorPlayer[] = []
      for (const s of r.seats) {
        if (list.length >= MAX_PLAYERS_LISTED) break
        list.push({ id: s.playerId, name: s.name, connected: this.#server.connected(s) })
      }
      const opened = this.#opened.get(r)
      if (opened === undefined) this.#opened.set(r, now) // opened before the monitor: counted from first sight
      return { id: r.id, players: r.seats.length, capacity: r.maxPlayers, age: (now - (opened ?? now)) / 1000, list }
    })
    return {
      rooms,
      roomCount: all.length,
      players: this.#rooms.players,
      tick: this.ticks.figures(this.#mono(), TICK_WINDOW_SECONDS, this.#budget),
      history: this.#history.slice(),
      disconnects: this.disconnects.list(),
    }
  }

  /** Closes room `id`'s players CLOSED_BY_OPERATOR: how many, or -1 if this process has no such room. */
  closeRoom(id: string): number {
    return this.#server.closeRoom(id)
  }

  /** Closes player `id` CLOSED_BY_OPERATOR: its room's id, or null if this process has no such player. */
  closePlayer(id: number): string | null {
    return this.#server.closePlayer(id)
  }
}
