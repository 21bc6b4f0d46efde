/**
 * The monitor page: one self-contained HTML document (no external assets),
 * its script and style inline and allowed by hash in a CSP that allows
 * nothing else (`connect-src 'self'`: the page talks only to the API beside
 * it). The token is asked for once and kept in sessionStorage (gone with the
 * tab); every API call sends it as `Authorization: Bearer`. The page polls
 * /monitor/api/state every second and draws each worker's tick p50/p99 and
 * load as SVG sparklines from the per-second history the server keeps (two minutes). Untrusted text
 * (player names) only ever reaches the DOM through `textContent`.
 */
import { createHash } from 'node:crypto'

const STYLE = `
:root{color-scheme:dark;--bg:#0f1419;--panel:#171e26;--line:#2a3542;--text:#d8e0e8;--dim:#8493a3;--accent:#4fb3ff;--warn:#ffb347;--bad:#ff5d5d;--ok:#52d68a}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;align-items:center;gap:16px;padding:12px 20px;border-bottom:1px solid var(--line);background:var(--panel)}
header h1{font-size:17px;margin:0;font-weight:600;letter-spacing:.3px}
header h1 b{color:var(--accent)}
#status{margin-left:auto;color:var(--dim);font-size:13px}
#status.live::before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;background:var(--ok);margin-right:6px}
#status.down::before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;background:var(--bad);margin-right:6px}
main{padding:16px 20px;display:grid;gap:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.card .k{color:var(--dim);font-size:12px;text-transform:uppercase;letter-spacing:.6px}
.card .v{font-size:24px;font-weight:600;margin-top:2px}
section{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
section h2{font-size:13px;margin:0 0 10px;color:var(--dim);text-transform:uppercase;letter-spacing:.6px;font-weight:600}
#workers{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.worker{border:1px solid var(--line);border-radius:6px;padding:10px}
.worker.down{border-color:var(--bad)}
.worker .title{display:flex;justify-content:space-between;font-weight:600}
.worker .title span{color:var(--dim);font-weight:400;font-size:12px}
.figs{display:flex;gap:14px;font-size:12px;color:var(--dim);margin:4px 0 6px}
.figs b{color:var(--text);font-weight:600}
.chart{display:flex;align-items:center;gap:8px;font-size:11px;color:var(--dim)}
.chart label{width:58px}
svg.spark{flex:1;height:44px;background:#0b1015;border-radius:4px}
svg.spark polyline{fill:none;stroke-width:1.5;vector-effect:non-scaling-stroke}
svg.spark .p99{stroke:var(--accent)}
svg.spark .p50{stroke:#8fd3ff;opacity:.55}
svg.spark .load{stroke:var(--warn)}
svg.spark .budget{stroke:var(--bad);stroke-dasharray:3 3;opacity:.7;vector-effect:non-scaling-stroke}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;color:var(--dim);font-weight:500;border-bottom:1px solid var(--line);padding:6px 8px}
td{border-bottom:1px solid #1f2832;padding:6px 8px;vertical-align:middle}
td.num{font-variant-numeric:tabular-nums}
.bar{display:inline-block;width:70px;height:6px;background:#26313d;border-radius:3px;margin-left:8px;vertical-align:middle;overflow:hidden}
.bar i{display:block;height:100%;background:var(--accent)}
.chip{display:inline-flex;align-items:center;gap:4px;background:#223040;border-radius:10px;padding:1px 4px 1px 8px;margin:2px 4px 2px 0;font-size:12px}
.chip.away{opacity:.5}
button{font:inherit;color:var(--text);background:#26313d;border:1px solid var(--line);border-radius:5px;padding:3px 10px;cursor:pointer}
button:hover{border-color:var(--accent)}
button.danger:hover{border-color:var(--bad);color:var(--bad)}
.chip button{padding:0 5px;border-radius:8px;font-size:11px;line-height:16px}
.tag{font-size:11px;padding:1px 6px;border-radius:8px;background:#26313d;color:var(--dim)}
.reason{font-family:ui-monospace,monospace;font-size:12px}
.empty{color:var(--dim);padding:8px}
#login{max-width:420px;margin:60px auto;background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:20px}
#login input{width:100%;margin:10px 0;padding:8px;background:#0b1015;color:var(--text);border:1px solid var(--line);border-radius:5px;font:inherit}
#login p{color:var(--dim);margin:0}
#notice{min-height:18px;color:var(--warn);font-size:13px}
.hidden{display:none}
`

