/**
 * Client-side prediction with server reconciliation for the entity a player
 * controls: the avatar moves the moment the player presses a key, and
 * converges on the server's authoritative state as STATE frames confirm (or
 * correct) it. Renderer-agnostic (no DOM) and game-agnostic: the game
 * supplies a pure `step(state, input, dt)` over a small numeric state
 * (for the reference arena, `[x, y]`).
 *
 * ## The server's model, which the predictor mirrors
 *
 * The server does not consume inputs one per tick. It keeps only the newest
 * INPUT received; at the start of each tick, if a newer one arrived since the
 * last tick, it applies it, and that input stays in effect (is *held*) for
 * every tick until the next one is applied; an input replaced before any
 * tick started is never applied. Each tick is one step of `dt = 1 / tickHz`
 * seconds. STATE's `inputSeq` is the seq of the input in effect at that tick
 * (see PROTOCOL.md §4 and `Room.step`). So inputs are *levels* (a stick
 * position, keys held), not events, and the predictor replays ticks, not
 * inputs.
 *
 * ## The client's model
 *
 * - **Local ticks.** The predictor runs its own fixed-step clock at `tickHz`
 *   (driven by the times given to `advance`/`sample`). Local tick `j` uses
 *   the newest input recorded before it, held like the server holds it. The
 *   predicted state is the state after the newest local tick; the ring keeps
 *   each unconfirmed local tick's input (and its seq) for replays.
 * - **Which local ticks has the server done?** When a STATE first reports
 *   `inputSeq = s` at server tick `Ta`, the server applied `s` at `Ta`; `s`
 *   took effect locally at local tick `ka`, so local tick `ka` is server tick
 *   `Ta`. At a later server tick `T` still reporting `s`, the server has held
 *   `s` for `T - Ta + 1` ticks: it has done the local ticks up to
 *   `ka + (T - Ta)`. It has certainly not done any tick of an input newer
 *   than `s` (it has not applied one). Replaying therefore starts at local
 *   tick `min(ka + T - Ta + 1, first local tick with a seq > s)`. Before the
 *   first input is acknowledged (seq 0) only the ticks of unacknowledged
 *   inputs are replayed.
 * - **Reconcile** = take the server's state at `T`, step it through the
 *   local ticks not yet done (each with its held input), and drop the local
 *   ticks before them (acknowledged: the server's state includes them).
 *   With constant input and steady latency this gives exactly the state the
 *   server will reach, so there is nothing to correct.
 * - **What cannot be known.** The local tick clock's phase is not the
 *   server's, and network jitter moves arrivals across server tick
 *   boundaries: an input may reach the server a tick earlier or later than
 *   its neighbours did (the server then holds one input a tick longer and
 *   skips another). The lead changes by a tick, and the prediction by that
 *   tick's difference of motion; smoothing hides it. Sending inputs only
 *   when they change (the SDK acknowledges every STATE by itself) confines
 *   this to the moments the input changes: while an input is held nothing
 *   new is acknowledged and the prediction stays exact. Sending one every
 *   tick, or every frame, works too, with a few more small corrections.
 * - **Smoothing.** A correction (old prediction - new prediction) is not
 *   shown as a jump: it is added to a display offset that decays
 *   exponentially, to 5% after `smoothMs` (default 100 ms; time constant
 *   `smoothMs / 3`). A correction longer than `snapDistance` (default 100
 *   world units: a respawn, a teleport, the first state) snaps instead. Only
 *   the `smooth` components (default: all) are smoothed, interpolated between
 *   local ticks for display, and measured for snapping; the others are shown
 *   as predicted.
 * - **Display.** `sample(now)` interpolates between the states before and
 *   after the current local tick, so the avatar moves every frame at any
 *   frame rate; a local tick's input shows from that tick's start on.
 * - **Bounds.** The ring holds at most `maxTicks` unconfirmed local ticks
 *   (default 2 seconds' worth). If the server falls further behind (no
 *   STATE for that long), the oldest are forgotten and a reconcile replays
 *   only the newest `maxTicks`. An `advance` after a long pause (a hidden
 *   tab) steps at most `maxTicks` ticks.
 *
 * `state`, `input` and `dt` given to `step` belong to the predictor: read
 * them, do not keep or modify them. `step` writes the next state into `out`
 * (and returns nothing or `out`), or returns a new array of the same length.
 * The state must be what the server replicates for the avatar (the
 * reconcile starts from it), in the same units (dequantized).
 *
 * @example
 * ```ts
 * import { TickwireClient, InputPredictor } from 'tickwire/client'
 * const client = await TickwireClient.connect('ws://localhost:9001/play')
 * // The arena's avatar speed and radius, and the room's side (arenaLayout(maxPlayers).width; not in WELCOME).
 * const SPEED = 220, R = 20, SIDE = 1072
 * const clamp = (v: number) => Math.min(SIDE - R, Math.max(R, v))
 * const predictor = new InputPredictor({
 *   tickHz: client.welcome.tickHz,
 *   state: [0, 0], // [x, y]; the first reconcile snaps to the server's
 *   input: [0, 0], // [mx, my] before the first input
 *   step: (s, input, dt, out) => {
 *     let mx = input[0]!, my = input[1]!
 *     const len = Math.hypot(mx, my)
 *     if (len > 100) { mx = (mx * 100) / len; my = (my * 100) / len } // as the server clamps it
 *     out[0] = clamp(s[0]! + (mx / 100) * SPEED * dt)
 *     out[1] = clamp(s[1]! + (my / 100) * SPEED * dt)
 *   },
 * })
 * client.on('state', (frame) => {
 *   const me = client.welcome.entityId
 *   const x = client.table.get(me, 'x'), y = client.table.get(me, 'y')
 *   if (x !== undefined && y !== undefined) predictor.reconcile([x, y], frame.inputSeq, frame.tick)
 * })
 * let last: number[] = []
 * // After a reconnect the server holds a neutral input: start over, and send the stick again.
 * const restart = () => { predictor.reset(); last = [] }
 * client.on('resumed', restart).on('rejoined', restart)
 * function draw(now: number): void {
 *   const stick = readStick() // e.g. [100, 0] while → is held
 *   if (stick[0] !== last[0] || stick[1] !== last[1]) { // send on change: see "What cannot be known"
 *     predictor.record(client.sendInput(stick), stick)
 *     last = stick
 *   }
 *   const [x, y] = predictor.sample(now)
 *   drawAvatar(x!, y!)
 *   requestAnimationFrame(draw)
 * }
 * requestAnimationFrame(draw)
 * ```
 */

