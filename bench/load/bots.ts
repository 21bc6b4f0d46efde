/**
 * A bot process of the load generator: connects its share of bots through
 * an adapter, drives their inputs, measures input-to-state latency, and
 * reports counters to the parent once a second. Run by the parent with fork().
 */
import { fileURLToPath } from 'node:url'
import type { InputSpec, MessageSpec, Value, ValueSpec } from '../../proto/index.js'
import type { Adapter, Bot } from './adapter.js'
import { Histogram } from './hdr.js'
import { STALE_MS, type AdapterName, type BotStats, type FromBots, type ToBots } from './protocol.js'

/** Where each adapter lives, relative to this file (in dist/bench/load/ once built). */
const ADAPTERS: Record<AdapterName, string> = {
  tickwire: './tickwire.js',
  floor: './tickwire.js',
  'ws-json': '../peers/ws-json/adapter.js',
  colyseus: '../../../bench/peers/colyseus/adapter.mjs',
}

export async function loadAdapter(name: AdapterName): Promise<Adapter> {
  const mod = (await import(new URL(ADAPTERS[name], import.meta.url).href)) as Record<string, unknown>
  const adapter = Object.values(mod).find((v): v is Adapter => typeof v === 'object' && v !== null && typeof (v as Adapter).connect === 'function')
  if (!adapter) throw new Error(`no Adapter exported by ${ADAPTERS[name]}`)
  return adapter
}

/** Latency of inputs not yet reflected: a ring of (seq, sent at) per bot. */
const RING = 64

interface Slot {
  bot: Bot | null
  seq: number
  /** Sent inputs awaiting a state that reflects them. */
  readonly ringSeq: Int32Array
  readonly ringAt: Float64Array
  head: number
  tail: number
  nextInputAt: number
  mx: number
  my: number
  paused: boolean
  everPaused: boolean
  /** Taken out of the never-paused count. */
  countedPaused: boolean
  /** Sends one out-of-range value in every input (init.badInputs), so the server should drop it. */
  readonly bad: boolean
  /** Closed by the server or cut: counted once, never counted connected again. */
  dropped: boolean
  /** Scratch for inputs of a game other than the arena stick. */
  values: number[]
  nextMessageAt: number
  /** Whether this bot's game is not the arena stick (random values per schema); null until its schema is known. */
  generic: boolean | null
}

/** The arena's stick (two values in [-100, 100]): driven by a random walk, as the peers' bots are, so the bench compares like with like. */
export function isArenaStick(schema: readonly InputSpec[]): boolean {
  return schema.length === 2 && schema.every((i) => i.min === -100 && i.max === 100)
}

/** Each value a uniform random integer in its [min, max]. */
export function randomInputs(schema: readonly InputSpec[], out: number[], random: () => number = Math.random): number[] {
  out.length = schema.length
  for (let i = 0; i < schema.length; i++) {
    const { min, max } = schema[i] as InputSpec
    out[i] = min + Math.floor(random() * (max - min + 1))
  }
  return out
}

/** A random valid value for each of `fields` (ints in range, strings of a few ASCII letters within maxBytes). */
export function randomValues(fields: readonly ValueSpec[], random: () => number = Math.random): Value[] {
  return fields.map((f): Value => {
    switch (f.type) {
      case 'int':
        return f.min + Math.floor(random() * (f.max - f.min + 1))
      case 'number':
        return Math.round(random() * 1e6) / 1000
      case 'bool':
        return random() < 0.5
      case 'string': {
        const n = Math.floor(random() * (Math.min(f.maxBytes, 16) + 1))
        let s = ''
        for (let i = 0; i < n; i++) s += String.fromCharCode(97 + Math.floor(random() * 26))
        return s
      }
    }
  })
}

/** A value just outside `spec`'s range (above max, or below min when max is the int32 top). */
export function outOfRange(spec: InputSpec): number {
  return spec.max < 2 ** 31 - 1 ? spec.max + 1 : spec.min - 1
}

function send(msg: FromBots): void {
  if (process.connected) process.send?.(msg)
}

