/** Seats held across dropped connections, resume tokens, and the SDK's reconnect: one real process, real sockets. */
import t from 'tap'
import { WebSocket } from 'ws'
import { CloseCode, MsgType, decodeServerMessage, type Welcome } from '../proto/index.js'
import { TickwireClient } from '../src/client/index.js'
import { ResumeTokens } from '../src/net/resume.js'
import { dropTcp, parseSamples, sleep, startTest, waitFor } from './helpers/server.js'

/** Opens a raw socket with `query` and resolves with its WELCOME, or the close code it got instead. */
function rawJoin(url: string, query: Record<string, string>): Promise<{ welcome?: Welcome; code: number; ws: WebSocket }> {
  const u = new URL(url)
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v)
  const ws = new WebSocket(u)
  return new Promise((resolve, reject) => {
    ws.on('error', reject)
    ws.on('message', (data: Buffer) => {
      const m = decodeServerMessage(new Uint8Array(data))
      if (m.type === MsgType.WELCOME) resolve({ welcome: m, code: 0, ws })
    })
    ws.on('close', (code) => resolve({ code, ws }))
  })
}

function resumeQuery(w: Welcome, token = w.resumeToken): Record<string, string> {
  return { room: w.roomId, player: String(w.playerId), resume: token, v: String(w.version) } // the seat's own protocol (a v2 connection cannot take a v3 seat's stream)
}

t.test('tokens: genuine ones verify; forged, tampered, other-player and other-room ones do not', async (t) => {
  const tokens = new ResumeTokens(Buffer.from('0123456789abcdef0123456789abcdef'))
  const inst = ResumeTokens.newInstance()
  const tok = tokens.issue('lobby', inst, 7, 3)
  t.same(tokens.verify(tok, 'lobby', 7), { instance: inst, gen: 3 })
  t.equal(tokens.verify(tok, 'lobby', 8), null, 'other player')
  t.equal(tokens.verify(tok, 'other', 7), null, 'other room')
  t.equal(new ResumeTokens(Buffer.from('another-secret-another-secret-xx')).verify(tok, 'lobby', 7), null, 'other secret')
  t.equal(tokens.verify(tok.replace('.3.', '.4.'), 'lobby', 7), null, 'generation changed')
  // Every single-character change of the MAC is caught, including base64url's spare bits in the last character.
  const mac = tok.slice(tok.lastIndexOf('.') + 1)
  let caught = 0
  for (let i = 0; i < mac.length; i++) {
    for (const ch of ['A', 'B', 'Q', 'g', 'w', '-', '_']) {
      if (mac[i] === ch) continue
      const bad = tok.slice(0, tok.length - mac.length) + mac.slice(0, i) + ch + mac.slice(i + 1)
      if (tokens.verify(bad, 'lobby', 7) === null) caught++
      else t.fail(`tampered token accepted: ${bad}`)
    }
  }
  t.ok(caught > 100, `${caught} tampered tokens refused`)
  for (const junk of ['', 'x', `${inst}.0.`, `${inst}.99999999999.${mac}`, `${inst}.01.${mac}`, tok + 'A']) t.equal(tokens.verify(junk, 'lobby', 7), null, `junk ${JSON.stringify(junk)}`)
  t.throws(() => new ResumeTokens(Buffer.from('short')), /at least 16 bytes/)
})

