/**
 * Per-address budgets over real sockets: one address (127.0.0.1) misbehaves,
 * another (127.0.0.2) must still get in. Connections, upgrade rate, rooms
 * created, held seats and rooms kept alive only by held seats; the trusted
 * proxy's X-Forwarded-For; the Origin check; and the security log lines, with
 * no secret in them. Every loop is bounded.
 */
import { connect } from 'node:net'
import t from 'tap'
import { WebSocket } from 'ws'
import { CloseCode } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { createLogger } from '../src/log.js'
import { clientAddress, budgetKey, parseTrustedProxies, AddressBook } from '../src/net/addresses.js'
import { originAllowed, parseAllowedOrigins } from '../src/net/origin.js'
import { startCluster } from './helpers/cluster.js'
import { parseSamples, sleep, startTest, waitFor } from './helpers/server.js'

interface Outcome {
  /** HTTP status of a refused upgrade, 101 when it was upgraded. */
  status: number
  body: string
  ws: WebSocket | null
  /** Resolves with the close code once the socket closes. */
  closed: Promise<number>
  /** Resolves once the first frame (WELCOME) arrived. */
  welcomed: Promise<void>
}

/** Opens a raw WebSocket from `from` with `headers`; resolves once upgraded or refused. */
function open(url: string, from = '127.0.0.1', headers: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress: from, headers })
    let closedResolve: (c: number) => void = () => {}
    const closed = new Promise<number>((r) => (closedResolve = r))
    const welcomed = new Promise<void>((r) => ws.once('message', () => r()))
    ws.on('close', (code) => closedResolve(code))
    ws.on('error', () => {})
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ws: null, closed, welcomed }))
    })
    ws.on('open', () => resolve({ status: 101, body: '', ws, closed, welcomed }))
  })
}

/** Metrics samples whose name starts with `prefix`, as `labels -> value`. */
async function samples(tw: { metrics: { text(): Promise<string> } }, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const [k, v] of parseSamples(await tw.metrics.text())) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v)
  return out
}

t.test('address parsing: IPv4-mapped, IPv6 /64 keys, trusted X-Forwarded-For only from a trusted peer', async (t) => {
  const none = parseTrustedProxies('')
  const proxy = parseTrustedProxies('10.0.0.1, ::ffff:10.0.0.2')
  t.equal(clientAddress('0000:0000:0000:0000:0000:ffff:7f00:0001', '', none), '127.0.0.1', 'uWS writes IPv4-mapped addresses in hex')
  t.equal(clientAddress('203.0.113.9', '198.51.100.1', none), '203.0.113.9', 'X-Forwarded-For is ignored without trusted proxies')
  t.equal(clientAddress('203.0.113.9', '198.51.100.1', proxy), '203.0.113.9', 'and from a peer that is not a trusted proxy')
  t.equal(clientAddress('10.0.0.1', '198.51.100.1', proxy), '198.51.100.1', 'a trusted proxy names the client')
  t.equal(clientAddress('10.0.0.1', '6.6.6.6, 198.51.100.1, 10.0.0.2', proxy), '198.51.100.1', 'the rightmost hop that is not a trusted proxy (the client can forge the left ones)')
  t.equal(clientAddress('10.0.0.1', 'junk', proxy), '10.0.0.1', 'junk in the header: the proxy itself is the client')
  t.equal(clientAddress('10.0.0.1', '198.51.100.7:5678', proxy), '198.51.100.7', 'a hop with a port (some proxies write it)')
  t.equal(clientAddress('10.0.0.1', '[2001:db8::5]:443', proxy), '2001:0db8:0000:0000:0000:0000:0000:0005', 'a bracketed IPv6 hop with a port')
  t.equal(budgetKey('2001:db8:1:2:aaaa::1'), '2001:0db8:0001:0002::/64', 'IPv6 budgets are per /64')
  t.equal(budgetKey(clientAddress('2001:db8:1:2:bbbb::9', '', none)), '2001:0db8:0001:0002::/64')
  t.throws(() => parseTrustedProxies('10.0.0.0/8'), /not an IP address/)
  const any = parseAllowedOrigins('*')
  const list = parseAllowedOrigins('https://game.example.com')
  const own = parseAllowedOrigins('')
  t.ok(originAllowed(own, '', 'a:1', 1), 'no Origin: a non-browser client')
  t.ok(originAllowed(own, 'http://127.0.0.1:9001', '127.0.0.1:9001', 9001), 'own origin')
  t.ok(originAllowed(own, 'https://play.example.com', 'play.example.com', 443), 'own origin behind a TLS proxy')
  t.ok(originAllowed(own, 'http://127.0.0.1:9001', '127.0.0.1:9002', 9001), "the public port's page on a direct port")
  t.notOk(originAllowed(own, 'http://127.0.0.1:8080', '127.0.0.1:9001', 9001), 'another port is another origin')
  t.notOk(originAllowed(own, 'https://evil.example', '127.0.0.1:9001', 9001))
  t.notOk(originAllowed(own, 'null', '127.0.0.1:9001', 9001), 'opaque origin')
  t.ok(originAllowed(list, 'https://game.example.com', '10.1.1.1:9001', 9001))
  t.notOk(originAllowed(list, 'http://evil.example', 'evil.example', 9001), 'with a list the Host fallback is off (DNS rebinding)')
  t.notOk(originAllowed(list, 'http://game.example.com', '10.1.1.1:9001', 9001), 'the scheme is part of the origin')
  t.ok(originAllowed(any, 'https://evil.example', 'x', 1))
  t.throws(() => parseAllowedOrigins('game.example.com'), /not an origin/)
  t.throws(() => parseAllowedOrigins('https://game.example.com/path'), /no path/)
  // The book forgets an address once nothing is counted and its bucket has refilled: memory follows use.
  const book = new AddressBook({ maxConnectionsPerAddress: 2, upgradeRatePerAddress: 10, upgradeBurstPerAddress: 2, maxRoomsPerAddress: 1, maxHeldPerAddress: 1, maxIdleRoomsPerAddress: 1 })
  const e = book.entry('a', 0)
  t.equal(book.admit(e, 0), null)
  t.equal(book.admit(e, 0), null)
  t.equal(book.admit(e, 0), 'connections')
  book.disconnected(e, 0)
  t.equal(book.admit(e, 0), 'upgrade_rate', 'the bucket is empty')
  book.disconnected(e, 0)
  t.equal(book.size, 1, 'kept while the bucket refills')
  book.sweep(1000)
  t.equal(book.size, 0, 'forgotten once refilled')
})

