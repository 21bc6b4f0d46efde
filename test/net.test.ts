/** The network layer over real uWS sockets on port 0, driven by the real client SDK. */
import { Packr } from 'msgpackr'
import t from 'tap'
import { WebSocket } from 'ws'
import { CloseCode, MsgType, PROTOCOL_VERSION, encodeAck, encodeInput, encodePing } from '../proto/index.js'
import { TickwireClient, ConnectError } from '../src/client/index.js'
import { AVATAR_SPEED, arena, arenaLayout } from '../src/games/arena.js'
import type { Game } from '../src/sim/game.js'
import { freePort, sample, sleep, startTest, waitFor } from './helpers/server.js'

const packr = new Packr({ useRecords: false })

/** Resolves with the close code and reason a client receives. */
function closed(c: TickwireClient): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => c.on('close', (code, reason) => resolve({ code, reason })))
}

t.test('a client gets WELCOME, then STATE frames at the tick rate without sending anything', async (t) => {
  const tw = await startTest({ tickHz: 30 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { reconnect: false, name: 'ada', autoAck: true })
  t.teardown(() => c.close())
  t.equal(c.welcome.tickHz, 30)
  t.equal(c.welcome.version, PROTOCOL_VERSION, 'WELCOME in the version the SDK announced')
  t.ok(c.welcome.roomId.length > 0, 'quick play assigned a room')
  t.same(
    c.welcome.fields.map((f) => f.name),
    ['kind', 'x', 'y', 'score'],
  )
  const ticks: number[] = []
  c.on('state', (f) => ticks.push(f.tick))
  await sleep(1000)
  t.ok(ticks.length >= 24 && ticks.length <= 36, `~30 frames in 1 s at 30 Hz, got ${ticks.length}`)
  for (let i = 1; i < ticks.length; i++) if ((ticks[i] as number) !== (ticks[i - 1] as number) + 1) t.fail(`tick gap ${ticks[i - 1]} -> ${ticks[i]}`)
  t.ok(c.table.entities.has(c.welcome.entityId), 'the own avatar is in the table')
  t.ok(c.table.entities.size >= 10, `sees tens of entities (${c.table.entities.size})`)
})

t.test('two clients in one room see each other move', async (t) => {
  // A large area of interest so both avatars are visible wherever they spawn.
  const tw = await startTest({ aoiRadius: 5000, maxVisible: 256 })
  t.teardown(() => tw.stop())
  const a = await TickwireClient.connect(tw.url, { reconnect: false, room: 'duel', name: 'a' })
  const b = await TickwireClient.connect(tw.url, { reconnect: false, room: 'duel', name: 'b' })
  t.teardown(() => {
    a.close()
    b.close()
  })
  t.equal(a.welcome.roomId, 'duel')
  t.equal(b.welcome.roomId, 'duel')
  const ea = a.welcome.entityId
  const eb = b.welcome.entityId
  await waitFor(() => b.table.entities.has(ea) && b.table.entities.has(eb), 2000, 'b to see a')
  const pos = (e: number) => [b.table.get(e, 'x') as number, b.table.get(e, 'y') as number] as const
  const [ax, ay] = pos(ea)
  const [bx, by] = pos(eb)
  // Steer away from b (no bumping), along the axis with the most room before a wall.
  const side = arenaLayout(64).width
  const dirs = [
    [100, 0, side - ax],
    [-100, 0, ax],
    [0, 100, side - ay],
    [0, -100, ay],
  ] as const
  const [mx, my] = dirs.filter(([dx, dy]) => dx * (bx - ax) + dy * (by - ay) <= 0).sort((p, q) => q[2] - p[2])[0] as readonly [number, number, number]
  const seq = a.sendInput([mx, my])
  await waitFor(() => a.serverInputSeq >= seq, 2000, 'the server to apply the input')
  await sleep(100) // clear of b (they may have spawned touching)
  const t0 = b.table.tick
  const [ax0, ay0] = pos(ea)
  await sleep(300)
  const [ax1, ay1] = pos(ea)
  const along = ((ax1 - ax0) * mx + (ay1 - ay0) * my) / 100
  const across = Math.abs(((ax1 - ax0) * my - (ay1 - ay0) * mx) / 100)
  // Full speed (AVATAR_SPEED per second) for exactly the ticks between the two frames b applied.
  const expected = (AVATAR_SPEED * (b.table.tick - t0)) / 30
  t.ok(Math.abs(along - expected) <= 0.5, `a moved ${along.toFixed(2)} units on b's screen, expected ${expected.toFixed(2)}`)
  t.ok(across <= 0.5, `in a straight line (${across.toFixed(2)} off)`)
  t.ok(a.table.entities.has(b.welcome.entityId), 'a sees b too')
})

t.test('speed hacks are clamped: a diagonal at full stick is no faster than straight', async (t) => {
  const tw = await startTest({ aoiRadius: 5000, maxVisible: 256 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { reconnect: false, room: 'speed' })
  t.teardown(() => c.close())
  const e = c.welcome.entityId
  await waitFor(() => c.table.entities.has(e), 2000, 'own entity')
  const x0 = c.table.get(e, 'x') as number
  const y0 = c.table.get(e, 'y') as number
  const sx = x0 < 700 ? 100 : -100
  const sy = y0 < 700 ? 100 : -100
  const t0 = c.table.tick
  c.sendInput([sx, sy])
  await sleep(300)
  c.sendInput([0, 0])
  await sleep(100)
  const ticks = c.table.tick - t0
  const dist = Math.hypot((c.table.get(e, 'x') as number) - x0, (c.table.get(e, 'y') as number) - y0)
  // AVATAR_SPEED is 220 units/s: the run lasted at most `ticks` ticks.
  t.ok(dist <= (220 * ticks) / 30 + 1, `moved ${dist.toFixed(1)} units in ${ticks} ticks: no faster than 220/s`)
  t.ok(dist > 30, 'but it did move')
})

t.test('bad input closes only the offender, with its documented code, and is counted', async (t) => {
  const tw = await startTest({ inputRate: 60, inputBurst: 20, maxMessageBytes: 256 })
  t.teardown(() => tw.stop())
  const bystander = await TickwireClient.connect(tw.url, { reconnect: false, room: 'calm' })
  t.teardown(() => bystander.close())
  let bystanderFrames = 0
  bystander.on('state', () => bystanderFrames++)

  const cases: { name: string; send: (c: TickwireClient) => void; code: number; counter?: string }[] = [
    { name: 'malformed MessagePack', send: (c) => c.sendRaw(new Uint8Array([0xc1, 0x00])), code: CloseCode.BAD_MESSAGE, counter: 'malformed' },
    { name: 'unknown message type', send: (c) => c.sendRaw(packr.pack([99])), code: CloseCode.BAD_MESSAGE, counter: 'malformed' },
    { name: 'wrong types', send: (c) => c.sendRaw(packr.pack([MsgType.INPUT, 1, 0, 'left', 0])), code: CloseCode.BAD_INPUT, counter: 'type' },
    { name: 'NaN', send: (c) => c.sendRaw(packr.pack([MsgType.INPUT, 1, 0, NaN, 0])), code: CloseCode.BAD_INPUT, counter: 'type' },
    { name: 'out of range', send: (c) => c.sendRaw(encodeInput(1, 0, [500, 0])), code: CloseCode.BAD_INPUT, counter: 'range' },
    {
      name: 'sequence going backwards',
      send: (c) => {
        c.sendRaw(encodeInput(5, c.table.tick, [0, 0]))
        c.sendRaw(encodeInput(5, c.table.tick, [0, 0]))
      },
      code: CloseCode.BAD_INPUT,
      counter: 'sequence',
    },
    { name: 'ack of a tick never sent', send: (c) => c.sendRaw(encodeAck(c.table.tick + 1000)), code: CloseCode.BAD_ACK, counter: 'bad_ack' },
    { name: 'text frame', send: (c) => c.sendRaw('hello'), code: CloseCode.TEXT_FRAME, counter: 'text_frame' },
    // uWS cuts the connection without a close frame: the client sees 1006, the server counts too_big.
    { name: 'oversized frame', send: (c) => c.sendRaw(new Uint8Array(4096)), code: 1006, counter: 'too_big' },
    {
      name: 'flood',
      send: (c) => {
        for (let i = 0; i < 200; i++) c.sendRaw(encodePing(i))
      },
      code: CloseCode.RATE_LIMITED,
      counter: 'rate_limited',
    },
  ]
  for (const k of cases) {
    const before = await tw.metrics.text()
    const c = await TickwireClient.connect(tw.url, { reconnect: false, room: 'calm' })
    await waitFor(() => c.table.tick > 0, 2000, 'first state')
    const done = closed(c)
    k.send(c)
    const { code } = await done
    t.equal(code, k.code, `${k.name}: close code ${k.code}`)
    if (k.counter) {
      const after = await tw.metrics.text()
      const key = `tickwire_inputs_rejected_total{reason="${k.counter}"}`
      t.equal(sample(after, key) - sample(before, key), 1, `${k.name}: ${key} +1`)
    }
  }
  const framesBefore = bystanderFrames
  await sleep(300)
  t.ok(bystanderFrames > framesBefore + 5, 'the bystander kept receiving frames')
  t.notOk(bystander.closed, 'and was never closed')
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_disconnects_total{reason="bad_input"}'), 4)
  t.equal(sample(m, 'tickwire_disconnects_total{reason="rate_limited"}'), 1)
  t.equal(sample(m, 'tickwire_disconnects_total{reason="too_big"}'), 1)
})

t.test('upgrade query is validated with HTTP 400; health endpoints; 404 elsewhere', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const base = `http://127.0.0.1:${tw.port}`
  t.equal((await fetch(`${base}/healthz`)).status, 200)
  t.equal((await fetch(`${base}/readyz`)).status, 200)
  t.equal((await fetch(`${base}/nope`)).status, 404)
  const status = (query: string) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${tw.port}/play${query}`)
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0)
        ws.terminate()
      })
      ws.on('open', () => {
        resolve(101)
        ws.close()
      })
      ws.on('error', () => {})
    })
  t.equal(await status('?room=bad%20room'), 400, 'room with a space')
  t.equal(await status(`?room=${'x'.repeat(33)}`), 400, 'room too long')
  t.equal(await status(`?name=${'n'.repeat(33)}`), 400, 'name too long')
  t.equal(await status('?name=a%0Ab'), 400, 'control character in name')
  t.equal(await status('?room=ok_room-1&name=Ada%20L'), 101, 'valid query upgrades')
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_http_rejected_total{reason="bad_query"}'), 4)
})

t.test('a full room closes the newcomer with ROOM_FULL; others stay', async (t) => {
  const tw = await startTest({ maxPlayersPerRoom: 2 })
  t.teardown(() => tw.stop())
  const a = await TickwireClient.connect(tw.url, { reconnect: false, room: 'tiny' })
  const b = await TickwireClient.connect(tw.url, { reconnect: false, room: 'tiny' })
  t.teardown(() => {
    a.close()
    b.close()
  })
  const err = await TickwireClient.connect(tw.url, { reconnect: false, room: 'tiny' }).then(
    () => null,
    (e: ConnectError) => e,
  )
  t.ok(err instanceof ConnectError)
  t.equal(err?.code, CloseCode.ROOM_FULL)
  // Quick play goes elsewhere instead of failing.
  const q = await TickwireClient.connect(tw.url, { reconnect: false })
  t.not(q.welcome.roomId, 'tiny')
  q.close()
  t.notOk(a.closed || b.closed)
})

t.test('quick play fills one room before opening another', async (t) => {
  const tw = await startTest({ maxPlayersPerRoom: 3 })
  t.teardown(() => tw.stop())
  const clients: TickwireClient[] = []
  for (let i = 0; i < 5; i++) clients.push(await TickwireClient.connect(tw.url, { reconnect: false }))
  t.teardown(() => clients.forEach((c) => c.close()))
  const rooms = clients.map((c) => c.welcome.roomId)
  t.equal(new Set(rooms.slice(0, 3)).size, 1, 'first three share a room')
  t.equal(new Set(rooms.slice(3)).size, 1, 'the next two share another')
  t.not(rooms[0], rooms[3])
})

t.test('graceful stop: readiness false, players closed with SHUTDOWN (1001), no new connections', async (t) => {
  const tw = await startTest()
  const a = await TickwireClient.connect(tw.url, { reconnect: false })
  const b = await TickwireClient.connect(tw.url, { reconnect: false, room: 'x' })
  const ca = closed(a)
  const cb = closed(b)
  tw.stop()
  t.equal(tw.server.ready, false)
  t.same(await ca, { code: CloseCode.SHUTDOWN, reason: 'server shutting down' })
  t.equal((await cb).code, CloseCode.SHUTDOWN)
  const err = await TickwireClient.connect(tw.url, { reconnect: false, timeoutMs: 1000 }).catch((e: Error) => e)
  t.ok(err instanceof Error, 'the listen socket is closed')
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_disconnects_total{reason="shutdown"}'), 2)
})

t.test('a room whose game code throws is closed with INTERNAL_ERROR; other rooms play on', async (t) => {
  // The reference game, except that a room with a player named "boom" throws in step, and "bad-join" throws in join.
  let failCreate = false
  const faulty: Game = {
    ...arena,
    createRoom: (ctx) => {
      if (failCreate) throw new Error('createRoom bug')
      const inner = arena.createRoom(ctx)
      let boom = false
      return {
        join: (name) => {
          if (name === 'bad-join') throw new Error('join bug')
          if (name === 'boom') boom = true
          return inner.join(name)
        },
        leave: (e) => inner.leave(e),
        input: (e, v) => inner.input(e, v),
        step: (dt, tick) => {
          if (boom) throw new Error('step bug')
          inner.step(dt, tick)
        },
      }
    },
  }
  const tw = await startTest({}, { game: faulty })
  t.teardown(() => tw.stop())
  const calm = await TickwireClient.connect(tw.url, { reconnect: false, room: 'calm' })
  t.teardown(() => calm.close())
  const victim = await TickwireClient.connect(tw.url, { reconnect: false, room: 'doomed', name: 'victim' })
  const victimClosed = closed(victim)
  const boomErr = await TickwireClient.connect(tw.url, { reconnect: false, room: 'doomed', name: 'boom' }).then(
    (c) => closed(c),
    (e: ConnectError) => ({ code: e.code ?? 0, reason: e.message }),
  )
  t.equal(boomErr.code, CloseCode.INTERNAL_ERROR)
  t.same(await victimClosed, { code: CloseCode.INTERNAL_ERROR, reason: 'room failed on the server' })
  const joinErr = await TickwireClient.connect(tw.url, { reconnect: false, room: 'x', name: 'bad-join' }).catch((e: ConnectError) => e)
  t.equal((joinErr as ConnectError).code, CloseCode.INTERNAL_ERROR)
  failCreate = true
  for (let i = 0; i < 2; i++) {
    const createErr = await TickwireClient.connect(tw.url, { reconnect: false, room: 'never' }).catch((e: ConnectError) => e)
    t.equal((createErr as ConnectError).code, CloseCode.INTERNAL_ERROR, 'a room the game cannot build: refused, nothing left behind')
  }
  failCreate = false
  const ticks = calm.table.tick
  await sleep(300)
  t.ok(calm.table.tick > ticks + 5, 'the other room kept ticking')
  t.notOk(calm.closed)
  t.same(
    tw.rooms.list.map((r) => r.id),
    ['calm'],
    'the failed rooms were disposed',
  )
  const m = await tw.metrics.text()
  t.equal(sample(m, 'tickwire_room_errors_total'), 4, 'two rooms failed, two could not be built')
  t.equal(sample(m, 'tickwire_disconnects_total{reason="internal_error"}'), 5)
})

t.test('before the uint32 tick counter wraps, the server stops cleanly with exit status 1', async (t) => {
  const metricsPort = await freePort()
  const tw = await startTest({ metricsPort, metricsHost: '127.0.0.1' })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { reconnect: false })
  const done = closed(c)
  tw.loop.tick = 0xffffffff - 4 // as after ~4.5 years at 30 Hz
  t.equal((await done).code, CloseCode.SHUTDOWN)
  await waitFor(() => !tw.loop.running, 1000, 'the loop to stop')
  t.equal(process.exitCode, 1, 'exit status 1, so a supervisor restarts the process')
  process.exitCode = 0 // this test process itself is fine
  await sleep(100)
  const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(
    () => 'open',
    () => 'closed',
  )
  t.equal(scrape, 'closed', 'the metrics listener is closed too, so the process can exit')
})

t.test('PING is answered with PONG, which carries the players in the room', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { reconnect: false, room: 'p' })
  const d = await TickwireClient.connect(tw.url, { reconnect: false, room: 'p' })
  t.teardown(() => {
    c.close()
    d.close()
  })
  const [rtt, players] = await new Promise<[number, number]>((resolve) => {
    c.on('pong', (r, n) => resolve([r, n]))
    c.ping()
  })
  t.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt.toFixed(2)} ms`)
  t.equal(players, 2, 'two players seated in room p')
})

t.test('SDK events: a listener that removes itself while an event is emitted does not make the next one miss it', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { reconnect: false })
  t.teardown(() => c.close())
  const calls: string[] = []
  const once = () => {
    calls.push('once')
    c.off('pong', once)
  }
  const late = () => calls.push('added during the emit')
  const steady = () => {
    calls.push('steady')
    c.on('pong', late)
  }
  c.on('pong', once)
  c.on('pong', steady)
  const second = new Promise<void>((resolve) => {
    let n = 0
    c.on('pong', () => {
      if (++n === 2) resolve()
    })
  })
  c.ping()
  await waitFor(() => calls.length >= 2, 5000, 'the first PONG')
  t.same(calls, ['once', 'steady'], 'both ran on the first PONG; the listener added meanwhile did not')
  c.ping()
  await second
  t.same(calls.slice(2), ['steady', 'added during the emit'], 'the second PONG: the self-removed one is gone, the added one runs')
})
