/**
 * TLS served by tickwire itself (`--tls-cert`, `--tls-key`): every worker's
 * uWS app is an SSLApp, public and direct ports alike. (TLS at a load
 * balancer in front is the other way; see the README.)
 *
 * uWS.SSLApp (core v20.43) only throws "App construction failed" for any bad
 * file, and with an encrypted key and no passphrase OpenSSL would prompt on the
 * terminal. So the files are loaded and checked with node:crypto first, and
 * every problem is a ConfigError (exit 2) naming the option.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError } from '../config.js'
import type { Logger } from '../log.js'
import uWS, { type TemplatedApp } from './uws.js'

export interface TlsOptions {
  readonly tlsCert: string
  readonly tlsKey: string
  readonly tlsPassphrase: string
}

/** What `checkTls` found: for the start-up log line. */
export interface TlsInfo {
  readonly subject: string
  readonly subjectAltName: string
  readonly validFrom: Date
  readonly validTo: Date
  /** Whole days until `validTo` (negative once expired). */
  readonly daysLeft: number
}

/** A certificate expiring within this many days is warned about at start. */
export const TLS_EXPIRY_WARN_DAYS = 14

const DAY_MS = 86_400_000

function readPem(flag: string, path: string, marker: RegExp, what: string, block: string): Buffer {
  let data: Buffer
  try {
    data = readFileSync(path)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message
    throw new ConfigError(`${flag} ${JSON.stringify(path)}: cannot read it (${why})`)
  }
  // uWS loads PEM only (SSL_FILETYPE_PEM); node:crypto would also take DER, so insist here.
  if (!marker.test(data.toString('latin1'))) throw new ConfigError(`${flag} ${JSON.stringify(path)}: not a PEM ${what} (no -----BEGIN ${block}----- block)`)
  return data
}

function loadKey(opts: TlsOptions, pem: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase: opts.tlsPassphrase })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const encrypted = /ENCRYPTED/.test(pem.toString('latin1'))
    if (e.code === 'ERR_MISSING_PASSPHRASE' || (encrypted && opts.tlsPassphrase === '')) {
      throw new ConfigError(`--tls-key ${JSON.stringify(opts.tlsKey)} is encrypted: set --tls-passphrase (TICKWIRE_TLS_PASSPHRASE)`)
    }
    if (encrypted) throw new ConfigError(`--tls-passphrase does not decrypt --tls-key ${JSON.stringify(opts.tlsKey)} (wrong passphrase)`)
    throw new ConfigError(`--tls-key ${JSON.stringify(opts.tlsKey)}: not a usable private key (${e.message})`)
  }
}

/**
 * Loads `--tls-cert` and `--tls-key` the way uWS will, and checks they are
 * readable PEM, the key decrypts with `--tls-passphrase`, and the key is the
 * certificate's. Throws ConfigError naming the option; returns null when TLS
 * is off. With `log`: warns when the certificate expires within
 * TLS_EXPIRY_WARN_DAYS, logs an error when it has expired or is not yet valid
 * (it still starts: clients refuse it, a renewed file and a restart fix it).
 */
export function checkTls(opts: TlsOptions, log?: Logger, now: Date = new Date()): TlsInfo | null {
  if (opts.tlsCert === '' && opts.tlsKey === '') return null
  if (opts.tlsCert === '' || opts.tlsKey === '') throw new ConfigError('--tls-cert and --tls-key go together: set both, or neither')
  const certPem = readPem('--tls-cert', opts.tlsCert, /-----BEGIN CERTIFICATE-----/, 'certificate', 'CERTIFICATE')
  const keyPem = readPem('--tls-key', opts.tlsKey, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'private key', '... PRIVATE KEY')
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certPem) // the first certificate of a chain: the server's own
  } catch (err) {
    throw new ConfigError(`--tls-cert ${JSON.stringify(opts.tlsCert)}: not a valid certificate (${(err as Error).message})`)
  }
  const key = loadKey(opts, keyPem)
  if (!cert.checkPrivateKey(key)) {
    throw new ConfigError(`--tls-key ${JSON.stringify(opts.tlsKey)} is not the private key of --tls-cert ${JSON.stringify(opts.tlsCert)} (subject ${cert.subject.replace(/\n/g, ', ')})`)
  }
  const validFrom = new Date(cert.validFrom)
  const validTo = new Date(cert.validTo)
  const info: TlsInfo = {
    subject: cert.subject.replace(/\n/g, ', '),
    subjectAltName: cert.subjectAltName ?? '',
    validFrom,
    validTo,
    daysLeft: Math.floor((validTo.getTime() - now.getTime()) / DAY_MS),
  }
  const fields = { cert: opts.tlsCert, subject: info.subject, validTo: validTo.toISOString() }
  if (validTo.getTime() <= now.getTime()) log?.error('TLS certificate has expired: clients will refuse it; renew it and restart', fields)
  else if (validFrom.getTime() > now.getTime()) log?.error('TLS certificate is not valid yet: clients will refuse it', { ...fields, validFrom: validFrom.toISOString() })
  else if (info.daysLeft < TLS_EXPIRY_WARN_DAYS) log?.warn('TLS certificate expires soon: renew it and restart', { ...fields, daysLeft: info.daysLeft })
  return info
}

/**
 * The uWS app for these options: SSLApp with the certificate (checked first
 * by `checkTls`, so a bad file is a ConfigError), else a plain App.
 */
export function createApp(opts: TlsOptions, log?: Logger): TemplatedApp {
  if (checkTls(opts, log) === null) return uWS.App()
  try {
    return uWS.SSLApp({ cert_file_name: opts.tlsCert, key_file_name: opts.tlsKey, passphrase: opts.tlsPassphrase })
  } catch (err) {
    // Passed node:crypto but not uWS's OpenSSL load (e.g. the file changed in between).
    throw new ConfigError(`--tls-cert ${JSON.stringify(opts.tlsCert)} / --tls-key ${JSON.stringify(opts.tlsKey)}: uWS could not load them (${(err as Error).message})`)
  }
}
