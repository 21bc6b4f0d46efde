import t from 'tap'
import { Directory } from '../src/cluster/directory.js'

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
  const d = new Directory(2, 1000)
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