const SCRIPT = `
'use strict'
const KEY = 'tickwire-monitor-token'
const HISTORY = 120
let token = sessionStorage.getItem(KEY) || ''
let timer = 0
const $ = (id) => document.getElementById(id)
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = String(text); return e }
const svgEl = (tag, attrs) => { const e = document.createElementNS('http://www.w3.org/2000/svg', tag); for (const k in attrs) e.setAttribute(k, String(attrs[k])); return e }
const ms = (s) => (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms'
const pct = (x) => (x * 100).toFixed(1) + '%'
const age = (s) => s === null ? '\\u2014' : s < 60 ? Math.floor(s) + ' s' : s < 3600 ? Math.floor(s / 60) + ' min' : (s / 3600).toFixed(1) + ' h'
const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false })

function api(path, method) {
  const headers = token ? { authorization: 'Bearer ' + token } : {}
  return fetch(path, { method: method || 'GET', headers, cache: 'no-store' })
}
function status(text, cls) { const s = $('status'); s.textContent = text; s.className = cls || '' }
function notice(text) { $('notice').textContent = text }
function showLogin(why) {
  clearTimeout(timer)
  $('login').classList.remove('hidden'); $('app').classList.add('hidden')
  $('login-why').textContent = why
  status('locked', 'down')
  $('token').focus()
}
async function poll() {
  clearTimeout(timer)
  try {
    const r = await api('/monitor/api/state')
    if (r.status === 401) return showLogin(token ? 'That token was refused. Enter the monitor token (--monitor-token).' : 'Enter the monitor token (--monitor-token).')
    if (!r.ok) { status('error ' + r.status, 'down') } else {
      $('login').classList.add('hidden'); $('app').classList.remove('hidden')
      render(await r.json())
      status('live \\u00b7 ' + new Date().toLocaleTimeString([], { hour12: false }), 'live')
    }
  } catch (e) { status('unreachable', 'down') }
  timer = setTimeout(poll, 1000)
}

// x: one unit per poll, at least MIN_SPAN wide (the newest at the right edge); y: 0 at the bottom, max at the top.
const MIN_SPAN = 30
function spark(points, max, cls, budget) {
  const span = Math.max(MIN_SPAN, points.length - 1)
  const svg = svgEl('svg', { class: 'spark', viewBox: '0 0 ' + span + ' 40', preserveAspectRatio: 'none' })
  const top = Math.max(max, 1e-9)
  if (budget !== undefined && budget <= top) { const y = 40 - (budget / top) * 38; svg.appendChild(svgEl('line', { class: 'budget', x1: 0, x2: span, y1: y, y2: y })) }
  const off = span - (points.length - 1)
  for (const [key, c] of cls) {
    const xy = points.map((p, i) => [off + i, (39 - Math.min(1, p[key] / top) * 38).toFixed(2)])
    if (xy.length === 1) xy.unshift([off - 1, xy[0][1]])
    svg.appendChild(svgEl('polyline', { class: c, points: xy.map((q) => q.join(',')).join(' ') }))
  }
  return svg
}

function card(k, v) { const c = el('div', 'card'); c.appendChild(el('div', 'k', k)); c.appendChild(el('div', 'v', v)); return c }

function render(s) {
  $('machine').textContent = s.machine
  const machines = new Set(s.rooms.map((r) => r.machine)); machines.add(s.machine)
  const players = s.rooms.reduce((n, r) => n + r.players, 0)
  const cards = $('cards'); cards.replaceChildren(
    card('machines', machines.size), card('workers up', s.workers.filter((w) => w.up).length + ' / ' + s.workers.length),
    card('rooms', s.rooms.length), card('players', players),
    card('worst tick p99', s.workers.length ? ms(Math.max(...s.workers.map((w) => w.tick.p99))) : '\\u2014'),
    card('recent disconnects', s.disconnects.length))

  const ws = $('workers'); ws.replaceChildren()
  for (const w of s.workers) {
    const h = w.history.slice(-HISTORY)
    const box = el('div', 'worker' + (w.up ? '' : ' down')); box.dataset.worker = String(w.worker)
    const title = el('div', 'title', 'worker ' + w.worker); title.appendChild(el('span', '', w.name + (w.up ? '' : ' \\u00b7 not answering'))); box.appendChild(title)
    const figs = el('div', 'figs')
    for (const [k, v] of [['p50', ms(w.tick.p50)], ['p99', ms(w.tick.p99)], ['load', pct(w.tick.load)], ['budget', ms(w.tick.budget)], ['rooms', w.rooms], ['players', w.players]]) {
      const f = el('span', '', k + ' '); f.appendChild(el('b', '', v)); figs.appendChild(f)
    }
    box.appendChild(figs)
    const maxTick = Math.max(w.tick.budget * 0.1, ...h.map((p) => p.p99))
    const c1 = el('div', 'chart'); c1.appendChild(el('label', '', 'tick time')); c1.appendChild(spark(h, maxTick * 1.1, [['p50', 'p50'], ['p99', 'p99']], w.tick.budget)); box.appendChild(c1)
    const c2 = el('div', 'chart'); c2.appendChild(el('label', '', 'load')); c2.appendChild(spark(h, Math.max(0.05, ...h.map((p) => p.load)) * 1.1, [['load', 'load']])); box.appendChild(c2)
    ws.appendChild(box)
  }

  const rb = $('rooms'); rb.replaceChildren()
  if (s.rooms.length === 0) { const tr = el('tr'); const td = el('td', 'empty', 'no rooms open'); td.colSpan = 7; tr.appendChild(td); rb.appendChild(tr) }
  for (const r of s.rooms) {
    const tr = el('tr'); tr.dataset.room = r.id
    tr.appendChild(el('td', '', r.id))
    tr.appendChild(el('td', '', r.machine))
    tr.appendChild(el('td', '', r.worker === null ? r.workerName : r.worker + ' (' + r.workerName + ')'))
    const p = el('td', 'num players', r.players + ' / ' + r.capacity); const bar = el('span', 'bar'); const fill = el('i'); fill.style.width = Math.min(100, (100 * r.players) / r.capacity) + '%'; bar.appendChild(fill); p.appendChild(bar); tr.appendChild(p)
    tr.appendChild(el('td', 'num', age(r.age)))
    const who = el('td')
    for (const pl of r.list) {
      const chip = el('span', 'chip' + (pl.connected ? '' : ' away'), pl.name || ('#' + pl.id))
      chip.title = 'player ' + pl.id + (pl.connected ? '' : ' (seat held: connection dropped)')
      if (!r.remote) { const x = el('button', 'danger', '\\u00d7'); x.title = 'close this player'; x.dataset.player = String(pl.id); x.onclick = () => closePlayer(r, pl); chip.appendChild(x) }
      who.appendChild(chip)
    }
    if (r.players > r.list.length) who.appendChild(el('span', 'tag', '+' + (r.players - r.list.length) + ' more'))
    tr.appendChild(who)
    const act = el('td')
    if (r.remote) act.appendChild(el('span', 'tag', 'read-only (other machine)'))
    else { const b = el('button', 'danger close-room', 'close room'); b.onclick = () => closeRoom(r); act.appendChild(b) }
    tr.appendChild(act)
    rb.appendChild(tr)
  }

  const db = $('disconnects'); db.replaceChildren()
  if (s.disconnects.length === 0) { const tr = el('tr'); const td = el('td', 'empty', 'no disconnects yet'); td.colSpan = 5; tr.appendChild(td); db.appendChild(tr) }
  for (const d of s.disconnects) {
    const tr = el('tr'); tr.dataset.reason = d.reason
    tr.appendChild(el('td', 'num', clock(d.at))); tr.appendChild(el('td', 'reason', d.reason)); tr.appendChild(el('td', '', d.room === null ? '\\u2014' : d.room))
    tr.appendChild(el('td', '', d.worker)); tr.appendChild(el('td', 'num', d.player))
    db.appendChild(tr)
  }
}

async function act(path, what) {
  try {
    const r = await api(path, 'POST')
    const body = await r.json().catch(() => ({}))
    if (r.status === 401) return showLogin('The token was refused.')
    notice(r.ok ? what + ': ' + body.closed + ' closed (4017 CLOSED_BY_OPERATOR)' : what + ': ' + (body.error || ('error ' + r.status)))
  } catch (e) { notice(what + ': request failed') }
  poll()
}
function closeRoom(r) {
  if (!confirm('Close room ' + r.id + ' on worker ' + r.worker + '? Its ' + r.players + ' player(s) are disconnected with 4017 CLOSED_BY_OPERATOR.')) return
  act('/monitor/api/rooms/' + encodeURIComponent(r.id) + '/close', 'room ' + r.id)
}
function closePlayer(r, pl) {
  if (!confirm('Close player ' + (pl.name || pl.id) + ' (#' + pl.id + ') in room ' + r.id + '? They are disconnected with 4017 CLOSED_BY_OPERATOR.')) return
  act('/monitor/api/players/' + r.worker + '/' + pl.id + '/close', 'player #' + pl.id)
}

$('login-form').addEventListener('submit', (e) => { e.preventDefault(); token = $('token').value.trim(); sessionStorage.setItem(KEY, token); poll() })
$('logout').addEventListener('click', () => { sessionStorage.removeItem(KEY); token = ''; showLogin('Token forgotten.') })
poll()
`

