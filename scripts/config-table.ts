/**
 * Prints the config option table as Markdown, or with `--write FILE` replaces
 * the table between the config-table markers in FILE (the README):
 * `npm run docs`.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { markdownTable } from '../src/config.js'

const START = /<!-- config-table:start[^>]*-->/
const END = '<!-- config-table:end -->'

/** `text` with the table between the markers replaced by the current one. */
export function withConfigTable(text: string): string {
  const m = START.exec(text)
  const end = text.indexOf(END)
  if (!m || end < 0) throw new Error('config-table markers not found')
  return text.slice(0, m.index + m[0].length) + '\n' + markdownTable() + '\n' + text.slice(end)
}

const i = process.argv.indexOf('--write')
if (i >= 0) {
  const file = process.argv[i + 1]
  if (!file) throw new Error('--write needs a file')
  writeFileSync(file, withConfigTable(readFileSync(file, 'utf8')))
} else if (process.argv[1]?.endsWith('config-table.js')) {
  process.stdout.write(markdownTable() + '\n')
}