t.test('a dropped connection resumes the same entity within the window (SDK, automatically)', async (t) => {
  const tw = await startTest({ resumeWindow: 5 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { room: 'r', name: 'ada' })
  t.teardown(() => c.close())
  const first = c.welcome
  t.match(first.resumeToken, /^[A-Za-z0-9_-]{11}\.0\.[A-Za-z0-9_-]{22}$/, 'WELCOME carries a resume token')
  c.sendInput([100, 0])
  await waitFor(() => c.serverInputSeq === 1, 2000, 'the input to be applied')
  const codes: number[] = []
  c.on('reconnecting', (code) => codes.push(code))
  const resumed = new Promise<void>((r) => c.on('resumed', () => r()))
  dropTcp(c)
  await resumed
  t.same(codes, [1006], 'one reconnect after a 1006')
  t.equal(c.welcome.entityId, first.entityId, 'same entity')
  t.equal(c.welcome.playerId, first.playerId, 'same player id')
  t.equal(c.welcome.roomId, 'r')
  t.not(c.welcome.resumeToken, first.resumeToken, 'a fresh token')
  t.equal(tw.rooms.players, 1, 'still one seat')
  const before = c.table.tick
  await waitFor(() => c.table.tick > before + 3 && c.table.entities.has(first.entityId), 2000, 'state after the resume')
  // Input sequence numbers continue: the next input is accepted, not refused as a replay.
  c.sendInput([0, 100])
  await waitFor(() => c.serverInputSeq === 2, 2000, 'input after the resume')
  const m = parseSamples(await tw.metrics.text())
  t.equal(m.get('tickwire_resumes_total{outcome="resumed"}'), 1)
  t.equal(m.get('tickwire_disconnects_total{reason="abnormal"}'), 1)
  t.equal(c.closed, false)
})

t.test('the held seat stands still and is released after the window; a late resume gets RESUME_EXPIRED', async (t) => {
  const tw = await startTest({ resumeWindow: 0.5 })
  t.teardown(() => tw.stop())
  const watcher = await TickwireClient.connect(tw.url, { room: 'r', reconnect: false })
  t.teardown(() => watcher.close())
  const c = await TickwireClient.connect(tw.url, { room: 'r', reconnect: false })
  const w = c.welcome
  c.sendInput([100, 100])
  await waitFor(() => c.serverInputSeq === 1, 2000, 'the input to be applied')
  dropTcp(c)
  await waitFor(() => tw.server.held === 1, 2000, 'the seat to be held')
  await sleep(100)
  const seat = tw.rooms.byId.get('r')?.seats.find((s) => s.playerId === w.playerId)
  t.same(seat && [...seat.input], [0, 0], 'the held seat gets neutral input')
  t.ok(watcher.table.entities.has(w.entityId), 'its avatar stays in the world meanwhile')
  await waitFor(() => tw.server.held === 0 && tw.rooms.players === 1, 3000, 'the hold to expire')
  await waitFor(() => !watcher.table.entities.has(w.entityId), 2000, 'the avatar to leave the world')
  const late = await rawJoin(tw.url, resumeQuery(w))
  t.equal(late.code, CloseCode.RESUME_EXPIRED, 'late resume: RESUME_EXPIRED (4011)')
  const m = parseSamples(await tw.metrics.text())
  t.equal(m.get('tickwire_resumes_total{outcome="expired"}'), 1)
  t.equal(m.get('tickwire_seat_holds_expired_total'), 1)
  t.equal(m.get('tickwire_disconnects_total{reason="resume_refused"}'), 1)
})

t.test('tampered, other-player and reused tokens are refused with their codes; a resume takes over a half-open connection', async (t) => {
  const tw = await startTest({ resumeWindow: 10 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { room: 'r', reconnect: false })
  const other = await TickwireClient.connect(tw.url, { room: 'r', reconnect: false })
  t.teardown(() => other.close())
  const w = c.welcome
  dropTcp(c)
  await waitFor(() => tw.server.held === 1, 2000, 'the seat to be held')
  const tok = w.resumeToken
  const flipped = tok.slice(0, -2) + (tok.at(-2) === 'A' ? 'B' : 'A') + tok.at(-1)
  t.equal((await rawJoin(tw.url, resumeQuery(w, flipped))).code, CloseCode.RESUME_INVALID, 'tampered: RESUME_INVALID (4010)')
  const asOther = { ...resumeQuery(w), player: String(other.welcome.playerId) }
  t.equal((await rawJoin(tw.url, asOther)).code, CloseCode.RESUME_INVALID, "another player's claim with this token: RESUME_INVALID")
  const otherToken = { ...resumeQuery(w), resume: other.welcome.resumeToken }
  t.equal((await rawJoin(tw.url, otherToken)).code, CloseCode.RESUME_INVALID, "another player's token for this seat: RESUME_INVALID")
  t.equal(tw.server.held, 1, 'refusals leave the seat held')

  const ok = await rawJoin(tw.url, resumeQuery(w))
  t.equal(ok.welcome?.entityId, w.entityId, 'the genuine token resumes the same entity')
  t.equal(tw.server.held, 0)
  t.equal((await rawJoin(tw.url, resumeQuery(w))).code, CloseCode.RESUME_USED, 'the same token again: RESUME_USED (4012)')

  // The resumed socket still looks open; a resume with its newest token takes the seat over.
  const replaced = new Promise<number>((r) => ok.ws.on('close', (code) => r(code)))
  const again = await rawJoin(tw.url, resumeQuery(ok.welcome as Welcome))
  t.equal(again.welcome?.entityId, w.entityId, 'takeover keeps the entity')
  t.equal(await replaced, CloseCode.REPLACED, 'the old connection is closed with REPLACED (4013)')
  t.equal(tw.rooms.players, 2, 'still two seats: no duplicate, none lost')
  again.ws.close()
  await waitFor(() => tw.rooms.players === 1 && tw.server.held === 0, 2000, 'a polite close to free the seat at once')
  const m = parseSamples(await tw.metrics.text())
  t.equal(m.get('tickwire_resumes_total{outcome="invalid"}'), 3)
  t.equal(m.get('tickwire_resumes_total{outcome="used"}'), 1)
  t.equal(m.get('tickwire_resumes_total{outcome="resumed"}'), 2)
  t.equal(m.get('tickwire_disconnects_total{reason="replaced"}'), 1)
  // Malformed resume queries never reach the WebSocket: HTTP 400.
  for (const q of ['?room=r&resume=x', '?player=1&resume=x', '?room=r&player=0&resume=x', `?room=r&player=1&resume=${'a'.repeat(65)}`]) {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(tw.url + q)
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0)
        ws.terminate()
      })
      ws.on('open', () => resolve(101))
      ws.on('error', () => {})
    })
    t.equal(status, 400, q)
  }
  t.equal(parseSamples(await tw.metrics.text()).get('tickwire_http_rejected_total{reason="bad_query"}'), 4)
})

