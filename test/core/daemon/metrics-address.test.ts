// `--metrics [ADDR:]PORT`: loopback unless --metrics-public (issue 14 item 4).

import { describe, expect, it } from 'vitest'
import {
  formatAddress,
  isLoopback,
  parseMetricsAddress,
} from '../../../src/core/daemon/metrics-address.js'
import { UsageError } from '../../../src/core/errors.js'

const bad = (value: string, message: RegExp, allowPublic = false) => {
  let error: unknown
  try {
    parseMetricsAddress(value, { allowPublic })
  } catch (e) {
    error = e
  }
  expect(error, value).toBeInstanceOf(UsageError)
  expect((error as UsageError).message).toMatch(/^--metrics: /)
  expect((error as UsageError).message).toMatch(message)
  expect((error as UsageError).hint).toBeTruthy()
}

describe('parseMetricsAddress', () => {
  it('a port alone is 127.0.0.1:PORT; 0 is any free port', () => {
    expect(parseMetricsAddress('9410')).toEqual({ host: '127.0.0.1', port: 9410 })
    expect(parseMetricsAddress('0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseMetricsAddress('65535').port).toBe(65535)
  })

  it('takes loopback IPv4, [IPv6] and localhost', () => {
    expect(parseMetricsAddress('127.0.0.2:9410')).toEqual({ host: '127.0.0.2', port: 9410 })
    expect(parseMetricsAddress('[::1]:9410')).toEqual({ host: '::1', port: 9410 })
    expect(parseMetricsAddress('localhost:1')).toEqual({ host: '127.0.0.1', port: 1 })
    expect(formatAddress({ host: '::1', port: 9410 })).toBe('[::1]:9410')
    expect(formatAddress({ host: '127.0.0.1', port: 9410 })).toBe('127.0.0.1:9410')
  })

  it('refuses a non-loopback address unless --metrics-public, and says how', () => {
    bad('0.0.0.0:9410', /not a loopback address/)
    bad('192.0.2.7:9410', /not a loopback address/)
    bad('[::]:9410', /not a loopback address/)
    try {
      parseMetricsAddress('0.0.0.0:9410')
    } catch (e) {
      expect((e as UsageError).hint).toMatch(/--metrics-public/)
    }
    expect(parseMetricsAddress('0.0.0.0:9410', { allowPublic: true })).toEqual({
      host: '0.0.0.0',
      port: 9410,
    })
    expect(parseMetricsAddress('[::]:9410', { allowPublic: true }).host).toBe('::')
  })

  it('names what is wrong in anything else', () => {
    bad('', /is not \[ADDR:\]PORT/)
    bad('nope', /is not \[ADDR:\]PORT/)
    bad('65536', /'65536' is not a port/)
    bad('127.0.0.1:', /'' is not a port/)
    bad('127.0.0.1:http', /'http' is not a port/)
    bad('example.com:9410', /'example.com' is not an IP address/, true)
    bad('::1:9410', /write an IPv6 address in brackets/)
    bad('[127.0.0.1]:9410', /is not an IPv6 address/)
    bad('1.2.3:9410', /is not an IP address/, true)
  })

  it('knows loopback from the rest', () => {
    expect(['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1'].map(isLoopback)).toEqual([
      true,
      true,
      true,
      true,
    ])
    expect(['0.0.0.0', '10.0.0.1', '::', '128.0.0.1', '::ffff:10.0.0.1'].map(isLoopback)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ])
  })
})
