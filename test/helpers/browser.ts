/** Debian's Chromium for the browser tests, driven by playwright-core. */
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import type { Test } from 'tap'

export const CHROMIUM = '/usr/bin/chromium'

/**
 * Launches Chromium for test `t` (closed in its teardown). Without one, `t`
 * fails when TICKWIRE_REQUIRE_BROWSER=1 (as in .ci/run) and is skipped
 * otherwise, saying why; either way the caller gets null and returns.
 */
export async function launchChromium(t: Test, what: string): Promise<Browser | null> {
  if (!existsSync(CHROMIUM)) {
    const why = `no browser at ${CHROMIUM}: apt-get install chromium (bash .ci/run does)`
    if (process.env.TICKWIRE_REQUIRE_BROWSER === '1') t.fail(why)
    else t.pass(what, { skip: why })
    return null
  }
  let browser: Browser
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  } catch (err) {
    t.fail(`Chromium at ${CHROMIUM} did not start: ${(err as Error).message}`)
    return null
  }
  t.teardown(() => browser.close())
  return browser
}