t.test('connections per address: one address cannot fill --max-players; another still gets in', async (t) => {
  const tw = await startTest({ maxPlayers: 10, maxConnectionsPerAddress: 4, upgradeRatePerAddress: 0 })
  t.teardown(() => tw.stop())
  const mine: Outcome[] = []
  for (let i = 0; i < 4; i++) mine.push(await open(tw.url))
  t.same(mine.map((o) => o.status), [101, 101, 101, 101])
  const fifth = await open(tw.url)
  t.equal(fifth.status, 429, 'the fifth from one address is refused before the upgrade')
  t.equal(fifth.body, 'too many connections from your address\n')
  const other = await open(tw.url, '127.0.0.2')
  t.equal(other.status, 101, 'another address is let in')
  await other.welcomed
  const m = await samples(tw, 'tickwire_')
  t.equal(m.get('address_limited_total{reason="connections"}'), 1)
  t.equal(m.get('http_rejected_total{reason="address_limit"}'), 1)
  // A closed connection gives its place back.
  ;(mine[0] as Outcome).ws?.close()
  await (mine[0] as Outcome).closed
  t.equal((await open(tw.url)).status, 101, 'a place freed by a close is usable again')
  for (const o of mine) o.ws?.terminate()
  other.ws?.terminate()
})

t.test('upgrade rate per address: a burst beyond the bucket gets 429, others are unaffected', async (t) => {
  const tw = await startTest({ upgradeRatePerAddress: 2, upgradeBurstPerAddress: 5 })
  t.teardown(() => tw.stop())
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    const o = await open(tw.url)
    statuses.push(o.status)
    o.ws?.terminate()
  }
  const refused = statuses.filter((s) => s === 429).length
  t.ok(refused >= 5, `most of a 12-upgrade burst refused after the 5-upgrade bucket: ${statuses.join(' ')}`)
  t.equal(statuses.slice(0, 5).filter((s) => s === 101).length, 5, 'the burst allowance is honoured')
  t.equal((await open(tw.url, '127.0.0.2')).status, 101, 'another address is unaffected')
  const m = await samples(tw, 'tickwire_address_limited_total')
  t.equal(m.get('{reason="upgrade_rate"}'), refused)
  await sleep(600)
  t.equal((await open(tw.url)).status, 101, 'the bucket refills')
})

