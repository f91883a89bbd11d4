// The watch view end to end without a terminal: a session sampling a real TraceHub through
// its RPC methods (as JSON, like the socket), the layout drawing its frames, and the key
// state machine driving it: rows and counts, filters, reset, the log view and its dropped
// counter, "Waiting for traffic", "VM gone" and re-attach.
import { describe, expect, it } from 'vitest'
import { stringify } from '../../../src/core/daemon/protocol.js'
import { TraceHub } from '../../../src/core/trace/hub.js'
import { traceMethods, type TraceVm } from '../../../src/core/trace/methods.js'
import {
  CLIENT_IOEVENTFD,
  pciAddr,
  TYPE_MMIO,
  TYPE_PCICFG,
  TYPE_PIO,
} from '../../../src/core/trace/record.js'
import { parseFilterLine } from '../../../src/ui/watch/filter-line.js'
import { fit, layoutWatch, LOG_HEADING, type WatchFrame } from '../../../src/ui/watch/layout.js'
import { WatchSession } from '../../../src/ui/watch/session.js'
import { handleKey, initialUiState, type WatchUiState } from '../../../src/ui/watch/state.js'

function daemon(capacity = 1 << 12) {
  const hub = new TraceHub(capacity)
  const state = { vms: [{ vmid: 1, name: 'demo' }] as TraceVm[], clock: 0 }
  const methods = traceMethods(hub, () => state.vms)
  const client = {
    // through JSON as on the socket: bigints become hex strings
    call: async <T>(method: string, params?: unknown): Promise<T> =>
      JSON.parse(stringify(await methods[method]!(params, {} as never))) as T,
  }
  const publish = (n: number, over: Partial<Parameters<TraceHub['publish']>[0]> = {}) => {
    for (let i = 0; i < n; i++)
      hub.publish({
        vmid: 1,
        vcpu: 0,
        type: TYPE_PIO,
        write: true,
        client: 0,
        size: 1,
        addr: 0x70n,
        value: 0n,
        latencyNs: 2000,
        t: state.clock++,
        ...over,
      })
  }
  return { hub, client, state, publish }
}

function session(d: ReturnType<typeof daemon>, spec = {}, now = () => 0) {
  return new WatchSession({ client: d.client, spec, now })
}

const screen = (s: WatchSession, ui: WatchUiState = initialUiState(), w = 100, h = 20) =>
  layoutWatch(s.frame(ui), w, h).lines.map((l) => l.text.trimEnd())

