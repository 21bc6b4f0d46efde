/**
 * The browser client end to end: Debian's Chromium, headless, driven by
 * playwright-core, against a real tickwire serving the built page. Two pages
 * join one room; keys on one move its avatar on the other's canvas; the HUD
 * is live; a killed socket makes the page reconnect. Saves a screenshot in
 * test/output/.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import t from 'tap'
import { TickwireClient } from '../src/client/index.js'
import { launchChromium } from './helpers/browser.js'
import { sample, startTest, waitFor } from './helpers/server.js'

const outDir = fileURLToPath(new URL('./output/', import.meta.url))

interface PageState {
  connection: string
  roomId: string | null
  entityId: number
  tick: number
  tickRate: number
  resumes: number
  rejoins: number
  entities: { id: number; kind: number; x: number; y: number }[]
}

const state = (p: Page) => p.evaluate(() => (window as unknown as { tickwire: { state(): PageState } }).tickwire.state())
const drawnAt = (p: Page, id: number) =>
  p.evaluate((id) => (window as unknown as { tickwire: { drawnAt(id: number): { x: number; y: number } | null } }).tickwire.drawnAt(id), id)
/** The RGB of one canvas pixel at CSS coordinates. */
const pixel = (p: Page, x: number, y: number) =>
  p.evaluate(
    ([x, y]) => {
      const c = document.getElementById('game') as HTMLCanvasElement
      const k = c.width / c.clientWidth
      return Array.from(c.getContext('2d')!.getImageData(Math.round(x * k), Math.round(y * k), 1, 1).data.slice(0, 3))
    },
    [x, y] as const,
  )

