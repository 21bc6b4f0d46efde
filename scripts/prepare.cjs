// npm runs this after `npm install` / `npm ci` in the repo: build the server and the browser client.
// A production install without dev dependencies (npm ci --omit=dev) has no compiler: say so, do not fail.
const { spawnSync } = require('node:child_process')
for (const dep of ['typescript', 'esbuild']) {
  try {
    require.resolve(dep)
  } catch {
    process.stderr.write(`tickwire: ${dep} is not installed (dev dependency): skipping the build; ship a built dist/ or install dev dependencies\n`)
    process.exit(0)
  }
}
const r = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' })
process.exit(r.status ?? 1)