describe('watch session', () => {
  it('the table: rows keyed like UX.md, counts, shares, client, total', async () => {
    const d = daemon()
    d.publish(30)
    d.publish(10, { addr: 0x71n, write: false })
    d.publish(5, { type: TYPE_MMIO, addr: 0xfe003000n, client: CLIENT_IOEVENTFD, size: 2 })
    d.publish(2, { type: TYPE_PCICFG, addr: pciAddr(0, 3, 0, 0x10), write: false, size: 4 })
    const s = session(d)
    await s.sampleTop()
    const lines = screen(s)
    expect(lines[0]).toMatch(/^ hsmctl ioreq watch {2}demo \(vmid 1\) +00:00:00 {2}dropped 0$/)
    expect(lines[1]).toMatch(/^ filter: none +view table {2}sort count$/)
    expect(lines.slice(3, 9).map((l) => l.split(/\s{2,}/).slice(0, 4))).toEqual([
      ['VM', 'REQUEST', 'COUNT', '%'],
      ['demo', 'PIO 0x70 OUT', '30', '63.8'],
      ['demo', 'PIO 0x71 IN', '10', '21.3'],
      ['demo', 'MMIO 0xfe003000 W', '5', '10.6'],
      ['demo', 'PCICFG 00:03.0+0x10 R', '2', '4.3'],
      ['', 'Total', '47', '100.0'],
    ])
    expect(lines[6]).toMatch(/ioeventfd$/)
    expect(lines[19]).toMatch(/^ q quit {2}h help {2}f filter/)
  })

  it('rates between samples; reset; a filter typed live narrows the rows at once', async () => {
    const d = daemon()
    let t = 0
    const s = session(d, {}, () => t)
    d.publish(10)
    await s.sampleTop()
    d.publish(20)
    d.publish(4, { type: TYPE_MMIO, addr: 0xfed00000n })
    await s.sampleTop()
    expect(s.model.rows().map((r) => [r.key, r.count])).toEqual([
      ['PIO 0x70 OUT', 30],
      ['MMIO 0xfed00000 W', 4],
    ])
    s.reset()
    d.publish(3, { type: TYPE_MMIO, addr: 0xfed00000n })
    s.setFilter(parseFilterLine('type mmio'))
    await s.sampleTop()
    t = 61_000
    const lines = screen(s)
    expect(lines[0]).toMatch(/00:01:01/)
    expect(lines[1]).toMatch(/^ filter: type mmio /)
    expect(lines.slice(4, 6).map((l) => l.split(/\s{2,}/).slice(0, 3))).toEqual([
      ['demo', 'MMIO 0xfed00000 W', '3'],
      ['', 'Total', '3'],
    ])
  })

  it('r resets latencies with the counts: every column describes traffic since the reset', async () => {
    const d = daemon()
    let t = 0
    const s = session(d, {}, () => t)
    d.publish(10, { latencyNs: 50_000 })
    await s.sampleTop()
    const cells = () =>
      screen(s)[4]!
        .split(/\s{2,}/)
        .filter((c) => c !== '')
    expect(cells()).toEqual([
      'demo',
      'PIO 0x70 OUT',
      '10',
      '100.0',
      '0',
      '50us',
      '50us',
      '50us',
      '50us',
      'default',
    ])
    let ui = initialUiState()
    const r = handleKey(ui, { char: 'r' }, { filterText: '' })
    ui = r.state
    expect(r.effects).toEqual([{ kind: 'reset' }])
    expect(ui.message?.text).toBe('counts and latencies reset to zero')
    s.reset()
    expect(cells()).toEqual([
      'demo',
      'PIO 0x70 OUT',
      '0',
      '0.0',
      '0',
      '0ns',
      '0ns',
      '0ns',
      '0ns',
      'default',
    ])
    d.publish(3, { latencyNs: 100 })
    t = 1000
    await s.sampleTop()
    // 100 ns is the row's new minimum (exact); its max (50 us) is older, so the new max is
    // 100 ns to its histogram bucket (96..111 ns), as p99 always is
    // (the rate is over the daemon's clock, not the session's)
    expect(cells()).toEqual([
      ...['demo', 'PIO 0x70 OUT', '3', '100.0', expect.any(String)],
      ...['100ns', '100ns', '111ns', '111ns', 'default'],
    ])
  })

  it('"Waiting for traffic" before any request', async () => {
    const s = session(daemon())
    await s.sampleTop()
    expect(screen(s).join('\n')).toMatch(/Waiting for traffic…/)
  })

  it('VM gone, then re-attach when a VM of the same name returns (new vmid or same)', async () => {
    const d = daemon()
    d.state.vms = [
      { vmid: 1, name: 'demo' },
      { vmid: 2, name: 'other' },
    ]
    d.publish(7)
    d.publish(100, { vmid: 2 })
    const s = session(d, { vms: ['demo'] })
    await s.sampleTop()
    expect(s.model.totals.count).toBe(7)
    // demo is destroyed...
    d.state.vms = [{ vmid: 2, name: 'other' }]
    await s.sampleTop()
    let text = screen(s).join('\n')
    expect(text).toMatch(/demo \(gone\)/)
    expect(text).toMatch(/VM gone: demo/)
    expect(s.notices.splice(0)).toEqual(['VM gone: demo'])
    // ...and comes back with vmid 3, then makes 4 requests
    d.state.vms.push({ vmid: 3, name: 'demo' })
    await s.sampleTop()
    expect(s.notices.splice(0)).toEqual(['VM demo is here (vmid 3); watching it'])
    d.publish(4, { vmid: 3 })
    await s.sampleTop()
    text = screen(s).join('\n')
    expect(text).toMatch(/demo \(vmid 3\)/)
    expect(s.model.rows().map((r) => [r.vm, r.key, r.count])).toEqual([['demo', 'PIO 0x70 OUT', 4]])
    // destroyed again and recreated under its old vmid 3 while another VM ran traffic
    d.state.vms = [{ vmid: 2, name: 'other' }]
    await s.sampleTop()
    d.state.vms.push({ vmid: 3, name: 'demo' })
    d.publish(2, { vmid: 3, addr: 0x71n })
    await s.sampleTop()
    expect(s.model.rows().map((r) => [r.key, r.count])).toEqual([['PIO 0x71 OUT', 2]])
  })

  it('the log view: newest requests as lines, a gap line, and dropped when the ring overran', async () => {
    const d = daemon(64)
    d.publish(3)
    const s = session(d)
    await s.sampleLog(10)
    expect(s.log).toHaveLength(3)
    expect(s.dropped).toBe(0)
    d.publish(20, { addr: 0x71n, write: false })
    await s.sampleLog(5)
    expect(s.log.slice(3, 4)).toEqual(['  ··· 15 requests went by between refreshes ···'])
    expect(s.log.slice(4)).toHaveLength(5)
    expect(s.log.at(-1)).toMatch(/demo +vcpu0 +PIO +IN +0x71 /)
    // the writer laps the reader: 100 more into a ring of 64
    d.publish(100)
    await s.sampleLog(5)
    expect(s.dropped).toBe(36)
    const ui = { ...initialUiState(), view: 'log' as const }
    const lines = screen(s, ui, 120)
    expect(lines[0]).toMatch(/dropped 36$/)
    expect(lines[3]).toBe(LOG_HEADING)
    expect(lines.slice(4, 19).filter((l) => /PIO/.test(l))).toHaveLength(13)
  })

  it('the log view filters on the daemon side and starts over on a new filter', async () => {
    const d = daemon()
    d.publish(5)
    d.publish(2, { type: TYPE_MMIO, addr: 0xfed00000n })
    const s = session(d, parseFilterLine('type mmio'))
    await s.sampleLog(50)
    expect(s.log).toHaveLength(2)
    s.setFilter(parseFilterLine('type pio'))
    expect(s.log).toEqual([])
    await s.sampleLog(50)
    expect(s.log).toHaveLength(5)
    expect(s.log.every((l) => / PIO /.test(l))).toBe(true)
  })
})

