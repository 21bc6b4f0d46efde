/**
 * The one test suite every room directory implementation passes
 * (src/directory/directory.ts): the supervisor's MemoryDirectory members
 * (test/directory.test.ts) and RedisDirectory on a real redis-server
 * (test/redis-directory.test.ts).
 *
 * Written against what the interface promises, not what one implementation
 * chooses: the memory directory places a new room on the least-loaded worker,
 * Redis on the asker, so a case asks the directory who owns a room and then
 * checks that everyone agrees. Registration may be asynchronous (Redis), so
 * "eventually" means a bounded poll.
 *
 * @example
 *   directorySuite(t, 'memory', async (t, o) => ({ dirs: [...], kill: async (i) => ... }))
 */
import type { Test } from 'tap'
import { DirectoryUnavailable, type LocateResult, type Placement, type RoomDirectory } from '../../src/directory/directory.js'

/** Handles of N workers sharing one directory. */
export interface DirectoryWorld {
  readonly dirs: readonly RoomDirectory[]
  /**
   * Ends handle `i` abruptly, as kill -9 of its worker would (nothing
   * released), and resolves once the directory treats that worker as dead
   * (memory: at once, the supervisor drops the slot; Redis: once its node
   * record expired).
   */
  kill(i: number): Promise<void>
}

export interface WorldOptions {
  /** Handles to build (at least 3). */
  readonly workers: number
  /** Pending claims per client address; 0: no cap. */
  readonly maxClaimsPerAddress: number
}

/** Builds a world; registers its own teardown on `t`. */
export type MakeWorld = (t: Test, o: WorldOptions) => Promise<DirectoryWorld>

/** How long anything asynchronous may take (a busy machine: generous). */
const EVENTUALLY_MS = 10_000

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Polls `cond` every 25 ms until true; throws after `ms`. */
export async function eventually(cond: () => Promise<boolean> | boolean, what: string, ms = EVENTUALLY_MS): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await cond()) return
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(25)
  }
}

/** The handle a placement answered to `asker` names. */
export function ownerOf(dirs: readonly RoomDirectory[], asker: number, p: LocateResult): RoomDirectory {
  if (p === null || p === 'address_limit') throw new Error(`expected a placement, got ${JSON.stringify(p)}`)
  if (p.local) return dirs[asker] as RoomDirectory
  const d = dirs.find((x) => x.self.name === p.name)
  if (!d) throw new Error(`placement names ${p.name}, none of the workers`)
  return d
}

/** What `from` must answer for a room `owner` holds. */
export function expected(from: RoomDirectory, owner: RoomDirectory): Placement {
  return from === owner ? { local: true } : { local: false, ...owner.self }
}

const same = (a: LocateResult, b: LocateResult) => JSON.stringify(a) === JSON.stringify(b)

/** Resolves when every live handle locates `id` (without create) at `owner`. */
async function agreed(dirs: readonly RoomDirectory[], id: string, owner: RoomDirectory, what: string): Promise<void> {
  for (const d of dirs) await eventually(async () => same(await d.locate(id, false, '10.0.0.1'), expected(d, owner)), `${d.self.name} to see ${id} at ${owner.self.name} (${what})`)
}