t.test('squatting: dropped connections from one address cannot keep rooms or seats from everyone else', async (t) => {
  // The reviewer's attack, smaller: connect to a new named room, drop the TCP connection without a close
  // frame, repeat. Before per-address budgets every drop kept its seat (and so its room) for the resume window.
  const tw = await startTest({ maxRooms: 20, resumeWindow: 30, upgradeRatePerAddress: 0, maxRoomsPerAddress: 4, maxHeldPerAddress: 3, maxIdleRoomsPerAddress: 2 })
  t.teardown(() => tw.stop())
  for (let i = 0; i < 40; i++) {
    const o = await open(`${tw.url}?room=squat${i}`)
    await o.welcomed
    o.ws?.terminate()
    await o.closed
  }
  await waitFor(() => tw.server.connections === 0, 5000, 'the dropped sockets to close')
  t.ok(tw.rooms.list.length <= 2, `at most 2 rooms kept alive by one address's held seats (${tw.rooms.list.length})`)
  t.ok(tw.server.held <= 2, `held seats: ${tw.server.held}`)
  const victim = await open(`${tw.url}?room=mine`, '127.0.0.2')
  await victim.welcomed
  t.ok(tw.rooms.byId.has('mine'), 'another address still creates a room')
  const m = await samples(tw, 'tickwire_address_limited_total')
  t.equal(m.get('{reason="idle_rooms"}'), 38, 'every drop past the allowance was released at once, and counted')

  // Held seats in rooms others play in are capped too: the squatter joins the victim's room and drops, again and again.
  for (let i = 0; i < 6; i++) {
    const o = await open(`${tw.url}?room=mine`)
    await o.welcomed
    o.ws?.terminate()
    await o.closed
  }
  await waitFor(() => tw.server.connections === 1, 5000, 'the dropped sockets to close')
  t.equal(tw.server.held, 3, '--max-held-per-address 3: two idle holds plus one in a live room')
  t.equal((await samples(tw, 'tickwire_address_limited_total')).get('{reason="held"}'), 5)
  victim.ws?.close()
})

t.test('squatting with a helper connection: the hold is judged again when its room empties', async (t) => {
  // Two connections of one address in a room; drop one (held: someone is still connected), close the other cleanly.
  // The held seat alone now keeps the room alive, and must count against the idle-room allowance.
  const tw = await startTest({ maxRooms: 20, resumeWindow: 30, upgradeRatePerAddress: 0, maxHeldPerAddress: 8, maxIdleRoomsPerAddress: 2 })
  t.teardown(() => tw.stop())
  for (let i = 0; i < 6; i++) {
    const a = await open(`${tw.url}?room=dodge${i}`)
    await a.welcomed
    const b = await open(`${tw.url}?room=dodge${i}`)
    await b.welcomed
    b.ws?.terminate()
    await b.closed
    a.ws?.close()
    await a.closed
  }
  await waitFor(() => tw.server.connections === 0, 5000, 'the sockets to close')
  t.equal(tw.rooms.list.length, 2, 'two rooms kept by held seats (the allowance), not six')
  t.equal(tw.server.held, 2)
  t.equal((await samples(tw, 'tickwire_address_limited_total')).get('{reason="idle_rooms"}'), 4)
})

t.test('rooms per address: one address cannot create more than its share of rooms', async (t) => {
  const tw = await startTest({ maxRooms: 20, upgradeRatePerAddress: 0, maxRoomsPerAddress: 3 })
  t.teardown(() => tw.stop())
  const live: Outcome[] = []
  for (let i = 0; i < 3; i++) {
    const o = await open(`${tw.url}?room=r${i}`)
    await o.welcomed
    live.push(o)
  }
  const fourth = await open(`${tw.url}?room=r3`)
  t.equal(await fourth.closed, CloseCode.ADDRESS_LIMIT, 'the fourth room is refused with ADDRESS_LIMIT')
  const join = await open(`${tw.url}?room=r0`)
  await join.welcomed
  t.pass('joining a room that exists needs no budget')
  const other = await open(`${tw.url}?room=theirs`, '127.0.0.2')
  await other.welcomed
  t.pass('another address creates rooms')
  t.equal((await samples(tw, 'tickwire_')).get('disconnects_total{reason="address_limit"}'), 1)
  for (const o of [...live, join, other]) o.ws?.close()
  await waitFor(() => tw.rooms.list.length === 0, 5000, 'rooms to go')
  const again = await open(`${tw.url}?room=r9`)
  await again.welcomed
  t.pass('disposed rooms give the budget back')
  again.ws?.close()
})

