import t from 'tap'
import { workerName, type RoomDirectory, type WorkerAddress } from '../src/directory/directory.js'
import { MemoryDirectory as Directory } from '../src/directory/memory.js'
import { directorySuite } from './helpers/directory-suite.js'

// The suite every directory passes, against members of one supervisor's directory (a dead slot is dropped by the supervisor: close()).
directorySuite(t, 'memory', async (_t, o) => {
  const d = new Directory(o.workers, { maxPerAddress: o.maxClaimsPerAddress })
  const addresses: WorkerAddress[] = Array.from({ length: o.workers }, (_, i) => ({ name: workerName('m1', i), host: '127.0.0.1', port: 9101 + i }))
  const dead = new Set<number>()
  const addressOf = (slot: number) => (dead.has(slot) ? null : (addresses[slot] ?? null))
  const dirs = addresses.map((_, i) => d.member(i, addressOf))
  return {
    dirs,
    kill: async (i: number) => {
      dead.add(i)
      await (dirs[i] as RoomDirectory).close()
    },
  }
})

t.test('a new named room goes to the least-loaded serving worker; the asker wins ties', async (t) => {
  const d = new Directory(3)
  t.equal(d.claim('a', 0, true, 0), null, 'no worker serves yet')
  d.setLoad(0, 10)
  d.setLoad(1, 4)
  d.setLoad(2, 4)
  t.equal(d.claim('a', 0, true, 0), 1, 'least loaded (first of a tie the asker is not in)')
  t.equal(d.claim('b', 2, true, 0), 2, 'tie 5 vs 4? slot 1 now counts the claim: 2 is least loaded')
  t.equal(d.claim('c', 1, true, 0), 1, 'tie between 1 and 2: the asker')
  t.equal(d.claim('a', 2, true, 0), 1, 'a known room keeps its owner')
  t.equal(d.owner('a'), 1)
  t.equal(d.size, 3)
})

t.test('without create, an unknown room is nowhere', async (t) => {
  const d = new Directory(2)
  d.setLoad(0, 0)
  t.equal(d.claim('x', 0, false, 0), null)
  t.equal(d.size, 0)
})

t.test('claims lapse unless opened; open rooms stay until closed by their owner', async (t) => {
  const d = new Directory(2, { pendingMs: 1000 })
  d.setLoad(0, 0)
  d.setLoad(1, 0)
  d.claim('lapse', 0, true, 0)
  const owner = d.claim('kept', 0, true, 0) as number
  t.equal(owner, 1, 'the first claim counts as load until the next report')
  t.ok(d.opened('kept', owner))
  d.sweep(2000)
  t.equal(d.owner('lapse'), undefined, 'an unopened claim lapsed')
  t.equal(d.owner('kept'), owner)
  d.closed('kept', 0)
  t.equal(d.owner('kept'), owner, 'only the owner closes a room')
  d.closed('kept', owner)
  t.equal(d.size, 0)
})

t.test('an id opened by a second worker is reported as a collision; a dead slot loses its rooms and placements', async (t) => {
  const d = new Directory(2)
  d.setLoad(0, 0)
  d.setLoad(1, 0)
  t.ok(d.opened('q1', 0), 'quick-play rooms register on open')
  t.notOk(d.opened('q1', 1), 'the same id from another worker is a collision')
  t.ok(d.opened('q2', 0))
  t.ok(d.opened('n1', 1))
  t.equal(d.dropSlot(0), 2)
  t.equal(d.owner('q1'), undefined)
  t.equal(d.owner('n1'), 1)
  t.equal(d.claim('new', 0, true, 0), 1, 'no placement on a dead slot')
  t.ok(d.opened('q1', 1), 'after the owner died the id is free again')
})

