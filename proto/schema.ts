/**
 * Typed values of game messages and entity props (protocol 3): what a game
 * declares, how WELCOME carries the declarations, and the one validator both
 * sides use (the server for client frames and for the game's own sends, the
 * SDK before sending and for what it receives).
 *
 * A value is an `int` (a safe integer in [min, max]), a `number` (any finite
 * number), a `string` (at most `maxBytes` bytes of UTF-8) or a `bool`. On the
 * wire a message or a props record is its values in declared order, so a
 * record costs no key names.
 */

/** One typed value of a message or of an entity's props. */
export type ValueSpec =
  | { readonly name: string; readonly type: 'int'; readonly min: number; readonly max: number }
  | { readonly name: string; readonly type: 'number' }
  | { readonly name: string; readonly type: 'string'; readonly maxBytes: number }
  | { readonly name: string; readonly type: 'bool' }

/** A message kind: its name and its values, in wire order. */
export interface MessageSpec {
  readonly name: string
  readonly fields: readonly ValueSpec[]
}

export type Value = number | string | boolean

/** A message's (or a props record's) values by name. */
export type MessageData = Readonly<Record<string, Value>>

/** The TypeScript type of one declared value. */
export type ValueOf<S extends ValueSpec> = S extends { readonly type: 'string' } ? string : S extends { readonly type: 'bool' } ? boolean : number

/**
 * The data of a message declared `as const`: `DataOf<typeof tagged>` is
 * `{ by: number; at: number }` for `{ name: 'tagged', fields: [{ name: 'by', type: 'int', ... }, { name: 'at', ... }] }`.
 */
export type DataOf<M extends { readonly fields: readonly ValueSpec[] }> = { readonly [S in M['fields'][number] as S['name']]: ValueOf<S> }

/** Value names: like identifiers, at most 32 characters (they become object keys on both sides). */
export const VALUE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/
/** Longest string value a game may declare, in UTF-8 bytes. */
export const MAX_STRING_BYTES = 1024
/** Most values in one message kind or props record. */
export const MAX_MESSAGE_VALUES = 32
/** Most message kinds a game may declare in each direction. */
export const MAX_MESSAGE_KINDS = 128
/** Largest MESSAGE, PROPS or CLIENT_MESSAGE frame a declaration may allow, in bytes (the worst case is checked at start). */
export const MAX_MESSAGE_FRAME_BYTES = 4096

/** UTF-8 length of `s` without encoding it (lone surrogates count 3, as TextEncoder writes U+FFFD). */
export function utf8Bytes(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

/** Most bytes one value of `s` takes as MessagePack. */
function worstBytes(s: ValueSpec): number {
  switch (s.type) {
    case 'string':
      return 5 + s.maxBytes
    case 'bool':
      return 1
    default:
      return 9
  }
}

/** Most bytes of a frame `[type, id, ...values]` (id: a kind or an entity id below 65536). */
export function worstFrameBytes(fields: readonly ValueSpec[]): number {
  let n = 3 + 1 + 3 // array header, type, id
  for (const f of fields) n += worstBytes(f)
  return n
}

/** The checks every list of declarations shares: an array of at most `max`, each with a unique name of VALUE_NAME_PATTERN. */
function namesProblem(list: unknown, what: string, noun: string, max: number): string | null {
  if (!Array.isArray(list)) return `${what} must be an array`
  if (list.length > max) return `${what}: at most ${max} ${noun}s, has ${list.length}`
  const seen = new Set<string>()
  for (const x of list as unknown[]) {
    const name = (x as { name?: unknown } | null)?.name
    if (typeof x !== 'object' || x === null || typeof name !== 'string' || !VALUE_NAME_PATTERN.test(name)) {
      return `${what}: ${noun} name ${JSON.stringify(name)} must be 1-32 characters of A-Z a-z 0-9 _, not starting with a digit`
    }
    if (seen.has(name)) return `${what}: ${noun} ${name} is declared twice`
    seen.add(name)
  }
  return null
}

/** What is wrong with a list of value declarations (`what` names it in the sentence), or null. */
export function fieldsProblem(fields: readonly ValueSpec[], what: string): string | null {
  const names = namesProblem(fields, what, 'value', MAX_MESSAGE_VALUES)
  if (names) return names
  for (const f of fields) {
    const where = `${what}: value ${f.name}`
    switch (f.type) {
      case 'int':
        if (!Number.isSafeInteger(f.min) || !Number.isSafeInteger(f.max) || f.min > f.max) return `${where}: int needs safe integers min <= max, got [${String(f.min)}, ${String(f.max)}]`
        break
      case 'string':
        if (!Number.isInteger(f.maxBytes) || f.maxBytes < 1 || f.maxBytes > MAX_STRING_BYTES) return `${where}: string needs maxBytes from 1 to ${MAX_STRING_BYTES}, got ${String(f.maxBytes)}`
        break
      case 'number':
      case 'bool':
        break
      default:
        return `${where}: type must be 'int', 'number', 'string' or 'bool', got ${JSON.stringify((f as { type?: unknown }).type)}`
    }
  }
  const worst = worstFrameBytes(fields)
  if (worst > MAX_MESSAGE_FRAME_BYTES) return `${what}: its largest frame would be ${worst} bytes, more than ${MAX_MESSAGE_FRAME_BYTES} (shorten its strings)`
  return null
}

/** What is wrong with a list of message declarations, or null. */
export function messagesProblem(messages: readonly MessageSpec[], what: string): string | null {
  const names = namesProblem(messages, what, 'message', MAX_MESSAGE_KINDS)
  if (names) return names
  for (const m of messages) {
    const p = fieldsProblem(m.fields, `${what} ${m.name}`)
    if (p) return p
  }
  return null
}

/** What is wrong with one value for its declaration (a sentence ending in what it got), or null. */
export function valueProblem(s: ValueSpec, v: unknown): string | null {
  switch (s.type) {
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) && v >= s.min && v <= s.max ? null : `must be an integer from ${s.min} to ${s.max}, got ${show(v)}`
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) ? null : `must be a finite number, got ${show(v)}`
    case 'string':
      if (typeof v !== 'string') return `must be a string, got ${show(v)}`
      return utf8Bytes(v) <= s.maxBytes ? null : `must be at most ${s.maxBytes} bytes of UTF-8, got ${utf8Bytes(v)}`
    case 'bool':
      return typeof v === 'boolean' ? null : `must be true or false, got ${show(v)}`
  }
}

