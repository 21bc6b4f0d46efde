/**
 * Writes the load balancer's configuration for tickwire on several machines:
 * HAProxy 2.6 (`haproxy`) or nginx 1.22 (`nginx`), from the list of machines.
 *
 * The contract it implements: a request that carries `route=R` must reach the
 * worker named R; any other may go anywhere. Worker i of node `m1` is `m1-i`
 * at `<host>:<direct-port + i>` (tickwire's `--node-id` and `--direct-port`).
 *
 * @example
 *   node dist/scripts/lb-config.js haproxy --node m1=10.0.0.1 --node m2=10.0.0.2 \
 *     --workers 2 --direct-port 9101 --listen 443 --cert /etc/haproxy/tickwire.pem
 *   node dist/scripts/lb-config.js nginx --node m1=10.0.0.1 --node m2=10.0.0.2 \
 *     --workers 2 --direct-port 9101 --cert /etc/nginx/tickwire.crt --key /etc/nginx/tickwire.key
 */
import { writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { NODE_ID_PATTERN, workerName } from '../src/directory/directory.js'
import { isEntry } from '../src/entry.js'

/** One machine: its `--node-id`, the address the load balancer reaches it at, and (if it differs from the common one) its `--direct-port`. */
export interface LbNode {
  readonly id: string
  readonly host: string
  readonly directPort?: number
}

/** What a configuration is made from. Optional fields have the defaults documented on each. */
export interface LbInput {
  readonly nodes: readonly LbNode[]
  /** Workers per machine (tickwire's `--workers`). */
  readonly workers: number
  /** tickwire's `--direct-port`: worker i listens on direct-port + i. */
  readonly directPort: number
  /** `PORT`, `HOST:PORT` or `[V6]:PORT` the balancer listens on; default 443 with TLS, 80 without. */
  readonly listen?: string
  /** TLS certificate file. HAProxy: one PEM with certificate chain and key. nginx: the chain (key in `key`). None: plain HTTP. */
  readonly cert?: string
  /** nginx only: the TLS private key file. */
  readonly key?: string
  /** Health check interval (HAProxy), ms; default 1000. A worker leaves rotation after `fall` failed checks. */
  readonly checkInterMs?: number
  /** Consecutive failed checks that take a worker out (default 2) and good ones that bring it back (default 2). */
  readonly fall?: number
  readonly rise?: number
  /** Idle limit of an upgraded WebSocket, s; default 3600. */
  readonly tunnelTimeoutS?: number
  /** HAProxy `log` target; default `/dev/log local0`; '' : no log line. */
  readonly log?: string
  /** HAProxy runtime API socket (`show stat`, `set server ... state drain`); default `/run/haproxy/admin.sock`; '' : none. */
  readonly statsSocket?: string
  /** HAProxy drops root to this user after binding; default `haproxy`; '' : stays as started. */
  readonly user?: string
  /** nginx `server_name`; default `_` (any). */
  readonly serverName?: string
}

/** A worker as the balancer sees it. */
export interface LbWorker {
  /** `<node-id>-<i>`: the value of `route` that must reach it. */
  readonly name: string
  readonly host: string
  readonly port: number
}

/** Bad input; the message names the option and what was expected. The CLI exits 2 with it. */
export class LbConfigError extends Error {
  override readonly name = 'LbConfigError'
}

const MAX_WORKERS = 1024
// A DNS name: labels of letters, digits and hyphens.
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
// A file path as it may stand unquoted in either configuration language.
const PATH = /^[A-Za-z0-9_./@:+-]+$/

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535
}

