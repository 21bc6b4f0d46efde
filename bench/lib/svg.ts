/** A small SVG line chart for benchmark reports: no dependencies, readable on GitHub. */

export interface Series {
  readonly name: string
  readonly points: readonly (readonly [number, number])[]
}

export interface ChartOptions {
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  readonly series: readonly Series[]
  /** Logarithmic y axis (values <= 0 are dropped). */
  readonly logY?: boolean
  /** A horizontal reference line (e.g. a target), with its label. */
  readonly hline?: { readonly y: number; readonly label: string }
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b']
const W = 720
const H = 400
const M = { left: 70, right: 160, top: 40, bottom: 50 }

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** Nice tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo]
  const raw = (hi - lo) / n
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)))
  return out
}

const fmt = (v: number) => (Math.abs(v) >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(3)}`)

/** Renders the chart as a standalone SVG document. */
export function lineChart(o: ChartOptions): string {
  const ok = (y: number) => Number.isFinite(y) && (!o.logY || y > 0)
  const pts = o.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && ok(y)))
  const ys = pts.map(([, y]) => y).concat(o.hline && ok(o.hline.y) ? [o.hline.y] : [])
  const xs = pts.map(([x]) => x)
  const x0 = Math.min(0, ...xs)
  const x1 = Math.max(1, ...xs)
  const ty = (v: number) => (o.logY ? Math.log10(v) : v)
  let y0 = ys.length ? Math.min(...ys.map(ty)) : 0
  let y1 = ys.length ? Math.max(...ys.map(ty)) : 1
  if (!o.logY) y0 = Math.min(0, y0)
  if (y1 === y0) y1 = y0 + 1
  if (o.logY) {
    y0 = Math.floor(y0)
    y1 = Math.ceil(y1)
  } else y1 *= 1.05
  const px = (x: number) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right)
  const py = (y: number) => H - M.bottom - ((ty(y) - y0) / (y1 - y0)) * (H - M.top - M.bottom)
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${W / 2 - M.right / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`)
  const yTicks = o.logY ? Array.from({ length: y1 - y0 + 1 }, (_, i) => 10 ** (y0 + i)) : ticks(y0, y1)
  for (const v of yTicks) {
    const y = py(v)
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${M.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`)
  }
  for (const v of ticks(x0, x1)) {
    const x = px(v)
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${H - M.bottom}" y2="${H - M.bottom + 4}" stroke="#333"/>`)
    out.push(`<text x="${x.toFixed(1)}" y="${H - M.bottom + 18}" text-anchor="middle">${fmt(v)}</text>`)
  }
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`)
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`)
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`)
  out.push(`<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}${o.logY ? ' (log)' : ''}</text>`)
  if (o.hline && ok(o.hline.y)) {
    const y = py(o.hline.y).toFixed(1)
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#888" stroke-dasharray="6 4"/>`)
    out.push(`<text x="${W - M.right - 4}" y="${Number(y) - 4}" text-anchor="end" fill="#666">${esc(o.hline.label)}</text>`)
  }
  o.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && ok(y))
    if (p.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${p.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`)
    for (const [x, y] of p) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`)
    const ly = M.top + 10 + i * 20
    out.push(`<rect x="${W - M.right + 12}" y="${ly - 8}" width="14" height="4" fill="${color}"/>`)
    out.push(`<text x="${W - M.right + 32}" y="${ly - 2}">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