export function directorySuite(t: Test, name: string, make: MakeWorld): void {
  const world = (t: Test, maxClaimsPerAddress = 0) => make(t, { workers: 3, maxClaimsPerAddress })

  t.test(`${name}: a room created through one worker is found by every worker at its owner's address, with or without create`, async (t) => {
    const { dirs } = await world(t)
    const [a, b, c] = dirs as [RoomDirectory, RoomDirectory, RoomDirectory]
    const p = await a.locate('friends', true, '10.0.0.1')
    const owner = ownerOf(dirs, 0, p)
    owner.opened('friends')
    await agreed(dirs, 'friends', owner, 'after open')
    for (const d of [a, b, c]) t.same(await d.locate('friends', true, '10.0.0.2'), expected(d, owner), `${d.self.name} with create: the same owner, no new claim`)
    t.same(await owner.locate('friends', false, '10.0.0.3'), { local: true }, 'the owner itself: local')
  })

  t.test(`${name}: concurrent creates of one id through different workers agree on one owner`, async (t) => {
    const { dirs } = await world(t)
    const [a, b, c] = dirs as [RoomDirectory, RoomDirectory, RoomDirectory]
    for (let k = 0; k < 10; k++) {
      const id = `race-${k}`
      const [pa, pb, pc] = await Promise.all([a.locate(id, true, '10.0.0.1'), b.locate(id, true, '10.0.0.2'), c.locate(id, true, '10.0.0.3')])
      const owners = [ownerOf(dirs, 0, pa), ownerOf(dirs, 1, pb), ownerOf(dirs, 2, pc)].map((d) => d.self.name)
      if (new Set(owners).size !== 1) t.fail(`${id}: owners ${owners.join(', ')}`)
    }
    t.pass('10 races, one owner each')
  })

  t.test(`${name}: without create, a room nobody has is null and stays unclaimed`, async (t) => {
    const { dirs } = await world(t)
    const [a, b] = dirs as [RoomDirectory, RoomDirectory]
    t.equal(await a.locate('nobody', false, '10.0.0.1'), null)
    t.equal(await b.locate('nobody', false, '10.0.0.1'), null, 'the lookup claimed nothing')
    ownerOf(dirs, 1, await b.locate('nobody', true, '10.0.0.1')) // and it can still be created
  })

  t.test(`${name}: a closed room is gone for everyone; only its owner's close counts`, async (t) => {
    const { dirs } = await world(t)
    const owner = ownerOf(dirs, 0, await (dirs[0] as RoomDirectory).locate('brief', true, '10.0.0.1'))
    owner.opened('brief')
    await agreed(dirs, 'brief', owner, 'open')
    const other = dirs.find((d) => d !== owner) as RoomDirectory
    other.closed('brief')
    await sleep(100)
    await agreed(dirs, 'brief', owner, "after another worker's close")
    owner.closed('brief')
    for (const d of dirs) await eventually(async () => (await d.locate('brief', false, '10.0.0.1')) === null, `${d.self.name} to see brief gone`)
    t.pass('gone')
  })

  t.test(`${name}: a quick-play room (opened without a claim) is locatable by id from the others`, async (t) => {
    const { dirs } = await world(t)
    const a = dirs[0] as RoomDirectory
    a.opened('q-7f3a')
    await agreed(dirs, 'q-7f3a', a, 'quick play')
    t.pass('found')
  })

  t.test(`${name}: the same id opened by a second live worker: the second hears onLost, the first keeps it`, async (t) => {
    const { dirs } = await world(t)
    const [a, b] = dirs as [RoomDirectory, RoomDirectory]
    const lost: string[] = []
    b.onLost = (id) => lost.push(id)
    a.opened('dup')
    await agreed(dirs, 'dup', a, 'first open')
    b.opened('dup')
    await eventually(() => lost.length > 0, 'onLost on the second opener')
    t.same(lost, ['dup'])
    await agreed(dirs, 'dup', a, 'after the collision')
  })

  t.test(`${name}: a killed worker's room is taken over by another worker's create; the dead handle owns nothing`, async (t) => {
    const w = await world(t)
    const { dirs } = w
    const [a, b, c] = dirs as [RoomDirectory, RoomDirectory, RoomDirectory]
    a.opened('kept-alive')
    await agreed(dirs, 'kept-alive', a, 'before the kill')
    await w.kill(0)
    const live = [b, c]
    const taker = ownerOf(dirs, 1, await b.locate('kept-alive', true, '10.0.0.1'))
    t.not(taker, a, `taken over by ${taker.self.name}`)
    taker.opened('kept-alive')
    await agreed(live, 'kept-alive', taker, 'after the takeover')
    a.closed('kept-alive') // the dead handle: must not release the new owner's room
    await sleep(100)
    await agreed(live, 'kept-alive', taker, "after the dead handle's close")
    await t.rejects(a.locate('kept-alive', false, '10.0.0.1'), DirectoryUnavailable, 'the dead handle answers nothing')
  })

  t.test(`${name}: pending claims per address are capped (address_limit); a lookup of a claimed room and an opened claim cost nothing`, async (t) => {
    const { dirs } = await world(t, 2)
    const a = dirs[0] as RoomDirectory
    const p1 = await a.locate('l1', true, '10.9.0.1')
    ownerOf(dirs, 0, p1)
    ownerOf(dirs, 0, await a.locate('l2', true, '10.9.0.1'))
    t.equal(await a.locate('l3', true, '10.9.0.1'), 'address_limit', 'a third pending claim from one address')
    t.equal(await a.locate('l3', false, '10.9.0.1'), null, 'and it left nothing behind')
    ownerOf(dirs, 0, await a.locate('l3', true, '10.9.0.2')) // another address has its own budget
    t.same(await a.locate('l1', true, '10.9.0.1'), p1, 'asking again for a room it claimed: the same answer, not a limit')
    t.equal(await a.locate('elsewhere', false, '10.9.0.1'), null, 'a lookup without create is never limited')
    ownerOf(dirs, 0, p1).opened('l1')
    ownerOf(dirs, 0, await a.locate('l4', true, '10.9.0.1')) // the opened claim gave its budget back
    t.equal(await a.locate('l5', true, '10.9.0.1'), 'address_limit')
  })

  t.test(`${name}: close() releases everything the worker owns, at once; the closed handle answers nothing`, async (t) => {
    const { dirs } = await world(t)
    const [a, b] = dirs as [RoomDirectory, RoomDirectory]
    for (const id of ['z1', 'z2', 'z3']) a.opened(id)
    for (const id of ['z1', 'z2', 'z3']) await agreed(dirs, id, a, 'open')
    await a.close(2000)
    for (const id of ['z1', 'z2', 'z3']) t.equal(await b.locate(id, false, '10.0.0.1'), null, `${id} released by close(), not left to lapse`)
    t.not(ownerOf(dirs, 1, await b.locate('z1', true, '10.0.0.1')), a, 'a new claim never lands on the closed worker')
    await t.rejects(a.locate('z2', false, '10.0.0.1'), DirectoryUnavailable)
    a.opened('z9')
    a.closed('z9') // no-ops, no throw
  })

  t.test(`${name}: published rooms are listed by every worker with their worker's name; a new publish replaces the old; a killed worker's rooms leave the list`, async (t) => {
    const w = await world(t)
    const [a, b, c] = w.dirs as [RoomDirectory, RoomDirectory, RoomDirectory]
    const room = (id: string, players: number) => ({ id, quickPlay: id.startsWith('q'), players, capacity: 16, meta: { map: 'dust', round: 3, ranked: true } })
    a.publish([room('alpha', 3), room('q-1', 1)])
    b.publish([room('beta', 5)])
    const names = (rooms: readonly { id: string; worker: string }[]) => rooms.map((r) => `${r.id}@${r.worker}`).sort()
    const want = [`alpha@${a.self.name}`, `beta@${b.self.name}`, `q-1@${a.self.name}`]
    for (const d of [a, b, c]) await eventually(async () => JSON.stringify(names(await d.listRooms())) === JSON.stringify(want), `${d.self.name} to list ${want.join(', ')}`)
    const alpha = (await c.listRooms()).find((r) => r.id === 'alpha')
    t.same(alpha, { ...room('alpha', 3), worker: a.self.name }, 'players, capacity and meta as published')
    a.publish([room('alpha', 4)])
    await eventually(async () => {
      const l = await c.listRooms()
      return l.find((r) => r.id === 'alpha')?.players === 4 && !l.some((r) => r.id === 'q-1')
    }, 'the second publish to replace the first')
    await w.kill(1)
    await eventually(async () => !(await c.listRooms()).some((r) => r.id === 'beta'), "the killed worker's rooms to leave the list")
    t.pass('listed')
  })
}
