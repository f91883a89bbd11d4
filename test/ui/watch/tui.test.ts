// The terminal side of the watch view with fake streams: it takes the alternate screen and
// raw input, redraws changed lines only, reacts to keys, ends on q or on the caller's
// AbortSignal (the shell's Ctrl-C), and gives the terminal back as it found it.
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { stringify } from '../../../src/core/daemon/protocol.js'
import type { DaemonClient } from '../../../src/core/daemon/client.js'
import { TraceHub } from '../../../src/core/trace/hub.js'
import { traceMethods } from '../../../src/core/trace/methods.js'
import { TYPE_PIO } from '../../../src/core/trace/record.js'
import { runWatchTui, screenUpdate } from '../../../src/ui/watch/tui.js'

class FakeInput extends EventEmitter {
  isRaw = false
  paused = true
  setRawMode(raw: boolean) {
    this.isRaw = raw
    return this
  }
  resume() {
    this.paused = false
    return this
  }
  pause() {
    this.paused = true
    return this
  }
}

class FakeOutput extends EventEmitter {
  columns = 100
  rows = 20
  text = ''
  write(chunk: string) {
    this.text += chunk
    return true
  }
}

function fakeDaemon() {
  const hub = new TraceHub(1 << 10)
  const methods = traceMethods(hub, () => [{ vmid: 1, name: 'demo' }])
  const client = {
    call: async (method: string, params?: unknown) =>
      JSON.parse(stringify(await methods[method]!(params, {} as never))),
    close() {},
    closed: new Promise<void>(() => {}),
  } as unknown as DaemonClient
  for (let i = 0; i < 12; i++)
    hub.publish({
      vmid: 1,
      vcpu: 0,
      type: TYPE_PIO,
      write: true,
      client: 0,
      size: 1,
      addr: 0x70n,
      value: 0n,
      latencyNs: 900,
    })
  return client
}

async function until(check: () => boolean, what: string) {
  const deadline = Date.now() + 30_000 // a hang guard, not a speed limit
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function start(signal?: AbortSignal) {
  const input = new FakeInput()
  const output = new FakeOutput()
  const done = runWatchTui({
    client: fakeDaemon(),
    names: [],
    flags: {},
    intervalMs: 30,
    ...(signal ? { signal } : {}),
    input: input as unknown as NodeJS.ReadStream,
    output: output as unknown as NodeJS.WriteStream,
  })
  return { input, output, done }
}

describe('runWatchTui', () => {
  it('draws the table in the alternate screen; q quits and restores the terminal', async () => {
    const { input, output, done } = start()
    await until(() => output.text.includes('PIO 0x70 OUT'), 'the row')
    expect(output.text.startsWith('\x1b[?1049h')).toBe(true)
    expect(input.isRaw).toBe(true)
    input.emit('data', Buffer.from('o'))
    await until(() => output.text.includes('TIME (s)'), 'the log view')
    input.emit('data', Buffer.from('q'))
    await done
    expect(output.text.endsWith('\x1b[?25h\x1b[?1049l')).toBe(true)
    expect(input.isRaw).toBe(false)
    expect(input.paused).toBe(true)
    expect(input.listenerCount('data')).toBe(0)
    expect(output.listenerCount('resize')).toBe(0)
  })

  it('ends when the caller’s signal aborts (the shell’s Ctrl-C)', async () => {
    const controller = new AbortController()
    const { input, output, done } = start(controller.signal)
    await until(() => output.text.includes('PIO 0x70 OUT'), 'the row')
    controller.abort()
    await done
    expect(output.text.endsWith('\x1b[?1049l')).toBe(true)
    expect(input.listenerCount('data')).toBe(0)
  })

  it('redraws only the lines that changed', () => {
    const a = { lines: [{ text: 'one' }, { text: 'two' }, { text: 'three' }] }
    const b = { lines: [{ text: 'one' }, { text: 'TWO' }, { text: 'three' }] }
    expect(screenUpdate(b, a, false)).toBe('\x1b[2;1HTWO\x1b[?25l')
    expect(screenUpdate(a, undefined, false)).toBe(
      '\x1b[H\x1b[2J\x1b[1;1Hone\x1b[2;1Htwo\x1b[3;1Hthree\x1b[?25l',
    )
    expect(screenUpdate({ lines: [{ text: 'x', style: 'bar' }] }, undefined, true)).toContain(
      '\x1b[7mx\x1b[27m',
    )
  })
})
