/**
 * The `/play` upgrade, in the order PROTOCOL.md §1 gives: readiness, the
 * WebSocket handshake, Origin, the per-address budgets, the query, the
 * resume token's MAC; then, for a named room this worker does not run, the
 * room directory (which may place the room here, name its owner for a
 * REDIRECT, or not answer: HTTP 503 `room directory unavailable`).
 * Every refusal is an HTTP status with a plain-text body, counted by reason.
 */
import { newClientMessage } from '../../proto/index.js'
import { DirectoryUnavailable, type LocateResult, type RoomDirectory } from '../directory/directory.js'
import type { EventLog, Logger } from '../log.js'
import { AddressLimit, DisconnectReason, ResumeOutcome, UpgradeRejectReason, type Stats } from '../metrics/stats.js'
import type { Rooms } from '../sim/room.js'
import { AuthFailure, AuthMode, roomAllowed, tokenOf, type Identity, type Verifier } from '../auth/auth.js'
import { budgetKey, clientAddress, type AddressBook, type AddressEntry } from './addresses.js'
import { JOIN, type Conn, type Intent } from './conn.js'
import { handshakeRefusal, writeRefusal } from './handshake.js'
import { originAllowed, type OriginPolicy } from './origin.js'
import { parseJoinQuery, type JoinQuery } from './query.js'
import type { ResumeTokens } from './resume.js'
import type { Routing } from './routing.js'
import type uWS from './uws.js'

export interface UpgradeDeps {
  readonly rooms: Rooms
  readonly book: AddressBook
  readonly tokens: ResumeTokens
  readonly stats: Stats
  readonly events: EventLog
  readonly log: Logger
  readonly trusted: ReadonlySet<string>
  readonly origins: OriginPolicy
  readonly routing: Routing
  /** Absent: a single process, every room is local. */
  readonly directory: RoomDirectory | undefined
  /** `--auth`, and the verifier of join tokens (null when auth is off). */
  readonly authMode: AuthMode
  readonly verifier: Verifier | null
  readonly inputBurst: number
  readonly messageBurst: number
  /** `--max-players`, and the connections open now: a full worker does not claim new rooms. */
  readonly maxPlayers: number
  connections(): number
  /** Whether the server takes players now, and its public port (the server's own origin has it). */
  ready(): boolean
  publicPort(): number
  /** Counts a per-address refusal (seats.ts logs it). */
  addressLimited(conn: Conn, why: AddressLimit): void
}

/** Every `X-Forwarded-For` line, joined in order (a proxy may add its own line instead of appending to the client's). */
function forwardedFor(req: uWS.HttpRequest): string {
  let all = ''
  req.forEach((k, v) => {
    if (k === 'x-forwarded-for') all = all === '' ? v : `${all},${v}`
  })
  return all
}

/** An upgrade between its checks and its answer (the token check and the directory lookup are asynchronous). */
interface Pending {
  readonly res: uWS.HttpResponse
  readonly key: string
  /** The subprotocol to answer with ('' : none); never the bearer entry. */
  readonly protocol: string
  readonly extensions: string
  readonly context: uWS.us_socket_context_t
  readonly address: string
  readonly addr: AddressEntry
  readonly q: JoinQuery
  /** The client went away before the answer. */
  aborted: boolean
  /** An onAborted handler is set (uWS keeps one per request). */
  watching: boolean
}

/** The plain-text body of each token refusal (PROTOCOL.md §1). */
const AUTH_REFUSAL_TEXT: Record<AuthFailure, string> = {
  missing: 'join token required',
  malformed: 'join token invalid',
  algorithm: 'join token invalid',
  signature: 'join token invalid',
  expired: 'join token expired',
  not_yet_valid: 'join token not yet valid',
  issuer: 'join token invalid',
  audience: 'join token invalid',
  room: 'join token does not allow this room',
  keys_unavailable: 'join token keys unavailable',
}

export class Upgrades {
  readonly #d: UpgradeDeps
  #nextPlayerId = 1

  constructor(deps: UpgradeDeps) {
    this.#d = deps
  }