/**
 * The game's rules for the predicted entity: the state after one tick of
 * `dt` seconds with `input` in effect. Pure: same arguments, same result.
 */
export type StepFn = (state: Float64Array, input: Float64Array, dt: number, out: Float64Array) => ArrayLike<number> | void

/** Defaults of `PredictorOptions`, with their units. */
export const PREDICTOR_DEFAULTS = Object.freeze({
  /** A correction is 95% gone after this, ms. */
  smoothMs: 100,
  /** Corrections longer than this snap, in the state's units (world units for the arena). */
  snapDistance: 100,
  /** Unconfirmed local ticks kept: this many seconds of ticks. */
  maxSeconds: 2,
})

export interface PredictorOptions {
  /** Ticks per second: WELCOME's `tickHz`. */
  readonly tickHz: number
  /** The game's step for the predicted entity. */
  readonly step: StepFn
  /** Initial state (its length is the state's length); the first `reconcile` replaces it. */
  readonly state: ArrayLike<number>
  /** Input in effect before the first `record` (its length is the input's length): the neutral input. */
  readonly input: ArrayLike<number>
  /** Indices of the continuous state components (positions): smoothed and interpolated. Default: all. */
  readonly smooth?: readonly number[]
  /** Time over which a correction fades (to 5%), ms. Default 100; 0 shows corrections at once. */
  readonly smoothMs?: number
  /** Corrections longer than this (Euclidean, over `smooth`) snap. Default 100. */
  readonly snapDistance?: number
  /** Unconfirmed local ticks kept. Default 2 seconds of ticks. */
  readonly maxTicks?: number
}

/**
 * Predicts the player's own entity from its inputs and reconciles the
 * prediction with each STATE. See the module comment for the model.
 */