/** Every worker of every node, in node order, checked: valid names and hosts, no two workers on one address. */
export function lbWorkers(input: LbInput): LbWorker[] {
  if (!Number.isInteger(input.workers) || input.workers < 1 || input.workers > MAX_WORKERS) {
    throw new LbConfigError(`--workers: got ${input.workers}, expected an integer from 1 to ${MAX_WORKERS}`)
  }
  if (input.nodes.length === 0) throw new LbConfigError('no --node given: expected at least one --node ID=HOST')
  const out: LbWorker[] = []
  const ids = new Map<string, string>()
  const addresses = new Map<string, string>()
  for (const node of input.nodes) {
    if (!NODE_ID_PATTERN.test(node.id)) {
      throw new LbConfigError(`--node ${JSON.stringify(node.id)}: a node id is 1-48 characters of A-Z a-z 0-9 _ . - (tickwire's --node-id)`)
    }
    // nginx compares map keys without case: two ids that differ only in case would share routes.
    const folded = node.id.toLowerCase()
    const twin = ids.get(folded)
    if (twin !== undefined) throw new LbConfigError(`--node ${node.id}: node ids must differ (ignoring case), but ${twin} is given too`)
    ids.set(folded, node.id)
    if (isIP(node.host) === 0 && !HOST_NAME.test(node.host)) {
      throw new LbConfigError(`--node ${node.id}=${node.host}: expected an IPv4 or IPv6 address or a host name`)
    }
    const base = node.directPort ?? input.directPort
    if (!isPort(base)) throw new LbConfigError(`--direct-port${node.directPort !== undefined ? ` of node ${node.id}` : ''}: got ${base}, expected a port from 1 to 65535`)
    if (base + input.workers - 1 > 65535) {
      throw new LbConfigError(`--direct-port ${base} with --workers ${input.workers}: the last direct port of node ${node.id} would exceed 65535`)
    }
    for (let i = 0; i < input.workers; i++) {
      const w: LbWorker = { name: workerName(node.id, i), host: node.host, port: base + i }
      const where = `${hostPort(w.host, w.port)}`
      const other = addresses.get(where)
      if (other !== undefined) throw new LbConfigError(`workers ${other} and ${w.name} are both at ${where}: give the nodes different hosts or direct ports`)
      addresses.set(where, w.name)
      out.push(w)
    }
  }
  return out
}

/** `host:port`, with IPv6 addresses in brackets. */
function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}

interface Listen {
  readonly host: string
  readonly port: number
}

function parseListen(listen: string | undefined, tls: boolean): Listen {
  if (listen === undefined || listen === '') return { host: '', port: tls ? 443 : 80 }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]:|([^:\s]+):)?(\d{1,5})$/.exec(listen)
  const port = Number(m?.[3])
  const host = m?.[1] ?? m?.[2] ?? ''
  if (!m || !isPort(port) || (host !== '' && isIP(host) === 0)) {
    throw new LbConfigError(`--listen: got ${JSON.stringify(listen)}, expected PORT, IPV4:PORT or [IPV6]:PORT`)
  }
  return { host, port }
}

function checkPath(option: string, value: string | undefined): void {
  if (value !== undefined && !PATH.test(value)) throw new LbConfigError(`${option}: got ${JSON.stringify(value)}, expected a file path without spaces or quotes`)
}

function positiveInt(option: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v < 1 || v > max) throw new LbConfigError(`${option}: got ${v}, expected an integer from 1 to ${max}`)
  return v
}

