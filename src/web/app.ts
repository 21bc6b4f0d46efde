/**
 * The browser client of the reference arena: built on the client SDK (no
 * protocol code of its own), bundled by `scripts/build-web.ts` into
 * dist/web/ and served by the game server at `/`.
 *
 * Other players are drawn through a SnapshotInterpolator (a little in the
 * past, smooth at any tick rate); the player's own avatar through an
 * InputPredictor (it answers the keys at once and is reconciled with each
 * STATE). `window.tickwire` exposes the replicated state for tests.
 */
import { ConnectError, InputPredictor, SnapshotInterpolator, TickwireClient, closeCodeName, joinProblem } from '../client/index.js'
import { AVATAR_RADIUS, Kind, ORB_RADIUS, stickVelocity } from '../games/arena.js'

type Connection = 'connecting' | 'playing' | 'reconnecting' | 'offline'

interface Info {
  readonly world: { readonly width: number; readonly height: number }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const canvas = $<HTMLCanvasElement>('game')
const ctx = canvas.getContext('2d') as CanvasRenderingContext2D
const hud = {
  state: $('hud-state'),
  room: $('hud-room'),
  share: $<HTMLButtonElement>('hud-share'),
  ping: $('hud-ping'),
  tickrate: $('hud-tickrate'),
  bytes: $('hud-bytes'),
  players: $('hud-players'),
  score: $('hud-score'),
}
const banner = $('banner')
const stickEl = $('stick')
const knob = $('stick-knob')

const params = new URLSearchParams(location.search)
const name = params.get('name') ?? `guest${Math.floor(Math.random() * 1000)}`
// A page served over https: plays over wss: (a browser refuses ws: from a secure page anyway).
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/play`
/**
 * The join token for a server with `--auth`: the game's site links here with
 * `?token=<jwt>`. It is handed to the SDK (which sends it in
 * Sec-WebSocket-Protocol, not in the URL), taken out of the address bar at
 * once (the address bar is the invite link, and it is kept in history) and
 * never logged or shown. The same token serves every reconnect: when it has
 * expired the server refuses it, and the page keeps retrying until it is
 * reloaded with a fresh one.
 */
const token = params.get('token') ?? undefined
if (token !== undefined) {
  const clean = new URL(location.href)
  clean.searchParams.delete('token')
  history.replaceState(null, '', clean)
}

let connection: Connection = 'connecting'
let client: TickwireClient | null = null
let interp: SnapshotInterpolator | null = null
let predictor: InputPredictor | null = null
let world = { width: 1000, height: 1000 }
let pingMs = NaN
let roomPlayers = 0
let frames: number[] = [] // arrival times of the last second's STATE frames
let bytesMark = { at: performance.now(), bytes: 0, rate: 0 }

function setConnection(c: Connection, message?: string): void {
  connection = c
  hud.state.textContent = c
  hud.state.className = `state ${c}`
  banner.hidden = message === undefined
  if (message !== undefined) banner.textContent = message
}

// ---- input: keys, and a touch stick ----

const keys = new Set<string>()
let touch: { id: number; x0: number; y0: number; mx: number; my: number } | null = null
const KEYMAP: Record<string, [number, number]> = {
  ArrowLeft: [-1, 0], KeyA: [-1, 0], ArrowRight: [1, 0], KeyD: [1, 0],
  ArrowUp: [0, -1], KeyW: [0, -1], ArrowDown: [0, 1], KeyS: [0, 1],
}
addEventListener('keydown', (e) => {
  if (KEYMAP[e.code]) {
    keys.add(e.code)
    e.preventDefault()
  }
})
addEventListener('keyup', (e) => keys.delete(e.code))
addEventListener('blur', () => keys.clear())
canvas.addEventListener('pointerdown', (e) => {
  if (e.pointerType === 'mouse' || touch) return // one finger steers; others are ignored
  touch = { id: e.pointerId, x0: e.clientX, y0: e.clientY, mx: 0, my: 0 }
  stickEl.hidden = false
  stickEl.style.left = `${e.clientX}px`
  stickEl.style.top = `${e.clientY}px`
  canvas.setPointerCapture(e.pointerId)
})
canvas.addEventListener('pointermove', (e) => {
  if (!touch || e.pointerId !== touch.id) return
  const dx = e.clientX - touch.x0
  const dy = e.clientY - touch.y0
  const len = Math.hypot(dx, dy)
  const k = len > 60 ? 60 / len : 1 // 60 px of drag is full speed
  touch.mx = Math.round((dx * k * 100) / 60)
  touch.my = Math.round((dy * k * 100) / 60)
  knob.style.transform = `translate(${dx * k}px, ${dy * k}px)`
})
const endTouch = (e: PointerEvent) => {
  if (!touch || e.pointerId !== touch.id) return
  touch = null
  stickEl.hidden = true
  knob.style.transform = ''
}
canvas.addEventListener('pointerup', endTouch)
canvas.addEventListener('pointercancel', endTouch)

/** The stick, in the arena's input units: integers in [-100, 100]. */
function readStick(): [number, number] {
  if (touch) return [touch.mx, touch.my]
  let x = 0
  let y = 0
  for (const k of keys) {
    const d = KEYMAP[k]
    if (d) {
      x += d[0]
      y += d[1]
    }
  }
  const len = Math.hypot(x, y)
  return len === 0 ? [0, 0] : [Math.round((x / len) * 100), Math.round((y / len) * 100)]
}

// ---- the session ----

function newPredictor(tickHz: number): InputPredictor {
  const clampX = (v: number) => Math.min(world.width - AVATAR_RADIUS, Math.max(AVATAR_RADIUS, v))
  const clampY = (v: number) => Math.min(world.height - AVATAR_RADIUS, Math.max(AVATAR_RADIUS, v))
  return new InputPredictor({
    tickHz,
    state: [0, 0],
    input: [0, 0],
    // The arena's movement rule (src/games/arena.ts): the server's own stick-to-velocity, straight-line move, walls.
    step: (s, input, dt, out) => {
      const v = stickVelocity(input[0] as number, input[1] as number)
      out[0] = clampX((s[0] as number) + v.vx * dt)
      out[1] = clampY((s[1] as number) + v.vy * dt)
    },
  })
}

let lastSent: [number, number] | null = null
/** False from a (re)start until the first STATE has placed our avatar: the camera holds still meanwhile. */
let synced = false
let camera = { x: 0, y: 0 }

function attach(c: TickwireClient): void {
  client = c
  const w = c.welcome
  interp = new SnapshotInterpolator({ tickHz: w.tickHz, fields: w.fields, interpolate: ['x', 'y'] })
  predictor = newPredictor(w.tickHz)
  lastSent = null
  synced = false
  bytesMark = { at: performance.now(), bytes: c.bytesReceived, rate: 0 }
  const restart = () => {
    interp?.reset()
    predictor?.reset()
    synced = false
    lastSent = null // after a reconnect the server holds a neutral input: send the stick again
  }
  c.on('state', (frame, result) => {
    const now = performance.now()
    frames.push(now)
    interp?.push(frame.tick, now, c.table.entities, result.full ? undefined : result.created)
    const me = c.welcome.entityId
    const x = c.table.get(me, 'x')
    const y = c.table.get(me, 'y')
    if (x !== undefined && y !== undefined) {
      predictor?.reconcile([x, y], frame.inputSeq, frame.tick)
      synced = true
    }
    if (connection !== 'playing') setConnection('playing')
  })
  c.on('pong', (rtt, players) => {
    pingMs = rtt
    roomPlayers = players
  })
  c.on('reconnecting', (code, codeName, attempt) => {
    setConnection('reconnecting', `Connection lost (${codeName ?? code}). Reconnecting${attempt > 1 ? ` (attempt ${attempt})` : ''}…`)
  })
  c.on('resumed', () => {
    restart()
    setConnection('playing')
  })
  c.on('rejoined', (welcome, code, codeName) => {
    restart()
    showRoom(welcome.roomId)
    setConnection('playing', `Your seat was lost (${codeName ?? code}); you joined room ${welcome.roomId}.`)
    setTimeout(() => {
      if (connection === 'playing') banner.hidden = true
    }, 3000)
  })
  c.on('close', (code, reason) => {
    client = null
    const named = closeCodeName(code)
    lastFailure = `Disconnected: ${named !== undefined ? `${named} (${code})` : code}${reason ? ` ${reason}` : ''}.` // the retry banner repeats it
    setConnection('offline', `${lastFailure} Trying again…`)
    attempt = 1 // keep the banner up while we retry
    setTimeout(() => void connect(), 2000)
  })
  showRoom(w.roomId)
  setConnection('playing')
}

function showRoom(roomId: string): void {
  hud.room.textContent = roomId
  // The address bar becomes the invite link.
  const url = new URL(location.href)
  url.searchParams.set('room', roomId)
  history.replaceState(null, '', url)
}

hud.share.addEventListener('click', () => {
  void navigator.clipboard?.writeText(location.href).then(() => {
    hud.share.textContent = 'copied!'
    setTimeout(() => (hud.share.textContent = 'copy invite link'), 1500)
  })
})

/**
 * Why the last attempt failed, for the retry banner: a close code the server
 * sent (SERVER_FULL, ROOM_FULL, ADDRESS_LIMIT... arrive after the upgrade) by
 * name, else the generic line (a browser cannot tell an HTTP refusal from an
 * unreachable server: both are 1006).
 */
function failureLine(err: unknown): string {
  if (err instanceof ConnectError) {
    if (err.status !== undefined) return `The server refused to connect (HTTP ${err.status}).`
    const named = err.code !== undefined ? closeCodeName(err.code) : undefined
    if (named !== undefined) return `The server refused to connect: ${named} (${err.code}).`
  }
  return 'Cannot reach the server.'
}

let attempt = 0
let lastFailure = 'Cannot reach the server.'
async function connect(): Promise<void> {
  // The address bar holds the room (the one asked for, or the one quick play gave us).
  const room = new URLSearchParams(location.search).get('room') ?? undefined
  // The server answers these with HTTP 400, which a browser cannot read: say so, and do not retry a link that cannot work.
  const problem = joinProblem({ room, name })
  if (problem !== null) {
    setConnection('offline', `Cannot join: ${problem}. Check the invite link.`)
    return
  }
  setConnection(attempt === 0 ? 'connecting' : 'offline', attempt === 0 ? undefined : `${lastFailure} Retrying (attempt ${attempt + 1})…`)
  try {
    const res = await fetch('/info')
    world = ((await res.json()) as Info).world
    attach(await TickwireClient.connect(wsUrl, { room, name, token }))
    attempt = 0
  } catch (err) {
    lastFailure = failureLine(err)
    attempt++
    setConnection('offline', `${lastFailure} Retrying (attempt ${attempt + 1})…`)
    setTimeout(() => void connect(), Math.min(5000, 500 * 2 ** attempt))
  }
}

setInterval(() => client?.ping(), 1000)
setInterval(() => {
  const now = performance.now()
  frames = frames.filter((t) => t > now - 1000)
  const c = client
  if (c) {
    const dt = (now - bytesMark.at) / 1000
    bytesMark = { at: now, bytes: c.bytesReceived, rate: (c.bytesReceived - bytesMark.bytes) / dt }
  }
  hud.ping.textContent = Number.isFinite(pingMs) ? `${pingMs.toFixed(0)} ms` : '–'
  hud.tickrate.textContent = String(frames.length)
  hud.bytes.textContent = (bytesMark.rate / 1000).toFixed(1)
  hud.players.textContent = String(roomPlayers)
  const score = c ? c.table.get(c.welcome.entityId, 'score') : undefined
  hud.score.textContent = String(score ?? 0)
}, 250)

// ---- drawing ----

const view = new Map<number, Float64Array>()
/** Where each entity was drawn last frame, in CSS pixels of the canvas (for tests). */
const drawnAt = new Map<number, { x: number; y: number }>()

function colorOf(id: number): string {
  return `hsl(${(id * 137.508) % 360} 70% 58%)`
}

function draw(now: number): void {
  const dpr = devicePixelRatio || 1
  const w = canvas.clientWidth
  const h = canvas.clientHeight
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr)
    canvas.height = Math.round(h * dpr)
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
  ctx.fillStyle = '#0d1117'
  ctx.fillRect(0, 0, w, h)
  const c = client
  const p = predictor
  if (c && p && interp) {
    const stick = readStick()
    if (connection === 'playing' && (lastSent === null || stick[0] !== lastSent[0] || stick[1] !== lastSent[1])) {
      p.record(c.sendInput(stick), stick) // send on change: the server holds the last input
      lastSent = stick
    }
    p.advance(now)
    const me = c.welcome.entityId
    if (synced) {
      const pos = p.sample(now)
      camera = { x: pos[0] as number, y: pos[1] as number }
    }
    const cx = camera.x
    const cy = camera.y
    ctx.save()
    const ox = Math.round(w / 2 - cx)
    const oy = Math.round(h / 2 - cy)
    ctx.translate(ox, oy)
    drawnAt.clear()
    drawnAt.set(me, { x: cx + ox, y: cy + oy })
    // The arena floor and its grid.
    ctx.fillStyle = '#161b22'
    ctx.fillRect(0, 0, world.width, world.height)
    ctx.strokeStyle = '#21262d'
    ctx.lineWidth = 1
    ctx.beginPath()
    for (let x = 0; x <= world.width; x += 100) {
      ctx.moveTo(x, 0)
      ctx.lineTo(x, world.height)
    }
    for (let y = 0; y <= world.height; y += 100) {
      ctx.moveTo(0, y)
      ctx.lineTo(world.width, y)
    }
    ctx.stroke()
    ctx.strokeStyle = '#f0883e'
    ctx.lineWidth = 4
    ctx.strokeRect(0, 0, world.width, world.height)
    const kindIx = c.welcome.fields.findIndex((f) => f.name === 'kind')
    const xIx = c.welcome.fields.findIndex((f) => f.name === 'x')
    const yIx = c.welcome.fields.findIndex((f) => f.name === 'y')
    const scoreIx = c.welcome.fields.findIndex((f) => f.name === 'score')
    ctx.textAlign = 'center'
    ctx.font = '12px system-ui, sans-serif'
    for (const [id, v] of interp.sample(now, view)) {
      if (id === me) continue
      const x = v[xIx] as number
      const y = v[yIx] as number
      if (v[kindIx] === Kind.ORB) {
        ctx.fillStyle = '#e3b341'
        ctx.beginPath()
        ctx.arc(x, y, ORB_RADIUS, 0, Math.PI * 2)
        ctx.fill()
      } else {
        drawnAt.set(id, { x: x + ox, y: y + oy })
        ctx.fillStyle = colorOf(id)
        ctx.beginPath()
        ctx.arc(x, y, AVATAR_RADIUS, 0, Math.PI * 2)
        ctx.fill()
        ctx.fillStyle = '#e6edf3'
        // The player's name from the room's props (sent once, not per tick), and the score, above the avatar.
        const label = `${labelOf(c, id)} · ${String(v[scoreIx] ?? 0)}`
        labels.set(id, label)
        ctx.fillText(label, x, y - AVATAR_RADIUS - 5)
      }
    }
    // Our avatar, predicted, on top (not before the first state has placed it).
    if (!synced) {
      ctx.restore()
      requestAnimationFrame(draw)
      return
    }
    ctx.fillStyle = colorOf(me)
    ctx.beginPath()
    ctx.arc(cx, cy, AVATAR_RADIUS, 0, Math.PI * 2)
    ctx.fill()
    ctx.strokeStyle = '#ffffff'
    ctx.lineWidth = 3
    ctx.stroke()
    ctx.fillStyle = '#0d1117'
    ctx.font = 'bold 12px system-ui, sans-serif'
    ctx.fillText('you', cx, cy + 4)
    ctx.restore()
  }
  requestAnimationFrame(draw)
}
requestAnimationFrame(draw)

/** The label drawn over each avatar in the last frame. */
const labels = new Map<number, string>()

/** An avatar's player name from its props (the arena declares `name`), or its number for a player who gave none. */
function labelOf(c: TickwireClient, id: number): string {
  const n = c.props.get(id)?.name
  return typeof n === 'string' && n !== '' ? n : `#${id}`
}

// ---- for tests and the curious: the replicated state, as received ----

declare global {
  interface Window {
    tickwire: unknown
  }
}
window.tickwire = {
  get client() {
    return client
  },
  /** Where an avatar was drawn in the last frame (CSS pixels), or null. */
  drawnAt(id: number) {
    return drawnAt.get(id) ?? null
  },
  /** The label drawn over an avatar in the last frame (its player's name and score), or null. */
  labelOf(id: number) {
    return labels.get(id) ?? null
  },
  state() {
    const c = client
    const entities: { id: number; kind: number; x: number; y: number }[] = []
    if (c) {
      for (const id of c.table.entities.keys()) {
        entities.push({ id, kind: c.table.get(id, 'kind') ?? -1, x: c.table.get(id, 'x') ?? NaN, y: c.table.get(id, 'y') ?? NaN })
      }
    }
    return {
      connection,
      roomId: c?.welcome.roomId ?? null,
      entityId: c?.welcome.entityId ?? -1,
      tick: c?.table.tick ?? 0,
      tickRate: frames.length,
      resumes: c?.resumes ?? 0,
      rejoins: c?.rejoins ?? 0,
      entities,
    }
  },
}

void connect()