export class InputPredictor {
  /** Size of the last correction (Euclidean over the `smooth` components; 0 when the prediction was right). */
  lastCorrection = 0
  /** Corrections that snapped (longer than `snapDistance`). */
  snaps = 0
  readonly #step: StepFn
  readonly #dt: number
  readonly #interval: number
  readonly #S: number
  readonly #N: number
  readonly #isSmooth: Uint8Array
  readonly #smooth: Int32Array
  readonly #tau: number
  readonly #snap: number
  readonly #neutral: Float64Array
  readonly #initial: Float64Array
  // Ring of unconfirmed local ticks #oldest..#k; tick j lives in slot j % #cap.
  readonly #cap: number
  readonly #seqs: Float64Array
  readonly #rows: Float64Array[]
  #oldest = 1
  #k = 0
  /** Newest recorded input: in effect from the next local tick. */
  #seq = 0
  readonly #input: Float64Array
  // States: after the newest local tick, before it, and scratch; rotated by #run.
  #pred: Float64Array
  #prev: Float64Array
  #tmp: Float64Array
  readonly #oldPred: Float64Array
  readonly #oldPrev: Float64Array
  /** Display offset: the part of past corrections not shown yet. */
  readonly #offset: Float64Array
  /** Local time of local tick 1's start (NaN: the clock has not started). */
  #t0 = Number.NaN
  #lastSample = Number.NaN
  /** Newest server tick reconciled. */
  #serverTick = -Infinity
  /** Seq acknowledged by the newest STATE, the server tick that first reported it, and the local tick where it took effect. */
  #ackedSeq = -1
  #ackedTick = 0
  #ackedLocal = Number.NaN
  #synced = false