/** The input with defaults applied and every field checked. */
function resolve(input: LbInput, kind: LbKind) {
  const workers = lbWorkers(input)
  checkPath('--cert', input.cert)
  checkPath('--key', input.key)
  checkPath('--stats-socket', input.statsSocket === '' ? undefined : input.statsSocket)
  const tls = input.cert !== undefined && input.cert !== ''
  if (kind === 'nginx' && tls !== (input.key !== undefined && input.key !== '')) {
    throw new LbConfigError('nginx: --cert and --key go together (the certificate chain and its private key)')
  }
  if (input.log !== undefined && /[\n#]/.test(input.log)) throw new LbConfigError(`--log: got ${JSON.stringify(input.log)}, expected an HAProxy log target such as "/dev/log local0"`)
  if (input.user !== undefined && input.user !== '' && !/^[a-z_][a-z0-9_-]{0,31}$/.test(input.user)) throw new LbConfigError(`--user: got ${JSON.stringify(input.user)}, expected a system user name`)
  const serverName = input.serverName ?? '_'
  if (!/^[A-Za-z0-9_.*-]+$/.test(serverName)) throw new LbConfigError(`--server-name: got ${JSON.stringify(serverName)}, expected a host name`)
  return {
    workers,
    tls,
    listen: parseListen(input.listen, tls),
    interMs: positiveInt('--check-inter', input.checkInterMs, 1000, 3_600_000),
    fall: positiveInt('--fall', input.fall, 2, 100),
    rise: positiveInt('--rise', input.rise, 2, 100),
    tunnelS: positiveInt('--tunnel-timeout', input.tunnelTimeoutS, 3600, 7 * 86400),
    log: input.log ?? '/dev/log local0',
    statsSocket: input.statsSocket ?? '/run/haproxy/admin.sock',
    user: input.user ?? 'haproxy',
    serverName,
  }
}

export type LbKind = 'haproxy' | 'nginx'

function header(kind: LbKind, workers: readonly LbWorker[], input: LbInput): string[] {
  const nodes = input.nodes.map((n) => `${n.id}=${n.host}${n.directPort !== undefined ? `:${n.directPort}` : ''}`).join(' ')
  return [
    `# tickwire behind ${kind === 'haproxy' ? 'HAProxy 2.6' : 'nginx 1.22'}: written by scripts/lb-config.ts; regenerate rather than edit.`,
    `# Machines: ${nodes}; ${input.workers} worker(s) each, direct ports from ${input.directPort}: ${workers.length} workers.`,
    '#',
    '# The contract with tickwire: a request that carries route=R must reach the',
    '# worker named R; any other may go anywhere. Workers redirect a player to the',
    '# public URL with route=<worker> when the room lives elsewhere.',
    '#',
    '# Adding a machine: start it with its own --node-id and the same --redis-url,',
    '# --public-url and --resume-secret, regenerate this file with one more --node,',
    kind === 'haproxy'
      ? '# check it (haproxy -c -f FILE) and reload (systemctl reload haproxy): a reload'
      : '# check it (nginx -t) and reload (systemctl reload nginx or nginx -s reload): a reload',
    '# keeps open WebSockets on the old process until they close.',
  ]
}

/** The HAProxy 2.6 configuration (a whole haproxy.cfg). */
export function haproxyConfig(input: LbInput): string {
  const r = resolve(input, 'haproxy')
  const bind = `${r.listen.host.includes(':') ? `[${r.listen.host}]` : r.listen.host}:${r.listen.port}`
  const inter = `${r.interMs}ms`
  const lines = [
    ...header('haproxy', r.workers, input),
    '',
    'global',
    ...(r.log !== '' ? [`    log ${r.log}`] : []),
    ...(r.statsSocket !== '' ? [`    # Runtime API: "show stat", or "set server tickwire/<worker> state drain" by hand.`, `    stats socket ${r.statsSocket} mode 660 level admin`] : []),
    ...(r.user !== '' ? [`    user ${r.user}`, `    group ${r.user}`] : []),
    ...(r.tls ? ['    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets'] : []),
    '',
    'defaults',
    '    mode http',
    ...(r.log !== '' ? [
      '    log global',
      // option httplog's fields, but the path without its query: the query carries resume tokens and names.
      '    log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %HM %{+Q}HPO"',
      '    option dontlognull',
    ] : []),
    '    timeout connect 5s',
    // A request's headers must arrive within this (slowloris); keep-alive idles are cut too.
    '    timeout http-request 10s',
    '    timeout http-keep-alive 10s',
    '    timeout client 30s',
    '    timeout server 30s',
    '    timeout client-fin 30s',
    `    # Once a WebSocket is upgraded this replaces client/server: tickwire sends every`,
    `    # tick and pings idle sockets, so only a dead peer is idle this long.`,
    `    timeout tunnel ${r.tunnelS}s`,
    '',
    'frontend tickwire_public',
    r.tls ? `    bind ${bind} ssl crt ${input.cert} alpn http/1.1` : `    bind ${bind}`,
    '    # X-Forwarded-For with the client address: list this balancer in tickwire\'s --trusted-proxies.',
    '    option forwardfor',
    `    http-request set-header X-Forwarded-Proto ${r.tls ? 'https' : 'http'}`,
    '    default_backend tickwire',
    '',
    'backend tickwire',
    '    # Requests without route (quick play, /info, the page): any ready worker, in turn.',
    '    balance roundrobin',
    '    # /readyz is 200 while a worker takes players, 503 while it drains or is not ready.',
    '    # HTTP/1.1 with Host: uWS does not answer HTTP/1.0 requests.',
    '    option httpchk',
    '    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host tickwire-lb',
    '    http-check expect status 200',
    `    # ${r.fall} failed checks ${inter} apart take a worker out (about ${((r.fall * r.interMs) / 1000).toFixed(1)} s); ${r.rise} good ones bring it back.`,
    `    # Open WebSockets are not cut when a worker goes down: tickwire closes them itself (1001).`,
    `    default-server check inter ${inter} fall ${r.fall} rise ${r.rise}`,
    `    timeout check ${inter}`,
    '    # A connection refused (a worker killed before its checks fail) is retried at',
    '    # once on another worker, also for a routed request: the room\'s new owner redirects.',
    '    retries 2',
    '    option redispatch 1',
    '    # route=R goes to R. If R is down (checks failed) its rule is ignored and the',
    '    # request is balanced like any other (HAProxy 2.6 configuration.txt, "use-server").',
    ...r.workers.map((w) => `    use-server ${w.name} if { url_param(route) -m str ${w.name} }`),
    ...r.workers.map((w) => `    server ${w.name} ${hostPort(w.host, w.port)}`),
    '',
  ]
  return lines.join('\n')
}

/** nginx upstream names: `tickwire_<worker>` with `-` and `.` as `_`. */
function upstreamName(worker: string): string {
  return `tickwire_${worker.replace(/[.-]/g, '_')}`
}

/** The nginx 1.22 configuration: an http-context file (/etc/nginx/conf.d/tickwire.conf). */
export function nginxConfig(input: LbInput): string {
  const r = resolve(input, 'nginx')
  const upstreams = new Map<string, string>()
  for (const w of r.workers) {
    const u = upstreamName(w.name)
    const twin = upstreams.get(u.toLowerCase())
    if (twin !== undefined) throw new LbConfigError(`nginx: workers ${twin} and ${w.name} would share the upstream name ${u}: rename a node`)
    upstreams.set(u.toLowerCase(), w.name)
  }
  const listen = `${r.listen.host === '' ? '' : r.listen.host.includes(':') ? `[${r.listen.host}]:` : `${r.listen.host}:`}${r.listen.port}`
  const passive = `max_fails=1 fail_timeout=${Math.max(1, Math.ceil((r.fall * r.interMs) / 1000))}s`
  const lines = [
    ...header('nginx', r.workers, input),
    '#',
    '# nginx open source has no active health checks: a worker leaves rotation only',
    '# after a request to it fails (max_fails/fail_timeout), and a draining worker',
    '# whose /readyz says 503 is not noticed until its listeners close (connection',
    '# refused, then the next server is tried). Prefer HAProxy where that matters.',
    '',
    // nginx's default bucket (64 bytes on x86-64) cannot hold long worker names.
    ...(Math.max(...r.workers.map((w) => w.name.length)) > 24 ? ['# Worker names longer than nginx\'s default map bucket holds (set it once per http block).', 'map_hash_bucket_size 128;', ''] : []),
    '# route=<worker> picks that worker\'s upstream; anything else: any worker.',
    'map $arg_route $tickwire_upstream {',
    '    default tickwire_any;',
    ...r.workers.map((w) => `    ${w.name} ${upstreamName(w.name)};`),
    '}',
    '',
    '# The access log without the query string: it carries resume tokens and player names.',
    'log_format tickwire_path \'$remote_addr [$time_local] "$request_method $uri $server_protocol" $status $body_bytes_sent "$upstream_addr" $request_time\';',
    '',
    'map $http_upgrade $tickwire_connection {',
    '    default upgrade;',
    "    ''      close;",
    '}',
    '',
    'upstream tickwire_any {',
    ...r.workers.map((w) => `    server ${hostPort(w.host, w.port)} ${passive};`),
    '}',
    '',
    '# One upstream per worker: the worker first, every other as a backup, so a',
    '# route to a dead worker is answered elsewhere (the room\'s new owner redirects).',
    ...r.workers.flatMap((w) => [
      `upstream ${upstreamName(w.name)} {`,
      `    server ${hostPort(w.host, w.port)} ${passive};`,
      ...r.workers.filter((o) => o !== w).map((o) => `    server ${hostPort(o.host, o.port)} backup;`),
      '}',
    ]),
    '',
    'server {',
    r.tls ? `    listen ${listen} ssl;` : `    listen ${listen};`,
    `    server_name ${r.serverName};`,
    '    access_log /var/log/nginx/access.log tickwire_path;',
    ...(r.tls
      ? [`    ssl_certificate ${input.cert};`, `    ssl_certificate_key ${input.key};`, '    ssl_protocols TLSv1.2 TLSv1.3;', '    ssl_session_cache shared:tickwire_tls:10m;']
      : []),
    '',
    '    location / {',
    '        proxy_pass http://$tickwire_upstream;',
    '        proxy_http_version 1.1;',
    '        # The public Host: tickwire\'s default Origin check compares against it.',
    '        proxy_set_header Host $http_host;',
    '        proxy_set_header Upgrade $http_upgrade;',
    '        proxy_set_header Connection $tickwire_connection;',
    '        # The client address: list this balancer in tickwire\'s --trusted-proxies.',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    '        proxy_connect_timeout 5s;',
    '        # An upgraded WebSocket may stay this long without a byte (tickwire sends every tick).',
    `        proxy_read_timeout ${r.tunnelS}s;`,
    `        proxy_send_timeout ${r.tunnelS}s;`,
    '        # Connection refused or timed out: the next server (for a route, the backups).',
    '        proxy_next_upstream error timeout;',
    '        proxy_next_upstream_tries 3;',
    '    }',
    '}',
    '',
  ]
  return lines.join('\n')
}

export const USAGE = `usage: lb-config (haproxy|nginx) --node ID=HOST[:DIRECT_PORT] [--node ...] --workers N --direct-port PORT
                 (--cert FILE [--key FILE] | --plain) [options]

Writes the load balancer's configuration for tickwire on several machines.
  --node ID=HOST      a machine: its --node-id and the address the balancer reaches it at (repeat)
  --workers N         workers per machine (tickwire's --workers)
  --direct-port PORT  tickwire's --direct-port: worker i of each node listens on PORT + i
  --cert FILE         TLS: HAProxy: one PEM with chain and key; nginx: the chain (with --key)
  --key FILE          nginx: the TLS private key
  --plain             no TLS (plain HTTP, e.g. behind another TLS terminator)
  --listen ADDR       PORT, IPV4:PORT or [IPV6]:PORT (default 443, or 80 with --plain)
  --check-inter MS    HAProxy health check interval (default 1000)
  --fall N, --rise N  failed checks that take a worker out, good ones that bring it back (default 2, 2)
  --tunnel-timeout S  idle limit of a WebSocket (default 3600)
  --log TARGET        HAProxy log target (default "/dev/log local0"; "" for none)
  --stats-socket PATH HAProxy runtime API socket (default /run/haproxy/admin.sock; "" for none)
  --user NAME         HAProxy drops root to NAME (default haproxy; "" to stay)
  --server-name NAME  nginx server_name (default _)
  --out FILE          write FILE instead of standard output
`

/** A parsed command line. */
export interface LbCommand {
  readonly kind: LbKind
  readonly input: LbInput
  readonly out: string | null
}

/** `ID=HOST`, `ID=HOST:PORT`, `ID=[V6]:PORT` or `ID=V6`. */
function parseNode(value: string): LbNode {
  const eq = value.indexOf('=')
  const id = value.slice(0, eq)
  const rest = value.slice(eq + 1)
  const m = rest.startsWith('[') ? /^\[([^\]]+)\](?::(\d+))?$/.exec(rest) : rest.split(':').length > 2 ? /^([^\s]+)()$/.exec(rest) : /^([^:\s]+)(?::(\d+))?$/.exec(rest)
  if (eq <= 0 || !m) throw new LbConfigError(`--node: got ${JSON.stringify(value)}, expected ID=HOST or ID=HOST:DIRECT_PORT`)
  const host = m[1] as string
  return m[2] !== undefined && m[2] !== '' ? { id, host, directPort: Number(m[2]) } : { id, host }
}

/** Parses the CLI's arguments (without node and script); throws LbConfigError naming the bad one. */
export function parseLbArgs(argv: readonly string[]): LbCommand {
  const [kind, ...rest] = argv
  if (kind !== 'haproxy' && kind !== 'nginx') throw new LbConfigError(`expected haproxy or nginx first, got ${JSON.stringify(kind ?? '')}`)
  const nodes: LbNode[] = []
  const strings: Record<string, string> = {}
  const ints: Record<string, number> = {}
  let plain = false
  const INTS = ['--workers', '--direct-port', '--check-inter', '--fall', '--rise', '--tunnel-timeout']
  const STRINGS = ['--listen', '--cert', '--key', '--log', '--stats-socket', '--user', '--server-name', '--out']
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i] as string
    if (flag === '--plain') {
      plain = true
      continue
    }
    const value = rest[i + 1]
    if (flag !== '--node' && !INTS.includes(flag) && !STRINGS.includes(flag)) throw new LbConfigError(`unknown option ${JSON.stringify(flag)}`)
    if (value === undefined) throw new LbConfigError(`${flag} needs a value`)
    i++
    if (flag === '--node') {
      nodes.push(parseNode(value))
    } else if (INTS.includes(flag)) {
      if (!/^\d+$/.test(value)) throw new LbConfigError(`${flag}: got ${JSON.stringify(value)}, expected a whole number`)
      ints[flag] = Number(value)
    } else {
      strings[flag] = value
    }
  }
  if (ints['--workers'] === undefined) throw new LbConfigError('--workers is required')
  if (ints['--direct-port'] === undefined) throw new LbConfigError('--direct-port is required')
  if (plain && strings['--cert'] !== undefined) throw new LbConfigError('--plain and --cert exclude each other')
  if (!plain && strings['--cert'] === undefined) throw new LbConfigError('--cert FILE is required (TLS), or --plain for plain HTTP')
  const input: LbInput = {
    nodes,
    workers: ints['--workers'],
    directPort: ints['--direct-port'],
    listen: strings['--listen'],
    cert: strings['--cert'],
    key: strings['--key'],
    checkInterMs: ints['--check-inter'],
    fall: ints['--fall'],
    rise: ints['--rise'],
    tunnelTimeoutS: ints['--tunnel-timeout'],
    log: strings['--log'],
    statsSocket: strings['--stats-socket'],
    user: strings['--user'],
    serverName: strings['--server-name'],
  }
  if (kind === 'haproxy' && input.key !== undefined) throw new LbConfigError('haproxy: --key is for nginx; HAProxy reads the key from the --cert PEM')
  return { kind, input, out: strings['--out'] ?? null }
}

/** The configuration for a parsed command line. */
export function lbConfig(kind: LbKind, input: LbInput): string {
  return kind === 'haproxy' ? haproxyConfig(input) : nginxConfig(input)
}

/** The CLI: exit code 0, or 2 with a message on bad input. */
export function main(argv: readonly string[], stdout: (s: string) => void, stderr: (s: string) => void): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    stdout(USAGE)
    return 0
  }
  try {
    const cmd = parseLbArgs(argv)
    const text = lbConfig(cmd.kind, cmd.input)
    if (cmd.out === null) stdout(text)
    else {
      try {
        writeFileSync(cmd.out, text)
      } catch (e) {
        throw new LbConfigError(`--out ${cmd.out}: ${(e as Error).message}`)
      }
    }
    return 0
  } catch (e) {
    if (!(e instanceof LbConfigError)) throw e
    stderr(`lb-config: ${e.message}\n\n${USAGE}`)
    return 2
  }
}

if (isEntry(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2), (s) => process.stdout.write(s), (s) => process.stderr.write(s))
}