  /** uWS's upgrade handler for `/play`. */
  handle(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    const d = this.#d
    const key = req.getHeader('sec-websocket-key')
    const protocol = req.getHeader('sec-websocket-protocol')
    const extensions = req.getHeader('sec-websocket-extensions')
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString()
    const address = clientAddress(peer, d.trusted.size > 0 ? forwardedFor(req) : '', d.trusted)
    if (!d.ready()) return this.#refuse(res, '503 Service Unavailable', 'server shutting down', UpgradeRejectReason.NOT_READY, address)
    const bad = handshakeRefusal(req)
    if (bad) {
      d.stats.upgradesRejected[UpgradeRejectReason.HANDSHAKE]++
      d.events.warn('upgrade refused', { address, reason: UpgradeRejectReason.HANDSHAKE, status: bad.status.slice(0, 3), detail: bad.body.trimEnd() })
      return writeRefusal(res, bad)
    }
    if (!originAllowed(d.origins, req.getHeader('origin'), req.getHeader('host'), d.publicPort())) {
      return this.#refuse(res, '403 Forbidden', 'origin not allowed', UpgradeRejectReason.ORIGIN, address)
    }
    const now = performance.now()
    const addr = d.book.entry(budgetKey(address), now)
    const limited = d.book.admit(addr, now)
    if (limited !== null) {
      d.stats.addressLimited[limited === 'connections' ? AddressLimit.CONNECTIONS : AddressLimit.UPGRADE_RATE]++
      const body = limited === 'connections' ? 'too many connections from your address' : 'too many connection attempts from your address'
      return this.#refuse(res, '429 Too Many Requests', body, UpgradeRejectReason.ADDRESS_LIMIT, address, [['retry-after', '1']])
    }
    // From here the connection counts against `addr` until it closes (or its upgrade is abandoned).
    const q = parseJoinQuery(req.getQuery() ?? '')
    if ('problem' in q) {
      d.book.disconnected(addr, now)
      return this.#refuse(res, '400 Bad Request', q.problem, UpgradeRejectReason.BAD_QUERY, address)
    }
    if (!d.routing.arrived(q.route)) d.events.warn('route names another worker', { address, reason: 'route_miss', route: q.route ?? '' })
    // The join token: a subprotocol entry (what a browser can send) or the `token` parameter; never echoed, never logged.
    const { token, protocol: answer } = tokenOf(protocol, q.token)
    const up: Pending = { res, key, protocol: answer, extensions, context, address, addr, q, aborted: false, watching: false }
    const verifier = d.verifier
    if (!verifier || (token === null && d.authMode === AuthMode.OPTIONAL)) return this.#seat(up, null)
    if (token === null) return this.#authRefused(up, 401, AuthFailure.MISSING)
    // Verified off the tick (jose is asynchronous); the upgrade waits, and is dropped if the client goes away.
    res.onAborted(() => {
      up.aborted = true
    })
    up.watching = true
    verifier.verify(token).then(
      (outcome) => {
        if (up.aborted) return d.book.disconnected(addr, performance.now())
        res.cork(() => {
          if (!outcome.ok) return this.#authRefused(up, outcome.status, outcome.reason)
          if (!roomAllowed(outcome.identity, q.room)) return this.#authRefused(up, 403, AuthFailure.ROOM)
          d.stats.authAccepted++
          this.#seat(up, outcome.identity)
        })
      },
      (err: Error) => {
        // verify() never rejects by contract; if it did, the upgrade still gets an answer.
        d.log.error('join token verification failed', { error: err.message })
        if (up.aborted) return d.book.disconnected(addr, performance.now())
        res.cork(() => this.#authRefused(up, 503, AuthFailure.KEYS))
      },
    ).catch((err: Error) => d.log.error('upgrade failed after the token check', { error: err.stack ?? err.message })) // never an unhandled rejection
  }

  /** A token refused: 401, 403 or 503 before any seat or room is touched; counted and logged by reason, never with the token. */
  #authRefused(up: Pending, status: 401 | 403 | 503, reason: AuthFailure): void {
    const d = this.#d
    d.book.disconnected(up.addr, performance.now())
    d.stats.authRefused[reason]++
    const line = status === 401 ? '401 Unauthorized' : status === 403 ? '403 Forbidden' : '503 Service Unavailable'
    const body = AUTH_REFUSAL_TEXT[reason]
    this.#refuse(up.res, line, body, UpgradeRejectReason.AUTH, up.address, status === 401 ? [['www-authenticate', 'Bearer']] : status === 503 ? [['retry-after', '1']] : [])
  }