const BODY = `<header><h1><b>tickwire</b> monitor</h1><span class="tag" id="machine"></span><button id="logout" type="button">forget token</button><span id="status">connecting</span></header>
<div id="login" class="hidden"><form id="login-form"><p id="login-why"></p><input id="token" type="password" autocomplete="off" placeholder="monitor token" aria-label="monitor token"><button type="submit">Open monitor</button></form></div>
<main id="app" class="hidden">
<div class="cards" id="cards"></div>
<section><h2>Workers: tick time (p50, p99; dashed: the budget, once in range) and load, last 2 minutes</h2><div id="workers"></div></section>
<section><h2>Rooms</h2><div id="notice"></div><table><thead><tr><th>room</th><th>machine</th><th>worker</th><th>players</th><th>age</th><th>who</th><th></th></tr></thead><tbody id="rooms"></tbody></table></section>
<section><h2>Recent disconnects</h2><table><thead><tr><th>time</th><th>reason</th><th>room</th><th>worker</th><th>player</th></tr></thead><tbody id="disconnects"></tbody></table></section>
</main>`

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`

/** The page. */
export const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer"><title>tickwire monitor</title><style>${STYLE}</style></head><body>${BODY}<script>${SCRIPT}</script></body></html>`

/** Its Content-Security-Policy: only its own script and style (by hash), only requests to its own origin. */
export const PAGE_CSP = `default-src 'none'; script-src ${hash(SCRIPT)}; style-src ${hash(STYLE)}; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
