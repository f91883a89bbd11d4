// What a replay asks of its VM: an ioeventfd for each address whose recorded requests the
// kernel's ioeventfd client handled (§5.5), unless the VM's own ioeventfds already take
// them (§4.3: only an access fully inside a range goes to that range's client).
import { describe, expect, it } from 'vitest'
import { replayIoeventfds } from '../../../src/core/vmm/guest-traffic.js'
import { event, pack } from '../trace/records.js'

const IOEVENTFD = 1
const MMIO = 1

describe('replayIoeventfds (§5.5, §4.3)', () => {
  const doorbell = (over = {}) =>
    event({ type: MMIO, client: IOEVENTFD, addr: 0xfe00_3000n, size: 2, ...over })

  it('one wildcard ioeventfd per address and type, as long as the largest access there', () => {
    const records = pack([
      doorbell(),
      doorbell({ size: 4 }),
      doorbell({ write: false }), // a read the kernel answered with 0 is kernel-handled too
      doorbell({ type: 0, addr: 0xc050n, size: 1 }),
      doorbell({ addr: 0xfe00_3004n }),
    ])
    expect(replayIoeventfds(records, [])).toEqual({
      kernelHandled: 5,
      add: [
        { addr: 0xfe00_3000n, len: 4, pio: false, requests: 3 },
        { addr: 0xc050n, len: 1, pio: true, requests: 1 },
        { addr: 0xfe00_3004n, len: 2, pio: false, requests: 1 },
      ],
    })
  })

  it('requests of the default client and of HSM itself (0xCF8) ask for nothing', () => {
    const records = pack([
      event({ type: MMIO, client: 0, addr: 0xfe00_3000n }),
      event({ type: 0, client: 2, addr: 0xcf8n, size: 4 }),
      event({ type: 2, client: 0, addr: 0x10n, size: 4 }),
    ])
    expect(replayIoeventfds(records, [])).toEqual({ kernelHandled: 0, add: [] })
  })

  it('an access the VM’s own ioeventfds cover needs none; a partial or other-type one does', () => {
    const records = pack([
      doorbell(),
      doorbell({ addr: 0xfe00_3002n, size: 4 }),
      doorbell({ type: 0, addr: 0xfe00_3000n }),
    ])
    const own = [{ addr: 0xfe00_3000n, len: 4, pio: false }]
    expect(replayIoeventfds(records, own).add).toEqual([
      // 0xfe003002..0xfe003005 sticks out of 0xfe003000..0xfe003003
      { addr: 0xfe00_3002n, len: 4, pio: false, requests: 1 },
      { addr: 0xfe00_3000n, len: 2, pio: true, requests: 1 },
    ])
  })
})
