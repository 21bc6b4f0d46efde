/**
 * Where the monitor's figures come from: `localSource` for a single process
 * (worker 0 of its machine), `ClusterSource` for a supervisor, which asks
 * each worker over IPC (cluster/ipc.ts) and waits at most `waitMs` for each,
 * as the merged /metrics does: a busy worker shows `up: false` with its last
 * figures, and never holds up the page. With a Redis directory, rooms of
 * other machines come from one worker's `listRooms()`, read-only.
 */
import { MAX_DISCONNECTS, type ProcessState } from './local.js'
import type { LocalMonitor } from './local.js'
import type { CloseOutcome, ListedMonitorRoom, MonitorSource, MonitorState, MonitorWorker } from './http.js'

/** A room another machine runs, as the room directory lists it. */
export interface DirectoryRoom {
  readonly id: string
  readonly worker: string
  readonly players: number
  readonly capacity: number
}

/** How long the supervisor waits for each worker's answer (ms). */
export const MONITOR_WAIT_MS = 1000

/** A single process: its own figures, as worker 0. */
export function localSource(machine: string, local: LocalMonitor): MonitorSource {
  const name = `${machine}-0`
  return {
    state: () => Promise.resolve(merge(machine, [{ worker: 0, name, up: true, state: local.state() }], null)),
    closeRoom: (id) => {
      const closed = local.closeRoom(id)
      return Promise.resolve(closed < 0 ? { found: false } : { found: true, worker: 0, room: id, closed })
    },
    closePlayer: (worker, id) => {
      const room = worker === 0 ? local.closePlayer(id) : null
      return Promise.resolve(room === null ? { found: false } : { found: true, worker: 0, room, closed: 1 })
    },
  }
}

/** One worker's answer, or null: not asked (not ready) or no answer in time. */
export type Ask<T> = (slot: number) => Promise<T | null>

export interface ClusterSourceOptions {
  readonly machine: string
  readonly workers: number
  /** Whether the slot has a ready worker (a busy one is ready; a dead or restarting one is not). */
  readonly ready: (slot: number) => boolean
  /** The slot's state; `listing`: also the room directory's listing (Redis), else null. */
  readonly state: (slot: number, listing: boolean) => Promise<{ state: ProcessState; listing: readonly DirectoryRoom[] | null } | null>
  /** Closes in the slot: `closed` -1 when it has no such room or player. */
  readonly close: (slot: number, what: { room: string | null; player: number | null }) => Promise<{ room: string | null; closed: number } | null>
  /** Whether the directory is shared with other machines (Redis): then one worker is asked for its listing. */
  readonly shared: boolean
}

export class ClusterSource implements MonitorSource {
  readonly #o: ClusterSourceOptions
  readonly #last: (ProcessState | null)[]

  constructor(o: ClusterSourceOptions) {
    this.#o = o
    this.#last = new Array<ProcessState | null>(o.workers).fill(null)
  }

  async state(): Promise<MonitorState> {
    const o = this.#o
    const slots = Array.from({ length: o.workers }, (_, i) => i)
    const lister = o.shared ? slots.find((i) => o.ready(i)) : undefined
    const answers = await Promise.all(slots.map((i) => (o.ready(i) ? o.state(i, i === lister) : Promise.resolve(null))))
    let listing: readonly DirectoryRoom[] | null = null
    const per = slots.map((i) => {
      const a = answers[i] ?? null
      if (a) {
        this.#last[i] = a.state
        if (a.listing) listing = a.listing
      } else if (!o.ready(i)) this.#last[i] = null // dead or restarting: its rooms are gone
      return { worker: i, name: `${o.machine}-${i}`, up: a !== null, state: this.#last[i] ?? null }
    })
    return merge(o.machine, per, listing)
  }

  async closeRoom(id: string): Promise<CloseOutcome> {
    const o = this.#o
    const slots = Array.from({ length: o.workers }, (_, i) => i).filter((i) => o.ready(i))
    const answers = await Promise.all(slots.map((i) => o.close(i, { room: id, player: null })))
    const i = answers.findIndex((a) => a !== null && a.closed >= 0)
    if (i >= 0) return { found: true, worker: slots[i] as number, room: id, closed: (answers[i] as { closed: number }).closed }
    return answers.some((a) => a === null) ? { unavailable: true } : { found: false }
  }

  async closePlayer(worker: number, id: number): Promise<CloseOutcome> {
    const o = this.#o
    if (worker >= o.workers || !o.ready(worker)) return { found: false }
    const a = await o.close(worker, { room: null, player: id })
    if (!a) return { unavailable: true }
    return a.closed < 0 || a.room === null ? { found: false } : { found: true, worker, room: a.room, closed: a.closed }
  }
}

const EMPTY_TICK = { ticks: 0, p50: 0, p99: 0, budget: 0, load: 0 }

/** Workers' states -> the API's answer; rooms of other machines from the directory's listing. */
function merge(machine: string, per: readonly { worker: number; name: string; up: boolean; state: ProcessState | null }[], listing: readonly DirectoryRoom[] | null): MonitorState {
  const workers: MonitorWorker[] = []
  const rooms: ListedMonitorRoom[] = []
  const disconnects: (ProcessState['disconnects'][number] & { worker: number })[] = []
  for (const p of per) {
    const s = p.state
    workers.push({ worker: p.worker, name: p.name, up: p.up, players: s?.players ?? 0, rooms: s?.roomCount ?? 0, tick: s?.tick ?? EMPTY_TICK, history: s?.history ?? [] })
    if (!s) continue
    for (const r of s.rooms) rooms.push({ ...r, machine, worker: p.worker, workerName: p.name, remote: false })
    for (const d of s.disconnects) disconnects.push({ ...d, worker: p.worker })
  }
  const local = new Set(per.map((p) => p.name))
  for (const r of listing ?? []) {
    if (local.has(r.worker) || r.worker.replace(/-\d+$/, '') === machine) continue // this machine's: the workers said more
    rooms.push({ id: r.id, machine: r.worker.replace(/-\d+$/, ''), worker: null, workerName: r.worker, players: r.players, capacity: r.capacity, age: null, list: [], remote: true })
  }
  rooms.sort((a, b) => Number(a.remote) - Number(b.remote) || b.players - a.players || a.id.localeCompare(b.id))
  disconnects.sort((a, b) => b.at - a.at)
  return { machine, at: Date.now(), workers, rooms, disconnects: disconnects.slice(0, MAX_DISCONNECTS) }
}