function show(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v)
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)
  return typeof v
}

/**
 * Checks `data` against `fields` and writes its values in wire order to
 * `out` (from index `at`). Returns null, or what is wrong, naming the value:
 * a missing value, an extra key, or a bad value.
 */
export function valuesOf(fields: readonly ValueSpec[], data: unknown, out: Value[], at: number, what: string): string | null {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return `${what} must be an object of its declared values`
  const d = data as Record<string, unknown>
  let present = 0
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] as ValueSpec
    if (!Object.prototype.hasOwnProperty.call(d, f.name)) return `${what}: value ${f.name} is missing`
    present++
    const v = d[f.name]
    const p = valueProblem(f, v)
    if (p) return `${what}: value ${f.name} ${p}`
    out[at + i] = v as Value
  }
  const keys = Object.keys(d)
  if (keys.length !== present) {
    const extra = keys.find((k) => !fields.some((f) => f.name === k))
    return `${what}: ${JSON.stringify(extra)} is not one of its declared values (${fields.map((f) => f.name).join(', ') || 'none'})`
  }
  return null
}

/** Checks wire values (from index `at`) against `fields`; null or the problem naming the value. */
export function wireProblem(fields: readonly ValueSpec[], values: readonly unknown[], at: number, what: string): string | null {
  if (values.length - at !== fields.length) return `${what}: ${fields.length} values expected, got ${values.length - at}`
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i] as ValueSpec
    const p = valueProblem(f, values[at + i])
    if (p) return `${what}: value ${f.name} ${p}`
  }
  return null
}

/** Wire values (already checked) as an object by name, without a prototype (a value named `__proto__` stays a key). */
export function dataOf(fields: readonly ValueSpec[], values: readonly unknown[], at: number): Record<string, Value> {
  const out = Object.create(null) as Record<string, Value>
  for (let i = 0; i < fields.length; i++) out[(fields[i] as ValueSpec).name] = values[at + i] as Value
  return out
}

/** A declaration as WELCOME carries it: `[name, 'int', min, max]`, `[name, 'number']`, `[name, 'string', maxBytes]`, `[name, 'bool']`. */
export function fieldToWire(f: ValueSpec): (string | number)[] {
  switch (f.type) {
    case 'int':
      return [f.name, 'int', f.min, f.max]
    case 'string':
      return [f.name, 'string', f.maxBytes]
    default:
      return [f.name, f.type]
  }
}

/** Reads a declaration from WELCOME; null when it is not one. */
export function fieldFromWire(x: unknown): ValueSpec | null {
  if (!Array.isArray(x) || typeof x[0] !== 'string') return null
  const [name, type, a, b] = x as unknown[]
  const n = name as string
  if (type === 'int' && x.length === 4 && Number.isSafeInteger(a) && Number.isSafeInteger(b)) return { name: n, type: 'int', min: a as number, max: b as number }
  if (type === 'string' && x.length === 3 && Number.isInteger(a) && (a as number) >= 0) return { name: n, type: 'string', maxBytes: a as number }
  if ((type === 'number' || type === 'bool') && x.length === 2) return { name: n, type }
  return null
}

export function messageToWire(m: MessageSpec): unknown[] {
  return [m.name, m.fields.map(fieldToWire)]
}

/** Reads a message declaration from WELCOME; null when it is not one. */
export function messageFromWire(x: unknown): MessageSpec | null {
  if (!Array.isArray(x) || x.length !== 2 || typeof x[0] !== 'string' || !Array.isArray(x[1])) return null
  const fields: ValueSpec[] = []
  for (const f of x[1] as unknown[]) {
    const s = fieldFromWire(f)
    if (!s) return null
    fields.push(s)
  }
  return { name: x[0], fields }
}