t.test('behind a trusted proxy the budget is per X-Forwarded-For client; untrusted peers cannot pick theirs', async (t) => {
  const tw = await startTest({ maxConnectionsPerAddress: 2, upgradeRatePerAddress: 0, trustedProxies: '127.0.0.1' })
  t.teardown(() => tw.stop())
  const xff = (a: string) => ({ 'x-forwarded-for': a })
  const a1 = await open(tw.url, '127.0.0.1', xff('198.51.100.1'))
  const a2 = await open(tw.url, '127.0.0.1', xff('198.51.100.1'))
  t.equal((await open(tw.url, '127.0.0.1', xff('198.51.100.1'))).status, 429, 'a third from the same client behind the proxy')
  const b = await open(tw.url, '127.0.0.1', xff('198.51.100.2'))
  t.equal(b.status, 101, 'another client behind the same proxy')
  // 127.0.0.2 is no trusted proxy: its X-Forwarded-For is ignored, so rotating the header does not help.
  const c1 = await open(tw.url, '127.0.0.2', xff('1.1.1.1'))
  const c2 = await open(tw.url, '127.0.0.2', xff('1.1.1.2'))
  t.equal((await open(tw.url, '127.0.0.2', xff('1.1.1.3'))).status, 429, 'an untrusted peer is its own address')
  // A client's own X-Forwarded-For line first, the proxy's line after it: the proxy's view wins.
  const raw = (lines: string[]) =>
    new Promise<string>((resolve) => {
      const sock = connect(tw.port, '127.0.0.1', () =>
        sock.write(['GET /play HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', ...lines, '', ''].join('\r\n')),
      )
      sock.once('data', (d) => {
        resolve(d.toString().split('\r\n')[0] as string)
        sock.destroy()
      })
    })
  t.equal(await raw(['X-Forwarded-For: 7.7.7.7', 'X-Forwarded-For: 198.51.100.1']), 'HTTP/1.1 429 Too Many Requests', 'a forged first line does not pick the budget')
  for (const o of [a1, a2, b, c1, c2]) o.ws?.terminate()
})

t.test('Origin: a foreign browser origin gets 403 before the upgrade; own origin and non-browsers play', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const evil = await open(`${tw.url}?room=victim`, '127.0.0.1', { origin: 'https://evil.example' })
  t.equal(evil.status, 403)
  t.equal(evil.body, 'origin not allowed\n')
  const own = await open(`${tw.url}?room=victim`, '127.0.0.1', { origin: `http://127.0.0.1:${tw.port}` })
  t.equal(own.status, 101, 'the page the server serves may connect')
  const plain = await open(`${tw.url}?room=victim`)
  t.equal(plain.status, 101, 'no Origin: a non-browser client')
  t.equal((await samples(tw, 'tickwire_http_rejected_total')).get('{reason="origin"}'), 1)
  own.ws?.close()
  plain.ws?.close()
  const open2 = await startTest({ allowedOrigins: 'https://game.example.com' })
  t.teardown(() => open2.stop())
  t.equal((await open(open2.url, '127.0.0.1', { origin: 'https://game.example.com' })).status, 101, 'a listed origin')
  t.equal((await open(open2.url, '127.0.0.1', { origin: 'https://other.example.com' })).status, 403, 'an unlisted one')
})

