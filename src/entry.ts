/** Whether the module at `moduleUrl` (its `import.meta.url`) is the script this process was started with, through any symlink (npm's bin links). */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export function isEntry(moduleUrl: string): boolean {
  const argv1 = process.argv[1]
  if (!argv1) return false
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(moduleUrl))
  } catch {
    return false
  }
}
