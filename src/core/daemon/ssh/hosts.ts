// What `--host` (and HSMCTL_HOST) names: one remote host as `ssh://[user@]host[:port]`, or
// a fleet of them, comma-separated or `@FILE` with one a line (# comments, blank lines
// skipped). Only ssh:// is a transport; a host is checked strictly because its text ends
// up on ssh's command line (a name starting with "-" would be an option there).

import { UsageError } from '../../errors.js'
import { readUserFile } from '../../user-file.js'

export interface SshHost {
  /** The host as written, without the scheme: the HOST column, and what messages name. */
  readonly label: string
  readonly host: string
  readonly user?: string
  readonly port?: number
}

const NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]*)$/
const USER = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/
const IPV6 = /^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?$/

const EXAMPLE = 'write it as ssh://[user@]host[:port], e.g. ssh://root@edge1 or ssh://10.0.0.5:2222'

/** One `ssh://[user@]host[:port]`. */
export function parseHost(text: string, flag = '--host'): SshHost {
  const bad = (why: string) => new UsageError(`'${text}' ${why}`, { flag, hint: EXAMPLE })
  const trimmed = text.trim()
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed)
  if (!scheme) throw bad('is not a host URL')
  if (scheme[1]!.toLowerCase() !== 'ssh')
    throw bad(`uses ${scheme[1]}://; hsmctl reaches remote hosts over ssh:// only`)
  let rest = trimmed.slice(scheme[0].length)
  if (rest.endsWith('/')) rest = rest.slice(0, -1)
  if (rest.includes('/')) throw bad('has a path; a host URL is ssh://[user@]host[:port]')
  let user: string | undefined
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    user = rest.slice(0, at)
    rest = rest.slice(at + 1)
    if (!USER.test(user)) throw bad(`has a user name hsmctl cannot pass to ssh ('${user}')`)
  }
  let host: string
  let portText: string | undefined
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']')
    if (close < 0) throw bad('opens an IPv6 address with [ but does not close it')
    host = rest.slice(1, close)
    if (!IPV6.test(host)) throw bad(`has '${host}' in brackets, which is not an IPv6 address`)
    const after = rest.slice(close + 1)
    if (after !== '' && !after.startsWith(':')) throw bad('has text after the IPv6 address')
    portText = after === '' ? undefined : after.slice(1)
  } else {
    const colon = rest.indexOf(':')
    host = colon < 0 ? rest : rest.slice(0, colon)
    portText = colon < 0 ? undefined : rest.slice(colon + 1)
    if (host === '') throw bad('names no host')
    if (!NAME.test(host)) throw bad(`has a host name hsmctl cannot pass to ssh ('${host}')`)
  }
  let port: number | undefined
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
    if (!(port >= 1 && port <= 65535)) throw bad(`has port '${portText}'; a port is 1 to 65535`)
  }
  return {
    label: trimmed.slice(scheme[0].length).replace(/\/$/, ''),
    host,
    ...(user !== undefined ? { user } : {}),
    ...(port !== undefined ? { port } : {}),
  }
}

/**
 * The hosts `--host` names: one, several separated by commas, or `@FILE` (one a line).
 * Empty (''): none, the local daemon.
 */
export function parseHosts(value: string, flag = '--host'): SshHost[] {
  const text = value.trim()
  if (text === '') return []
  let entries: string[]
  if (text.startsWith('@')) {
    const file = text.slice(1)
    const content = readUserFile(file, {
      flag,
      what: 'host list',
      maxBytes: 1 << 20,
      sizeHint: 'a host list has one ssh:// URL a line',
    }).toString('utf8')
    entries = content
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l !== '')
    if (entries.length === 0)
      throw new UsageError(`${file} names no host`, {
        flag,
        hint: 'put one ssh://[user@]host[:port] a line in it',
      })
  } else {
    entries = text.split(',').map((e) => e.trim())
    if (entries.some((e) => e === ''))
      throw new UsageError(`'${value}' has an empty entry`, {
        flag,
        hint: 'separate hosts with single commas: ssh://a,ssh://b',
      })
  }
  const hosts = entries.map((e) => parseHost(e, flag))
  const seen = new Set<string>()
  for (const h of hosts) {
    if (seen.has(h.label))
      throw new UsageError(`${h.label} is named twice`, {
        flag,
        hint: 'name each host once',
      })
    seen.add(h.label)
  }
  return hosts
}

/** The host as an ssh command line names it (for hints): `-p 2222 root@edge1`. */
export function sshTarget(host: SshHost): string {
  return `${host.port !== undefined ? `-p ${host.port} ` : ''}${host.user ? `${host.user}@` : ''}${host.host}`
}