  /** Past the checks (and the token, if any): resume or join, here or through the directory. */
  #seat(up: Pending, identity: Identity | null): void {
    const d = this.#d
    const { res, key, protocol, extensions, context, address, addr, q } = up
    const now = performance.now()
    const { room, resume } = q
    // Authenticated: the token's name, not the query's.
    const name = identity ? identity.name : q.name
    const sub = identity?.sub ?? ''
    let intent: Intent = JOIN
    let playerId: number
    if (resume !== null) {
      playerId = resume.player
      // Checked here, by any worker on any machine: a forged token is refused without a trip to the room's owner.
      const claims = d.tokens.verify(resume.token, room as string, playerId, sub)
      if (claims) intent = { kind: 'resume', claims }
      else {
        d.stats.resumes[ResumeOutcome.INVALID]++
        d.events.warn('resume refused', { address, reason: 'invalid token', room, player: playerId })
        intent = { kind: 'refuse', code: 'RESUME_INVALID', reason: DisconnectReason.RESUME_REFUSED }
      }
    } else playerId = this.#nextPlayerId++
    const conn: Conn = {
      ws: null,
      address,
      addr,
      playerId,
      version: q.version,
      identity,
      intent,
      name,
      options: q.options,
      roomId: room,
      seat: null,
      session: null,
      viewer: null,
      tokens: d.inputBurst,
      lastRefill: now,
      msgTokens: d.messageBurst,
      msgRefill: now,
      lastSeq: 0,
      stallSince: 0,
      closing: null,
      msg: newClientMessage(d.rooms.game.input.length),
    }
    const dir = d.directory
    if (room === null || !dir || intent.kind === 'refuse' || d.rooms.byId.has(room)) {
      res.upgrade(conn, key, protocol, extensions, context)
      return
    }
    // A named room this worker does not run: ask the directory where it lives, or to place it (Redis places it here,
    // so it is told whether this worker could create it now: a claim it must refuse would pin the id to it).
    const fullHere = d.rooms.list.length >= d.rooms.maxRooms || d.connections() >= d.maxPlayers
    const canHost = !fullHere && d.book.mayCreateRoom(addr)
    // One onAborted per request (a second replaces the first): the token check may have set it already.
    if (!up.watching) {
      res.onAborted(() => {
        up.aborted = true
      })
    }
    up.watching = true
    dir.locate(room, intent.kind === 'join', budgetKey(address), canHost).then(
      (where: LocateResult) => {
        if (up.aborted) {
          // A claim placed here for an upgrade that will never open: give it back.
          if (where !== null && where !== 'address_limit' && where.local && !d.rooms.byId.has(room)) dir.closed(room)
          return d.book.disconnected(addr, performance.now())
        }
        if (where === null && intent.kind === 'join') {
          // Nobody runs the room and it could not be placed: this worker may not create it (why, as a local join
          // would say), or no worker serves.
          const limited = !canHost && !fullHere
          if (limited) d.addressLimited(conn, AddressLimit.ROOMS)
          conn.intent = limited ? { kind: 'refuse', code: 'ADDRESS_LIMIT', reason: DisconnectReason.ADDRESS_LIMIT } : { kind: 'refuse', code: 'SERVER_FULL', reason: DisconnectReason.SERVER_FULL }
        } else if (where === null) {
          d.stats.resumes[ResumeOutcome.EXPIRED]++
          conn.intent = { kind: 'refuse', code: 'RESUME_EXPIRED', reason: DisconnectReason.RESUME_REFUSED }
        } else if (where === 'address_limit') {
          d.addressLimited(conn, AddressLimit.CLAIMS)
          conn.intent = { kind: 'refuse', code: 'ADDRESS_LIMIT', reason: DisconnectReason.ADDRESS_LIMIT }
        } else if (!where.local) {
          const r = d.routing.redirect(where, conn.version, room)
          conn.intent = { kind: 'redirect', frame: r.frame, route: r.kind === 'route' }
        }
        res.cork(() => res.upgrade(conn, key, protocol, extensions, context))
      },
      (err: Error) => {
        d.book.disconnected(addr, performance.now())
        if (up.aborted) return
        d.stats.upgradesRejected[UpgradeRejectReason.DIRECTORY]++
        d.events.warn('room directory unavailable', { address, reason: UpgradeRejectReason.DIRECTORY, room, error: err.message, unavailable: err instanceof DirectoryUnavailable })
        res.cork(() => res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').writeHeader('retry-after', '1').end('room directory unavailable\n'))
      },
    )
  }

  /** Answers an upgrade with an HTTP error instead; counted by `why`, logged (rate-limited) with the address. */
  #refuse(res: uWS.HttpResponse, status: string, body: string, why: UpgradeRejectReason, address: string, headers: readonly (readonly [string, string])[] = []): void {
    const d = this.#d
    d.stats.upgradesRejected[why]++
    if (why !== UpgradeRejectReason.NOT_READY) d.events.warn('upgrade refused', { address, reason: why, status: status.slice(0, 3), detail: body })
    res.writeStatus(status).writeHeader('content-type', 'text/plain')
    for (const [k, v] of headers) res.writeHeader(k, v)
    res.end(body + '\n')
  }
}