t.test('pending claims per address: capped at maxPerAddress, returned on open, close, sweep and a dead slot', async (t) => {
  const d = new Directory(2, { pendingMs: 1000, maxPerAddress: 3 })
  d.setLoad(0, 0)
  d.setLoad(1, 0)
  for (let i = 0; i < 3; i++) t.type(d.claim(`r${i}`, 0, true, 0, 'A'), 'number')
  t.equal(d.claim('r3', 0, true, 0, 'A'), 'address_limit', 'a 4th pending claim from A is refused')
  t.equal(d.owner('r3'), undefined, 'and leaves nothing behind')
  t.type(d.claim('b0', 0, true, 0, 'B'), 'number', 'another address has its own budget')
  t.type(d.claim('r0', 1, true, 0, 'A'), 'number', 'asking for a room already claimed costs nothing')
  t.type(d.claim('r0', 1, false, 0, 'A'), 'number')
  t.equal(d.pendingOf('A'), 3)
  t.equal(d.pending, 4)

  // Open: the room is no longer pending, its budget comes back.
  t.ok(d.opened('r0', d.owner('r0') as number))
  t.equal(d.pendingOf('A'), 2)
  t.type(d.claim('r3', 0, true, 0, 'A'), 'number', 'open rooms do not count: A may claim again')
  t.equal(d.claim('r4', 0, true, 0, 'A'), 'address_limit')
  // Close of a pending claim by its placed owner (a room that failed to open) also returns it.
  d.closed('r3', d.owner('r3') as number)
  t.equal(d.pendingOf('A'), 2)

  // Dead slot: its claims go, and with them their budget.
  const on1 = ['r1', 'r2'].filter((r) => d.owner(r) === 1).length
  d.dropSlot(1)
  t.equal(d.pendingOf('A'), 2 - on1, `dropSlot returned the ${on1} claim(s) placed on slot 1`)
  d.setLoad(1, 0)

  // Sweep: lapsed claims go.
  d.sweep(5000)
  t.equal(d.pendingOf('A'), 0)
  t.equal(d.pendingOf('B'), 0)
  t.equal(d.pending, 0)
  t.equal(d.size, 1, 'only the open room r0 is left')
})

t.test('a cap check sweeps lapsed claims first (at most once a second), so they do not hold a budget until the periodic sweep', async (t) => {
  const d = new Directory(1, { pendingMs: 1000, maxPerAddress: 2 })
  d.setLoad(0, 0)
  d.claim('a', 0, true, 0, 'A')
  d.claim('b', 0, true, 0, 'A')
  t.equal(d.claim('c', 0, true, 500, 'A'), 'address_limit', 'both claims still live at 0.5 s')
  t.type(d.claim('c', 0, true, 1600, 'A'), 'number', 'at 1.6 s they lapsed: the check swept them')
  t.equal(d.owner('a'), undefined)
  t.equal(d.pendingOf('A'), 1)
})

t.test('the global cap on pending claims holds against many addresses; 0 means no cap; an unknown address is only under the global cap', async (t) => {
  const d = new Directory(2, { maxPerAddress: 2, maxPending: 10 })
  d.setLoad(0, 0)
  d.setLoad(1, 0)
  let refused = 0
  for (let i = 0; i < 100; i++) if (d.claim(`r${i}`, 0, true, 0, `10.0.${i}.1`) === 'address_limit') refused++
  t.equal(d.pending, 10, '100 addresses, one claim each: 10 placed')
  t.equal(refused, 90)
  t.ok(d.opened('r0', d.owner('r0') as number))
  t.type(d.claim('x', 0, true, 0, '10.9.9.9'), 'number', 'an opened claim frees a global place')
  t.equal(d.claim('y', 0, true, 0, '10.9.9.9'), 'address_limit')

  const open = new Directory(1, { maxPerAddress: 0, maxPending: 0 })
  open.setLoad(0, 0)
  let placed = 0
  for (let i = 0; i < 1000; i++) if (open.claim(`r${i}`, 0, true, 0, 'A') === 0) placed++
  t.equal(placed, 1000, 'no caps: 1000 claims from one address')
  t.equal(open.pendingOf('A'), 1000)

  const anon = new Directory(1, { maxPerAddress: 1, maxPending: 3 })
  anon.setLoad(0, 0)
  for (let i = 0; i < 3; i++) t.type(anon.claim(`r${i}`, 0, true, 0), 'number', 'no address: no per-address cap')
  t.equal(anon.claim('r3', 0, true, 0), 'address_limit', 'but the global one')
})

t.test('a worker at --max-rooms is not given new rooms: the next least-loaded one is, and none when all are full', async (t) => {
  const d = new Directory(2, { maxRooms: 2 })
  d.setLoad(0, 2, 2) // two rooms of one player each: full
  d.setLoad(1, 3, 1) // more players, but room for a room
  t.equal(d.claim('b', 0, true, 0), 1, 'placed on the worker with room to spare, not on the least-loaded full one')
  t.equal(d.claim('c', 0, true, 0), null, 'the claim counts until the next report: now both are full')
  d.setLoad(1, 3, 1) // a report: the claim lapsed without a room
  t.equal(d.claim('c', 0, true, 0), 1)
  t.equal(new Directory(1).claim('x', 0, true, 0), null, 'no serving worker')
})
