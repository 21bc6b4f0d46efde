import t from 'tap'
import { ConfigError, OPTIONS, defaultConfig, envName, flagName, helpText, parseConfig } from '../src/config.js'

t.test('defaults match the issue: port 9001, 30 Hz, metrics 9464', async (t) => {
  const c = defaultConfig()
  t.equal(c.port, 9001)
  t.equal(c.tickHz, 30)
  t.equal(c.metricsPort, 9464)
  t.ok(Object.isFrozen(parseConfig([]).config))
})

t.test('flags, --flag=value and environment, flags winning', async (t) => {
  const { config } = parseConfig(['--port', '7000', '--tick-hz=20'], { TICKWIRE_PORT: '8000', TICKWIRE_METRICS_PORT: '0' })
  t.equal(config.port, 7000)
  t.equal(config.tickHz, 20)
  t.equal(config.metricsPort, 0)
})

t.test('errors name the option, the value and what was expected', async (t) => {
  t.throws(() => parseConfig(['--port', '70000']), { name: 'ConfigError', message: /--port \(port\): got 70000, expected 0 to 65535/ })
  t.throws(() => parseConfig(['--tick-hz', 'fast']), { message: /--tick-hz \(tickHz\): got "fast", expected a number/ })
  t.throws(() => parseConfig(['--max-visible', '2.5']), { message: /expected an integer/ })
  t.throws(() => parseConfig([], { TICKWIRE_TICK_HZ: '0' }), { message: /TICKWIRE_TICK_HZ \(tickHz\): got 0, expected 1 to 240/ })
  t.throws(() => parseConfig(['--nope', '1']), { message: /unknown option "--nope"/ })
  t.throws(() => parseConfig(['--port']), { message: /--port needs a value/ })
  t.throws(() => parseConfig(['--soft-backpressure', '9000', '--hard-backpressure', '9000']), { message: /must be greater than --soft-backpressure/ })
  t.throws(() => parseConfig(['--ack-window', '40', '--history-ticks', '32']), { message: /must be less than --history-ticks/ })
  t.throws(() => parseConfig(['--log-level', 'loud']), { message: /expected one of error, warn, info, debug/ })
  t.throws(() => parseConfig(['--port', '9000', '--metrics-port', '9000']), ConfigError)
})

t.test('--help lists every option with its flag, env var, default and unit', async (t) => {
  t.equal(parseConfig(['--help']).help, true)
  const text = helpText()
  for (const [key, spec] of Object.entries(OPTIONS)) {
    t.match(text, flagName(key), key)
    t.match(text, envName(key), key)
    t.match(text, String(spec.default), key)
  }
  t.equal(envName('metricsPort'), 'TICKWIRE_METRICS_PORT')
  t.equal(flagName('maxPlayersPerRoom'), '--max-players-per-room')
})