describe('watch layout', () => {
  const frame = (over: Partial<WatchFrame> = {}): WatchFrame => ({
    ui: initialUiState(),
    vms: [{ name: 'demo', vmid: 1, gone: false }],
    elapsedMs: 3_723_000,
    dropped: 1234,
    filter: 'type pio',
    byVcpu: false,
    rows: [],
    totals: { count: 0, rate: 0, pct: 0 },
    log: [],
    logRate: 0,
    ...over,
  })

  it('every line is exactly the width, at any size', () => {
    for (const [w, h] of [
      [20, 6],
      [60, 10],
      [200, 50],
    ] as const) {
      const s = layoutWatch(frame(), w, h)
      expect(s.lines).toHaveLength(h)
      for (const l of s.lines) expect(l.text.length).toBe(w)
    }
  })

  it('header: VMs, elapsed time, dropped count, filter, state', () => {
    const lines = layoutWatch(frame({ ui: { ...initialUiState(), paused: true } }), 90, 10).lines
    expect(lines[0]!.text).toMatch(
      /^ hsmctl ioreq watch {2}demo \(vmid 1\) +01:02:03 {2}dropped 1,234 $/,
    )
    expect(lines[1]!.text).toMatch(/^ filter: type pio +view table {2}sort count {2}PAUSED $/)
  })

  it('too many rows: a line says how many are not shown; the total stays', () => {
    const rows = Array.from({ length: 30 }, (_, i) => ({
      id: String(i),
      key: `PIO 0x${(0x100 + i).toString(16)} OUT`,
      vm: 'demo',
      vmid: 1,
      vcpu: -1,
      type: 'pio' as const,
      dir: 'write' as const,
      client: 'default' as const,
      addr: BigInt(i),
      count: 1,
      pct: 100 / 30,
      rate: 0,
      latMin: 1,
      latAvg: 1,
      latP99: 1,
      latMax: 1,
    }))
    const lines = layoutWatch(
      frame({ rows, totals: { count: 30, rate: 0, pct: 100 } }),
      100,
      12,
    ).lines
    const texts = lines.map((l) => l.text.trimEnd())
    expect(texts.filter((t) => /^demo {2}PIO/.test(t))).toHaveLength(5)
    expect(texts).toContainEqual('  … 25 more rows (f narrows, s sorts)')
    expect(texts[10]).toMatch(/Total +30/)
  })

  it('narrow screens drop the least useful columns first', () => {
    const heading = (w: number) =>
      layoutWatch(frame({ rows: [] }), w, 10)
        .lines[3]!.text.trim()
        .split(/\s+/)
    expect(heading(120)).toEqual([
      'VM',
      'REQUEST',
      'COUNT',
      '%',
      'RATE/s',
      'MIN',
      'AVG',
      'P99',
      'MAX',
      'CLIENT',
    ])
    expect(heading(60)).toEqual(['VM', 'REQUEST', 'COUNT', '%', 'RATE/s', 'P99', 'CLIENT'])
    expect(heading(45)).toEqual(['VM', 'REQUEST', 'COUNT', 'RATE/s', 'CLIENT'])
  })

  it('the filter editor on the status line, with the caret and the last error', () => {
    const ui: WatchUiState = {
      ...initialUiState(),
      editor: { text: 'type dma', cursor: 8 },
      message: { text: "type: 'dma' is not one of pio, mmio, pcicfg", error: true },
    }
    const s = layoutWatch(frame({ ui }), 80, 10)
    expect(s.lines[8]).toEqual({
      text: fit(" type: 'dma' is not one of pio, mmio, pcicfg", 80),
      style: 'error',
    })
    expect(s.lines[9]!.text.trimEnd()).toBe(' filter> type dma')
    expect(s.cursor).toEqual({ row: 9, col: 17 })
  })

  it('a daemon that stops answering is said on the status line and in the body', () => {
    const lines = layoutWatch(frame({ error: 'the connection to hsmd closed' }), 80, 10).lines
    expect(lines[9]).toEqual({
      text: fit(' the connection to hsmd closed (q quits)', 80),
      style: 'error',
    })
    expect(lines.map((l) => l.text).join('\n')).toMatch(/No answer from the daemon/)
  })

  it('the help box lists every key', () => {
    const text = layoutWatch(frame({ ui: { ...initialUiState(), help: true } }), 100, 24)
      .lines.map((l) => l.text)
      .join('\n')
    for (const key of ['q  Ctrl-C', 'h  ?', 'f  /', 's ', 'r ', 'o ', 'space'])
      expect(text).toContain(key)
  })
})