t.test('security events are logged (rate-limited) with the address and reason, never a token', async (t) => {
  const lines: string[] = []
  const tw = await startTest({ maxConnectionsPerAddress: 2, upgradeRatePerAddress: 0, maxRoomsPerAddress: 1 }, { log: createLogger('warn', (l) => lines.push(l)) })
  t.teardown(() => tw.stop())
  const first = await open(`${tw.url}?room=a`)
  await first.welcomed
  t.equal(await (await open(`${tw.url}?room=b`)).closed, CloseCode.ADDRESS_LIMIT, 'a second room from 127.0.0.1')
  const joined = await open(`${tw.url}?room=a`)
  await joined.welcomed
  t.equal((await open(`${tw.url}?room=a`)).status, 429, 'a third connection from 127.0.0.1')
  for (let i = 0; i < 6; i++) t.equal((await open(tw.url, '127.0.0.2', { origin: 'https://evil.example' })).status, 403)
  const forged = 'Zm9yZ2VkLXRva2VuLXRoYXQtbXVzdC1ub3QtYmUtbG9nZ2Vk'
  const resume = await open(`${tw.url}?room=a&player=7&resume=${forged}`, '127.0.0.3')
  t.equal(await resume.closed, CloseCode.RESUME_INVALID)
  const bad = await open(tw.url, '127.0.0.4')
  await bad.welcomed
  bad.ws?.send(Buffer.from([0xc1]))
  t.equal(await bad.closed, CloseCode.BAD_MESSAGE)
  const has = (re: RegExp) => lines.filter((l) => re.test(l)).length
  t.equal(has(/ warn security: address limit address=127\.0\.0\.1 reason=rooms/), 1, 'room budget logged with the address')
  t.equal(has(/ warn security: upgrade refused address=127\.0\.0\.1 reason=address_limit status=429/), 1, 'connection cap logged')
  t.equal(has(/ warn security: upgrade refused address=127\.0\.0\.2 reason=origin status=403/), 1, 'six foreign-origin refusals, one line: rate-limited')
  t.equal(has(/ warn security: resume refused address=127\.0\.0\.3 reason=invalid token/), 1, 'forged resume token logged')
  t.equal(has(/ warn security: bad client frame address=127\.0\.0\.4 reason=malformed/), 1, 'malformed frame logged')
  t.notOk(lines.some((l) => l.includes(forged)), 'the token never reaches the log')
  t.notOk(lines.some((l) => l.includes('resume=')), 'nor does the query string')
  first.ws?.close()
  joined.ws?.close()
})

t.test('two workers: a named-room upgrade flood from one address leaves the directory small and rooms for others', async (t) => {
  // The reviewer's flood: upgrades for ever-new room names that never follow their REDIRECT. Each used to leave a claim.
  const c = await startCluster(2, ['--upgrade-rate-per-address', '0', '--max-rooms-per-address', '4', '--resume-window', '30'])
  t.teardown(() => c.child.kill('SIGKILL'))
  const codes = new Map<number, number>()
  for (let i = 0; i < 150; i++) {
    const o = await open(`${c.url}?room=flood${i}`)
    const code = await Promise.race([o.closed, o.welcomed.then(() => (o.ws?.terminate(), o.closed))])
    codes.set(code, (codes.get(code) ?? 0) + 1)
  }
  const m = parseSamples(await (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text())
  const directory = m.get('tickwire_directory_rooms') ?? -1
  t.ok(directory >= 0 && directory <= 2 * (4 + 2), `directory holds ${directory} rooms (claims in flight plus idle holds, per worker budgets), not 150`)
  t.ok((codes.get(CloseCode.ADDRESS_LIMIT) ?? 0) > 0, `claims over the budget closed ADDRESS_LIMIT: ${JSON.stringify([...codes])}`)
  t.ok((m.get('tickwire_address_limited_total{reason="claims"}') ?? 0) > 0, 'and counted as claims')
  const mine = await open(`${c.url}?room=mine`, '127.0.0.2')
  const first = await Promise.race([mine.welcomed.then(() => 'welcome'), mine.closed.then((code) => `close ${code}`)])
  t.ok(first === 'welcome' || first === `close ${CloseCode.REDIRECT}`, `another address gets its room (or a redirect to it): ${first}`)
  mine.ws?.close()
})

t.test('an event-loop stall the tick loop sees is counted and logged once', async (t) => {
  const lines: string[] = []
  const tw = await startTest({}, { log: createLogger('warn', (l) => lines.push(l)) })
  t.teardown(() => tw.stop())
  // A room, so the loop ticks at its rate (a process with no rooms naps a second between ticks).
  const player = await TickwireClient.connect(tw.url)
  t.teardown(() => player.close())
  await sleep(200)
  const end = Date.now() + 800
  while (Date.now() < end) {
    // A game's endless loop, for 0.8 s.
  }
  await waitFor(() => lines.some((l) => l.includes('security: event loop stall')), 3000, 'the stall line')
  t.match(lines.find((l) => l.includes('event loop stall')) ?? '', /warn security: event loop stall reason=tick ms=\d+ tick=\d+/)
  t.ok((parseSamples(await tw.metrics.text()).get('tickwire_tick_stalls_total{worker="0"}') ?? 0) >= 1, 'counted in tickwire_tick_stalls_total')
})