async function main(): Promise<void> {
  const init = await new Promise<Extract<ToBots, { t: 'init' }>>((resolve) => {
    const on = (m: ToBots) => {
      if (m.t === 'init') {
        process.off('message', on)
        resolve(m)
      }
    }
    process.on('message', on)
  })
  const adapter = await loadAdapter(init.adapter)
  const slots: Slot[] = []
  const latency = new Histogram()
  const latencyUnpaused = new Histogram()
  const c = {
    connected: 0,
    opened: 0,
    failed: 0,
    dropped: 0,
    stateMsgs: 0,
    stateBytes: 0,
    otherMsgs: 0,
    otherBytes: 0,
    inputs: 0,
    messages: 0,
    acksSent: 0,
    framesSent: 0,
    errors: 0,
    paused: 0,
    pending: 0,
    unpausedStateMsgs: 0,
    unpausedStateBytes: 0,
    unpausedDropped: 0,
    unpausedConnected: 0,
    stale: 0,
  }
  const dropCodes: Record<string, number> = {}
  const errorSamples: string[] = []
  const failSamples: string[] = []
  let namedCount = 0
  const interval = 1000 / init.inputHz

  const connectOne = (index: number) => {
    const slot: Slot = {
      bot: null,
      seq: 0,
      ringSeq: new Int32Array(RING),
      ringAt: new Float64Array(RING),
      head: 0,
      tail: 0,
      nextInputAt: performance.now() + Math.random() * interval,
      mx: 0,
      my: 0,
      paused: false,
      everPaused: false,
      countedPaused: false,
      bad: init.badInputs > 0 && Math.floor((index + 1) * init.badInputs) > Math.floor(index * init.badInputs),
      dropped: false,
      values: [],
      generic: null,
      nextMessageAt: performance.now() + Math.random() * (init.messageHz > 0 ? 1000 / init.messageHz : 0),
    }
    slots.push(slot)
    const named = init.named > 0 && (index % 1000) < init.named * 1000
    const room = named ? `p${init.proc}n${Math.floor(namedCount++ / 48)}` : null
    c.pending++
    adapter
      .connect(
        {
          url: init.url,
          room,
          name: `b${init.proc}-${index}`,
          localAddress: init.addresses.length > 0 ? init.addresses[index % init.addresses.length] : undefined,
          check: init.checkEvery > 0 && index % init.checkEvery === 0,
        },
        {
          state(bytes, appliedSeq) {
            c.stateMsgs++
            c.stateBytes += bytes
            if (!slot.everPaused) {
              c.unpausedStateMsgs++
              c.unpausedStateBytes += bytes
            }
            const now = performance.now()
            while (slot.tail !== slot.head && (slot.ringSeq[slot.tail % RING] as number) <= appliedSeq) {
              const us = (now - (slot.ringAt[slot.tail % RING] as number)) * 1000
              latency.record(us)
              if (!slot.everPaused) latencyUnpaused.record(us)
              slot.tail++
            }
          },
          sent(ack) {
            c.framesSent++
            if (ack) c.acksSent++
          },
          other(bytes) {
            c.otherMsgs++
            c.otherBytes += bytes
          },
          error(err) {
            c.errors++
            if (errorSamples.length < 5) errorSamples.push(err.message)
          },
          close(code) {
            if (slot.dropped) return
            slot.dropped = true
            c.dropped++
            if (!slot.everPaused) c.unpausedDropped++
            dropCodes[code] = (dropCodes[code] ?? 0) + 1
            if (slot.bot) {
              c.connected--
              if (!slot.everPaused) c.unpausedConnected--
            }
            if (slot.paused) c.paused--
            slot.paused = false
            slot.bot = null
          },
        },
      )
      .then(
        (bot) => {
          c.pending--
          c.opened++
          // Dropped before this ran: counted as opened and dropped, never as connected.
          if (slot.dropped) return
          c.connected++
          c.unpausedConnected++
          slot.bot = bot
        },
        (err: Error) => {
          c.pending--
          c.failed++
          if (failSamples.length < 5) failSamples.push(err.message)
        },
      )
  }

  // Inputs: one timer walks all bots; each sends at inputHz: the arena stick as a random walk, any other game's values uniformly at random in their ranges.
  const tick = setInterval(() => {
    const now = performance.now()
    for (const s of slots) {
      if (!s.bot) continue
      // An input no state has reflected for STALE_MS counts at that age (a lower bound), so a server that stops answering shows in the tail.
      while (s.tail !== s.head && now - (s.ringAt[s.tail % RING] as number) > STALE_MS) {
        latency.record(STALE_MS * 1000)
        if (!s.everPaused) latencyUnpaused.record(STALE_MS * 1000)
        c.stale++
        s.tail++
      }
      if (s.paused || now < s.nextInputAt) continue
      s.nextInputAt += interval
      if (s.nextInputAt < now) s.nextInputAt = now + interval
      const schema = s.bot.schema
      // Decided once per bot, when its schema is known (isArenaStick allocates a closure per call).
      if (s.generic === null && schema !== undefined) s.generic = s.bot.inputValues !== undefined && (s.bad || !isArenaStick(schema))
      const generic = schema !== undefined && s.generic === true
      if (generic) {
        randomInputs(schema, s.values)
        if (s.bad && schema.length > 0) s.values[0] = outOfRange(schema[0] as InputSpec)
      } else {
        s.mx = Math.max(-100, Math.min(100, s.mx + Math.round((Math.random() - 0.5) * 60)))
        s.my = Math.max(-100, Math.min(100, s.my + Math.round((Math.random() - 0.5) * 60)))
      }
      const seq = ++s.seq
      if (s.head - s.tail >= RING) s.tail++ // forget the oldest unreflected input rather than grow
      s.ringSeq[s.head % RING] = seq
      s.ringAt[s.head % RING] = now
      s.head++
      if (generic) s.bot.inputValues?.(seq, s.values)
      else s.bot.input(seq, s.mx, s.my)
      c.inputs++
    }
    // Game messages: each bot at messageHz, a random declared kind with random valid values.
    if (init.messageHz > 0) {
      for (const s of slots) {
        const kinds = s.bot?.messages
        if (!s.bot?.message || !kinds || kinds.length === 0 || s.paused || now < s.nextMessageAt) continue
        s.nextMessageAt = Math.max(s.nextMessageAt + 1000 / init.messageHz, now)
        const kind = Math.floor(Math.random() * kinds.length)
        s.bot.message(kind, randomValues((kinds[kind] as MessageSpec).fields))
        c.messages++
      }
    }
  }, 10)

  let index = 0
  let left = 0
  let rate = 0
  let adding: NodeJS.Timeout | null = null
  const report = (flush = 0) => {
    const stats: BotStats = {
      ...c,
      dropCodes: { ...dropCodes },
      errorSamples: [...errorSamples],
      failSamples: [...failSamples],
      latency: latency.toJSON(),
      latencyUnpaused: latencyUnpaused.toJSON(),
    }
    latency.reset()
    latencyUnpaused.reset()
    send({ t: 'stats', stats, flush })
  }
  const reporter = setInterval(() => report(), 1000)

  process.on('message', (m: ToBots) => {
    switch (m.t) {
      case 'add': {
        // Queued after what is left of an earlier add; credit accrues per 20 ms so low rates are honoured.
        left += m.n
        rate = m.perSecond
        if (adding) return
        let credit = 0
        adding = setInterval(() => {
          credit = Math.min(credit + rate / 50, Math.max(1, rate / 50))
          for (; credit >= 1 && left > 0; credit--, left--) connectOne(index++)
          if (left === 0 && adding) {
            clearInterval(adding)
            adding = null
          }
        }, 20)
        return
      }
      case 'pause': {
        // Spread evenly over the bots (so over the rooms): bot i pauses when the running share crosses an integer.
        for (let i = 0; i < slots.length; i++) {
          const s = slots[i] as Slot
          const p = Math.floor((i + 1) * m.fraction) > Math.floor(i * m.fraction)
          if (!s.bot) continue
          if (p && !s.paused) {
            s.bot.pause()
            s.paused = true
            s.everPaused = true
            if (!s.countedPaused) {
              s.countedPaused = true
              c.unpausedConnected--
            }
          } else if (!p && s.paused) {
            s.bot.resume()
            s.paused = false
          }
        }
        c.paused = slots.filter((s) => s.paused).length
        return
      }
      case 'flush':
        report(m.id)
        return
      case 'stop':
        clearInterval(tick)
        clearInterval(reporter)
        if (adding) clearInterval(adding)
        for (const s of slots) s.bot?.close()
        report()
        setTimeout(() => process.exit(0), 200)
        return
    }
  })
  send({ t: 'ready' })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: Error) => {
    process.stderr.write(`bot process: ${err.stack ?? err.message}\n`)
    process.exit(1)
  })
}
