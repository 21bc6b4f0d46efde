/**
 * `--game ./my-game.js`: a game from an ES module, for the CLI and every
 * worker. The module exports the `Game` as its default export or as `game`.
 * Anything else is a clear start-up error (exit 2); `start()` then validates
 * the definition itself.
 */
import { existsSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from './config.js'
import { arena } from './games/arena.js'
import type { Game } from './sim/game.js'

/** The game of `--game` (a path, relative to the working directory), or the reference arena when it is empty. */
export async function loadGame(path: string): Promise<Game> {
  if (path === '') return arena
  const file = isAbsolute(path) ? path : resolve(process.cwd(), path)
  if (!existsSync(file)) throw new ConfigError(`--game: ${JSON.stringify(path)} does not exist (a built .js ES module exporting your Game)`)
  let mod: Record<string, unknown>
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>
  } catch (err) {
    throw new ConfigError(`--game: ${JSON.stringify(path)} could not be loaded: ${(err as Error).message}`)
  }
  const game = (mod.default ?? mod.game) as Partial<Game> | undefined
  if (!game || typeof game !== 'object' || typeof game.createRoom !== 'function' || !Array.isArray(game.fields) || !Array.isArray(game.input)) {
    throw new ConfigError(`--game: ${JSON.stringify(path)} must export a Game (name, fields, input, position, layout, createRoom) as its default export or as "game"`)
  }
  return game as Game
}