async function until(p: Page, cond: (s: PageState) => boolean, ms: number, what: string): Promise<PageState> {
  const end = Date.now() + ms
  for (;;) {
    const s = await state(p)
    if (cond(s)) return s
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}: ${JSON.stringify({ ...s, entities: s.entities.length })}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('the server serves the built page safely: fixed types, caching, 404s, no path traversal', async (t) => {
  const tw = await startTest()
  t.teardown(() => tw.stop())
  const base = `http://127.0.0.1:${tw.port}`
  const index = await fetch(`${base}/`)
  t.equal(index.status, 200)
  t.equal(index.headers.get('content-type'), 'text/html; charset=utf-8')
  t.equal(index.headers.get('cache-control'), 'no-cache')
  t.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'/)
  const html = await index.text()
  const js = /src="\/(app-[A-Z0-9]+\.js)"/.exec(html)?.[1] as string
  t.ok(js, `index.html names the hashed bundle ${js}`)
  const bundle = await fetch(`${base}/${js}`)
  t.equal(bundle.headers.get('content-type'), 'text/javascript; charset=utf-8')
  t.equal(bundle.headers.get('cache-control'), 'public, max-age=31536000, immutable')
  const etag = bundle.headers.get('etag') as string
  t.equal((await fetch(`${base}/${js}`, { headers: { 'if-none-match': etag } })).status, 304, 'revalidation: 304')
  for (const path of ['/../package.json', '/%2e%2e/package.json', '/dist/web/index.html', '/app.js', '/index.htm', '/.env']) {
    t.equal((await fetch(base + path)).status, 404, `404 for ${path}`)
  }
  const info = (await (await fetch(`${base}/info`)).json()) as { game: string; world: { width: number } }
  t.equal(info.game, 'arena')
  t.ok(info.world.width > 0, '/info gives the world size')
  t.equal((await fetch(`${base}/info`, { method: 'POST' })).status, 404)
})

t.test('two browser pages play together in one room', async (t) => {
  const browser = await launchChromium(t, 'browser end-to-end test')
  if (!browser) return
  // One room, a large area of interest: each avatar sees the other wherever they spawn.
  const tw = await startTest({ aoiRadius: 5000, maxVisible: 256, resumeWindow: 10 })
  t.teardown(() => tw.stop())
  const base = `http://127.0.0.1:${tw.port}`
  const info = (await (await fetch(`${base}/info`)).json()) as { world: { width: number } }
  const errors: string[] = []
  const open = async (name: string) => {
    const page = await (await browser.newContext({ viewport: { width: 960, height: 640 } })).newPage()
    page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`))
    await page.goto(`${base}/?room=e2e&name=${name}`)
    return page
  }
  const a = await open('a')
  const b = await open('b')
  const sa = await until(a, (s) => s.connection === 'playing' && s.tick > 0, 10000, 'page a to play')
  const sb = await until(b, (s) => s.connection === 'playing' && s.tick > 0, 10000, 'page b to play')
  t.equal(sa.roomId, 'e2e')
  t.equal(sb.roomId, 'e2e')
  t.match(a.url(), /[?&]room=e2e/, 'the address is the invite link')
  const aId = sa.entityId
  const seen = await until(b, (s) => s.entities.some((e) => e.id === aId), 5000, "a's avatar in b's state")
  const x0 = (seen.entities.find((e) => e.id === aId) as { x: number }).x

  // Where b draws a's avatar, and what colour is there.
  await b.waitForTimeout(300)
  const at0 = await drawnAt(b, aId)
  t.ok(at0, "b draws a's avatar")
  const label = await b.evaluate((id) => (window as unknown as { tickwire: { labelOf(id: number): string | null } }).tickwire.labelOf(id), aId)
  t.match(label, /^a · \d+$/, `b labels a's avatar with a's name (props): ${String(label)}`)
  const before = await pixel(b, (at0 as { x: number }).x, (at0 as { y: number }).y)

  // Hold → on a for a second (pick the direction with room to move).
  const key = x0 < info.world.width / 2 ? 'ArrowRight' : 'ArrowLeft'
  await a.bringToFront()
  await a.keyboard.down(key)
  await a.waitForTimeout(1000)
  await a.keyboard.up(key)
  const moved = await until(
    b,
    (s) => Math.abs((s.entities.find((e) => e.id === aId)?.x ?? x0) - x0) > 100,
    5000,
    "a's avatar to move in b's replicated state",
  )
  const x1 = (moved.entities.find((e) => e.id === aId) as { x: number }).x
  t.ok(Math.abs(x1 - x0) > 100, `a moved from x=${x0} to x=${x1} as b sees it`)
  await b.waitForTimeout(300)
  const at1 = (await drawnAt(b, aId)) as { x: number; y: number }
  t.ok(Math.abs(at1.x - (at0 as { x: number }).x) > 50, `drawn ${Math.round(at1.x - (at0 as { x: number }).x)} px further on b's canvas`)
  const after = await pixel(b, (at0 as { x: number }).x, (at0 as { y: number }).y)
  t.notSame(after, before, `b's canvas changed where a's avatar was: ${before} -> ${after}`)
  t.same(await pixel(b, at1.x, at1.y), before, "a's avatar's colour is now at its new place")

  // The HUD is live.
  await b.waitForTimeout(1200)
  const tickrate = Number(await b.textContent('#hud-tickrate'))
  t.ok(tickrate >= 20 && tickrate <= 40, `HUD ticks/s ${tickrate} (server: 30 Hz)`)
  t.equal(await b.textContent('#hud-players'), '2', 'HUD: two players in the room')
  t.match((await b.textContent('#hud-ping')) ?? '', /^\d+ ms$/)

  mkdirSync(outDir, { recursive: true })
  await b.screenshot({ path: `${outDir}arena-e2e.png` })
  t.ok(existsSync(`${outDir}arena-e2e.png`), `screenshot at test/output/arena-e2e.png`)

  // Kill the pages' TCP connections (as a network failure would): they reconnect by themselves.
  const kill = spawnSync('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', String(tw.port)], { encoding: 'utf8' })
  if (kill.status !== 0) {
    t.comment(`ss -K unavailable (${kill.stderr.trim()}): closing the page's socket from inside instead`)
    await a.evaluate(() => (window as unknown as { tickwire: { client: { socket: WebSocket } } }).tickwire.client.socket.close())
  }
  const back = await until(a, (s) => s.connection === 'playing' && s.resumes + s.rejoins >= 1, 10000, 'page a to reconnect')
  t.pass(`page a reconnected by itself (${back.resumes} resume, ${back.rejoins} rejoin)`)
  if (kill.status === 0) t.equal(back.entityId, aId, 'a network drop resumes the same avatar')
  const tickAfter = back.tick
  await until(a, (s) => s.tick > tickAfter + 10, 3000, 'state to flow again')
  t.same(errors, [], 'no page errors')
})

t.test('a page of another origin cannot open a game socket (cross-site WebSocket hijacking), a listed origin can', async (t) => {
  const browser = await launchChromium(t, 'cross-origin browser test')
  if (!browser) return
  // The attacker's page: served from another port of the same host, so another origin; it tries to join the victim's room.
  const attacker = createServer((req, res) => {
    const target = new URL(req.url ?? '/', 'http://x').searchParams.get('target') ?? ''
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(`<!doctype html><script>
      window.outcome = new Promise((resolve) => {
        const ws = new WebSocket(${JSON.stringify('')} + decodeURIComponent(${JSON.stringify(encodeURIComponent(target))}))
        let opened = false, frames = 0
        ws.onopen = () => { opened = true }
        ws.onmessage = () => { frames++; if (frames === 2) ws.close() }
        ws.onclose = (e) => resolve({ opened, frames, code: e.code })
      })
    </script>`)
  })
  await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => attacker.close())
  const attackerOrigin = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}`
  const attempt = async (wsUrl: string) => {
    const page = await browser.newPage()
    await page.goto(`${attackerOrigin}/?target=${encodeURIComponent(wsUrl)}`)
    const out = await page.evaluate(() => (window as unknown as { outcome: Promise<{ opened: boolean; frames: number; code: number }> }).outcome)
    await page.close()
    return out
  }

  const tw = await startTest()
  t.teardown(() => tw.stop())
  const victim = await TickwireClient.connect(`${tw.url}?room=victim`, { reconnect: false })
  t.teardown(() => victim.close())
  const refused = await attempt(`${tw.url}?room=victim`)
  t.same(refused, { opened: false, frames: 0, code: 1006 }, 'the socket never opens')
  t.equal(sample(await tw.metrics.text(), 'tickwire_http_rejected_total{reason="origin"}'), 1, 'refused with 403 and counted')
  t.equal(tw.rooms.byId.get('victim')?.seats.length, 1, "nobody joined the victim's room")

  // The same page, its origin listed: it plays (so the refusal above is the Origin check, not a page that cannot connect).
  const listed = await startTest({ allowedOrigins: attackerOrigin })
  t.teardown(() => listed.stop())
  const allowed = await attempt(`${listed.url}?room=victim`)
  t.same(allowed, { opened: true, frames: 2, code: 1005 }, 'a listed origin gets WELCOME and state')
})