  constructor(opts: PredictorOptions) {
    const D = PREDICTOR_DEFAULTS
    positive('tickHz', opts.tickHz)
    if (typeof opts.step !== 'function') throw new TypeError('step must be a function (state, input, dt, out) => next state')
    this.#step = opts.step
    this.#dt = 1 / opts.tickHz
    this.#interval = 1000 / opts.tickHz
    this.#S = lengthOf('state', opts.state)
    this.#N = lengthOf('input', opts.input)
    this.#initial = Float64Array.from(opts.state)
    this.#neutral = Float64Array.from(opts.input)
    this.#isSmooth = new Uint8Array(this.#S)
    const smooth = opts.smooth ?? Array.from({ length: this.#S }, (_, i) => i)
    for (const i of smooth) {
      if (!Number.isInteger(i) || i < 0 || i >= this.#S) throw new RangeError(`smooth: ${i} is not a state index in [0, ${this.#S - 1}]`)
      this.#isSmooth[i] = 1
    }
    this.#smooth = Int32Array.from(smooth)
    const smoothMs = opts.smoothMs ?? D.smoothMs
    nonNegative('smoothMs', smoothMs)
    this.#tau = smoothMs / 3
    this.#snap = opts.snapDistance ?? D.snapDistance
    nonNegative('snapDistance', this.#snap)
    this.#cap = opts.maxTicks ?? Math.ceil(D.maxSeconds * opts.tickHz)
    if (!Number.isInteger(this.#cap) || this.#cap < 1) throw new RangeError(`maxTicks must be an integer >= 1, got ${this.#cap}`)
    this.#seqs = new Float64Array(this.#cap)
    const inputs = new Float64Array(this.#cap * this.#N)
    this.#rows = Array.from({ length: this.#cap }, (_, i) => inputs.subarray(i * this.#N, (i + 1) * this.#N))
    this.#input = Float64Array.from(opts.input)
    this.#pred = Float64Array.from(opts.state)
    this.#prev = Float64Array.from(opts.state)
    this.#tmp = new Float64Array(this.#S)
    this.#oldPred = new Float64Array(this.#S)
    this.#oldPrev = new Float64Array(this.#S)
    this.#offset = new Float64Array(this.#S)
  }

  /** The predicted state after the newest local tick (no smoothing, no sub-tick interpolation). Do not modify. */
  get state(): Readonly<Float64Array> {
    return this.#pred
  }

  /** Local ticks stepped so far. */
  get tick(): number {
    return this.#k
  }

  /** Local ticks the server has not confirmed yet: the ticks a reconcile replays. */
  get pendingTicks(): number {
    return this.#k - this.#oldest + 1
  }

  /** Inputs not yet acknowledged by the server: those in effect in pending ticks, plus the newest if no tick used it yet. */
  get unackedInputs(): number {
    const acked = Math.max(this.#ackedSeq, 0)
    let n = 0
    let last = acked
    for (let j = this.#oldest; j <= this.#k; j++) {
      const s = this.#seqs[j % this.#cap] as number
      if (s > last) {
        n++
        last = s
      }
    }
    return this.#seq > last ? n + 1 : n
  }

  /**
   * The application sent INPUT `seq` (the value `client.sendInput` returned)
   * with these values: it is in effect from the next local tick on, until the
   * next one. Seqs must increase.
   */
  record(seq: number, input: ArrayLike<number>): void {
    if (!Number.isInteger(seq) || seq <= this.#seq) throw new RangeError(`seq must be an integer greater than the last recorded (${this.#seq}), got ${seq}`)
    if (input.length !== this.#N) throw new RangeError(`input must have ${this.#N} values, got ${input.length}`)
    this.#seq = seq
    this.#input.set(input)
  }

  /**
   * Runs the local ticks due by local time `nowMs` (the first call starts the
   * clock and runs tick 1), each with the newest recorded input. Returns how
   * many ran. `sample` calls it; call it yourself to step without drawing.
   */
  advance(nowMs: number): number {
    if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be a finite number, got ${nowMs}`)
    if (Number.isNaN(this.#t0)) this.#t0 = nowMs
    let n = Math.floor((nowMs - this.#t0) / this.#interval) + 1 - this.#k
    if (n <= 0) return 0
    if (n > this.#cap) {
      // A long pause: skip the ticks the ring could not hold anyway (the tick numbering keeps to the clock).
      this.#k += n - this.#cap
      this.#oldest = Math.max(this.#oldest, this.#k + 1)
      n = this.#cap
    }
    for (let i = 0; i < n; i++) {
      const j = ++this.#k
      if (j - this.#oldest + 1 > this.#cap) this.#oldest = j - this.#cap + 1
      const slot = j % this.#cap
      this.#seqs[slot] = this.#seq
      const row = this.#rows[slot] as Float64Array
      row.set(this.#input)
      this.#run(row)
    }
    return n
  }

  /**
   * Reconciles with a STATE: `serverState` is the entity's authoritative state
   * at server tick `tick` (dequantized), `ackedSeq` the frame's `inputSeq`.
   * Replays the local ticks the server has not done yet from that state (see
   * the module comment), drops the others, and smooths or snaps the
   * difference. Returns the size of the correction. A tick not newer than the
   * last one reconciled is ignored (returns 0).
   */
  reconcile(serverState: ArrayLike<number>, ackedSeq: number, tick: number): number {
    if (serverState.length !== this.#S) throw new RangeError(`serverState must have ${this.#S} values, got ${serverState.length}`)
    if (tick <= this.#serverTick) return 0
    this.#serverTick = tick
    const cap = this.#cap
    const k = this.#k
    if (ackedSeq !== this.#ackedSeq) {
      this.#ackedSeq = ackedSeq
      this.#ackedTick = tick
      this.#ackedLocal = Number.NaN
      if (ackedSeq > 0) {
        for (let j = this.#oldest; j <= k; j++) {
          if (this.#seqs[j % cap] === ackedSeq) {
            this.#ackedLocal = j
            break
          }
        }
      }
    }
    // First local tick of an input the server has not applied.
    let newer = k + 1
    for (let j = this.#oldest; j <= k; j++) {
      if ((this.#seqs[j % cap] as number) > ackedSeq) {
        newer = j
        break
      }
    }
    let start = Number.isNaN(this.#ackedLocal) ? newer : Math.min(newer, this.#ackedLocal + (tick - this.#ackedTick) + 1)
    if (start < this.#oldest) start = this.#oldest

    this.#oldPred.set(this.#pred)
    this.#oldPrev.set(this.#prev)
    this.#pred.set(serverState)
    for (let j = start; j <= k; j++) this.#run(this.#rows[j % cap] as Float64Array)
    if (start > k) {
      // Nothing to replay: keep the motion within the current local tick as it was.
      for (let i = 0; i < this.#S; i++) this.#prev[i] = (this.#pred[i] as number) - ((this.#oldPred[i] as number) - (this.#oldPrev[i] as number))
    }
    this.#oldest = start

    let d2 = 0
    let o2 = 0
    for (let k2 = 0; k2 < this.#smooth.length; k2++) {
      const i = this.#smooth[k2] as number
      const e = (this.#oldPred[i] as number) - (this.#pred[i] as number)
      d2 += e * e
      const o = (this.#offset[i] as number) + e
      o2 += o * o
    }
    const d = Math.sqrt(d2)
    this.lastCorrection = this.#synced ? d : 0
    if (!this.#synced || d > this.#snap || Math.sqrt(o2) > this.#snap || this.#tau === 0) {
      if (this.#synced && d > this.#snap) this.snaps++
      this.#offset.fill(0)
    } else {
      for (let k2 = 0; k2 < this.#smooth.length; k2++) {
        const i = this.#smooth[k2] as number
        this.#offset[i] = (this.#offset[i] as number) + (this.#oldPred[i] as number) - (this.#pred[i] as number)
      }
    }
    this.#synced = true
    return this.lastCorrection
  }

  /**
   * The state to draw at local time `nowMs`: advances the local ticks, then
   * interpolates the `smooth` components within the current tick and adds
   * what is left of recent corrections. Writes into `out` (allocated when
   * omitted) and returns it.
   */
  sample(nowMs: number, out: Float64Array = new Float64Array(this.#S)): Float64Array {
    this.advance(nowMs)
    const off = this.#offset
    if (!Number.isNaN(this.#lastSample) && nowMs > this.#lastSample) {
      const f = Math.exp(-(nowMs - this.#lastSample) / this.#tau)
      for (let k = 0; k < this.#smooth.length; k++) {
        const i = this.#smooth[k] as number
        off[i] = (off[i] as number) * f
      }
    }
    if (Number.isNaN(this.#lastSample) || nowMs > this.#lastSample) this.#lastSample = nowMs
    let a = (nowMs - (this.#t0 + (this.#k - 1) * this.#interval)) / this.#interval
    a = a < 0 ? 0 : a > 1 ? 1 : a
    const pred = this.#pred
    const prev = this.#prev
    for (let i = 0; i < this.#S; i++) {
      out[i] = this.#isSmooth[i] === 1 ? (prev[i] as number) + ((pred[i] as number) - (prev[i] as number)) * a + (off[i] as number) : (pred[i] as number)
    }
    return out
  }

  /**
   * Forgets inputs, ticks and acknowledgements (after a reconnect, or to
   * start over): the clock restarts with the next `advance`, the neutral
   * input is in effect, and the state is `state` (default: the initial one)
   * until the next reconcile, which snaps.
   */
  reset(state?: ArrayLike<number>): void {
    const s = state ?? this.#initial
    if (s.length !== this.#S) throw new RangeError(`state must have ${this.#S} values, got ${s.length}`)
    this.#pred.set(s)
    this.#prev.set(s)
    this.#offset.fill(0)
    this.#input.set(this.#neutral)
    this.#seq = 0
    this.#oldest = 1
    this.#k = 0
    this.#t0 = Number.NaN
    this.#lastSample = Number.NaN
    this.#serverTick = -Infinity
    this.#ackedSeq = -1
    this.#ackedLocal = Number.NaN
    this.#synced = false
  }

  /** One tick: prev <- pred, pred <- step(pred, input). */
  #run(input: Float64Array): void {
    const out = this.#tmp
    const r = this.#step(this.#pred, input, this.#dt, out)
    if (r !== undefined && r !== out) {
      if (r.length !== this.#S) throw new RangeError(`step returned ${r.length} values, expected ${this.#S}`)
      for (let i = 0; i < this.#S; i++) out[i] = r[i] as number
    }
    this.#tmp = this.#prev
    this.#prev = this.#pred
    this.#pred = out
  }
}

function lengthOf(name: string, v: ArrayLike<number>): number {
  if (v === null || typeof v !== 'object' || !Number.isInteger(v.length) || v.length < 1) throw new TypeError(`${name} must be a non-empty array of numbers`)
  return v.length
}

function positive(name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a finite number > 0, got ${v}`)
}

function nonNegative(name: string, v: number): void {
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new RangeError(`${name} must be a number >= 0, got ${v}`)
}