t.test('the SDK joins afresh when its resume is refused', async (t) => {
  const tw = await startTest({ resumeWindow: 10 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { room: 'r' })
  t.teardown(() => c.close())
  const first = c.welcome
  // Spoil the token so the server refuses the resume.
  ;(first as { resumeToken: string }).resumeToken = first.resumeToken.replace(/\.0\./, '.1.')
  const rejoined = new Promise<[Welcome, number]>((r) => c.on('rejoined', (w, code) => r([w, code])))
  dropTcp(c)
  const [w, code] = await rejoined
  t.equal(code, CloseCode.RESUME_INVALID, 'told why: the resume was refused')
  t.equal(w.roomId, 'r', 'rejoined the room it asked for')
  t.equal(c.welcome, w)
  t.not(w.playerId, first.playerId, 'as a new player')
  await waitFor(() => c.table.entities.has(w.entityId), 2000, 'state for the new seat')
  t.equal(c.rejoins, 1)
  await waitFor(() => tw.rooms.players === 2, 2000, 'the old seat still held, the new one playing')
})

t.test('--resume-window 0: no token, no hold; a polite close always frees the seat at once', async (t) => {
  const tw = await startTest({ resumeWindow: 0 })
  t.teardown(() => tw.stop())
  const c = await TickwireClient.connect(tw.url, { room: 'r', reconnect: false })
  t.equal(c.welcome.resumeToken, '')
  dropTcp(c)
  await waitFor(() => tw.rooms.players === 0, 2000, 'the seat to be freed')
  t.equal(tw.server.held, 0)
})

t.test('stop() releases held seats', async (t) => {
  const tw = await startTest({ resumeWindow: 30 })
  const c = await TickwireClient.connect(tw.url, { room: 'r', reconnect: false })
  dropTcp(c)
  await waitFor(() => tw.server.held === 1, 2000, 'the seat to be held')
  await tw.stop()
  t.equal(tw.server.held, 0)
  t.equal(tw.rooms.players, 0)
})

t.test('close() during a reconnect ends the session: no event after close', async (t) => {
  const tw = await startTest({ resumeWindow: 10 })
  const c = await TickwireClient.connect(tw.url, { room: 'r' })
  const events: string[] = []
  c.on('reconnecting', (code, _n, attempt) => {
    events.push(`reconnecting ${code} #${attempt}`)
    c.close()
  })
  c.on('close', (code) => events.push(`close ${code}`))
  c.on('rejoined', () => events.push('rejoined'))
  await tw.stop() // SHUTDOWN: the SDK would join afresh
  await sleep(1500)
  t.same(events, [`reconnecting ${CloseCode.SHUTDOWN} #1`, 'close 1000'])
  t.equal(c.closed, true)
})
