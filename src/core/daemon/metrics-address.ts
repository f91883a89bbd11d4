// Where hsmd serves its Prometheus metrics (`daemon run --metrics [ADDR:]PORT`). Loopback
// unless the user says otherwise twice: the listing names every VM and its traffic, so a
// non-loopback address is refused unless --metrics-public is given as well.

import { isIP } from 'node:net'
import { UsageError } from '../errors.js'

export interface MetricsAddress {
  /** An IP literal (IPv6 without brackets). */
  host: string
  /** 0: any free port (`daemon status` says which). */
  port: number
}

const FLAG = '--metrics'
const FORMS = 'give PORT (127.0.0.1:PORT), 127.0.0.1:PORT, [::1]:PORT or localhost:PORT'

/** Whether an IP literal is a loopback address (127/8, ::1, ::ffff:127/104). */
export function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.split('.')[0] === '127'
  const h = host.toLowerCase()
  return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h)
}

function port(text: string, value: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`'${value}': '${text}' is not a port (0-65535)`, {
      flag: FLAG,
      hint: FORMS,
    })
  }
  return Number(text)
}

/**
 * `PORT`, `HOST:PORT` or `[IPV6]:PORT`; HOST an IP literal or `localhost` (names are not
 * resolved: the daemon must know what it binds). Non-loopback needs `allowPublic`.
 */
export function parseMetricsAddress(
  value: string,
  options: { allowPublic?: boolean } = {},
): MetricsAddress {
  const v = value.trim()
  let host: string
  let portText: string
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(v)
  if (bracketed) {
    host = bracketed[1]!
    portText = bracketed[2]!
    if (isIP(host) !== 6)
      throw new UsageError(`'${value}': '${host}' is not an IPv6 address`, {
        flag: FLAG,
        hint: FORMS,
      })
  } else if (/^\d+$/.test(v)) {
    host = '127.0.0.1'
    portText = v
  } else {
    const colon = v.lastIndexOf(':')
    if (colon < 0 || v.indexOf(':') !== colon) {
      throw new UsageError(
        `'${value}' is not [ADDR:]PORT${v.includes(':') ? ' (write an IPv6 address in brackets)' : ''}`,
        { flag: FLAG, hint: FORMS },
      )
    }
    host = v.slice(0, colon)
    portText = v.slice(colon + 1)
    if (host === 'localhost') host = '127.0.0.1'
    else if (isIP(host) !== 4) {
      throw new UsageError(`'${value}': '${host}' is not an IP address`, {
        flag: FLAG,
        hint: `host names are not resolved (hsmd must know what it binds): ${FORMS}`,
      })
    }
  }
  const p = port(portText, value)
  if (!isLoopback(host) && !options.allowPublic) {
    throw new UsageError(`'${value}' is not a loopback address: hsmd's metrics name every VM`, {
      flag: FLAG,
      hint: 'to let other hosts scrape them, add --metrics-public (firewall the port yourself)',
    })
  }
  return { host, port: p }
}

/** `127.0.0.1:9410`, `[::1]:9410`. */
export function formatAddress(a: MetricsAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}
