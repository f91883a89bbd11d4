// Request-number encoding (spec §10.1) and lookup rules (§1.6).

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ioc,
  iocDecode,
  Ioctl,
  ioctlByName,
  ioctlByRequest,
  IOCTLS,
} from '../../../src/core/abi/ioctls.js'

describe('_IOC encoding', () => {
  it('is dir<<30 | size<<16 | type<<8 | nr (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: (1 << 14) - 1 }),
        (dir, type, nr, size) => {
          const request = ioc(dir, type, nr, size)
          expect(request).toBe(dir * 2 ** 30 + size * 2 ** 16 + type * 2 ** 8 + nr)
          expect(iocDecode(request)).toEqual({ dir, type, nr, size })
        },
      ),
    )
  })

  it('rejects fields that do not fit', () => {
    expect(() => ioc(4, 0xa2, 0, 0)).toThrow(/dir/)
    expect(() => ioc(1, 0xa2, 256, 0)).toThrow(/nr/)
    expect(() => ioc(1, 0xa2, 0, 1 << 14)).toThrow(/size/)
  })

  it('every request carries type 0xA2 and the table size', () => {
    for (const i of IOCTLS) {
      const parts = iocDecode(i.request)
      expect([i.name, parts.type, parts.nr, parts.size]).toEqual([i.name, 0xa2, i.nr, i.size])
    }
  })
})

describe('lookup', () => {
  it('matches the full 32-bit request: same nr with another size is unknown (§1.6)', () => {
    expect(ioctlByRequest(Ioctl.CREATE_VM)?.name).toBe('CREATE_VM')
    expect(ioctlByRequest(ioc(3, 0xa2, 0x10, 40))).toBeUndefined()
    expect(ioctlByRequest(ioc(0, 0xa2, 0x14, 0))).toBeUndefined() // nr 0x14 is absent
  })

  it('accepts names with the prefix and in any case', () => {
    expect(ioctlByName('acrn_ioctl_set_memseg')?.request).toBe(Ioctl.SET_MEMSEG)
  })

  it('value ioctls take no buffer; PM_GET_CPU_STATE writes back 48 bytes (§7.8)', () => {
    expect(ioctlByName('SET_IRQLINE')).toMatchObject({ kind: 'value', bufferSize: 0 })
    expect(ioctlByName('VM_INTR_MONITOR')).toMatchObject({ kind: 'value', bufferSize: 0 })
    expect(ioctlByName('PM_GET_CPU_STATE')).toMatchObject({
      kind: 'struct',
      size: 8,
      bufferSize: 48,
    })
  })
})
