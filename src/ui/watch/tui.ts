// The full-screen `ioreq watch`: the terminal side. It owns the alternate screen and raw
// input while it runs, samples the daemon every interval (not while paused), and redraws
// only the lines that changed; keys go through the state machine in state.ts, the screen
// comes from layout.ts, the data from session.ts. It ends on q, Ctrl-C (a key in raw
// mode) or the caller's AbortSignal (the shell's Ctrl-C), and always gives the terminal
// back as it found it.

import type { DaemonClient } from '../../core/daemon/client.js'
import type { SortKey } from '../../core/trace/view.js'
import type { TraceFilterFlagValues } from '../../cli/trace-flags.js'
import { colorEnabled } from '../color.js'
import { specFromFlags } from './filter-line.js'
import { decodeKeys } from './keys.js'
import { layoutWatch, type LineStyle, type Screen } from './layout.js'
import { WatchSession } from './session.js'
import { handleKey, initialUiState, type WatchEffect, type WatchUiState } from './state.js'

export interface WatchTuiOptions {
  client: DaemonClient
  names: string[]
  flags: TraceFilterFlagValues & { sort?: string; 'by-vcpu'?: boolean; 'skip-zero'?: boolean }
  intervalMs: number
  signal?: AbortSignal
  input?: NodeJS.ReadStream
  output?: NodeJS.WriteStream
}

const MESSAGE_MS = 4000

const STYLES: Record<Exclude<LineStyle, undefined>, [string, string]> = {
  bar: ['\x1b[7m', '\x1b[27m'],
  heading: ['\x1b[1m', '\x1b[22m'],
  total: ['\x1b[1m', '\x1b[22m'],
  error: ['\x1b[1;31m', '\x1b[22;39m'],
  dim: ['\x1b[2m', '\x1b[22m'],
}

/** Terminal writes for a new screen, given the previous one (undefined: draw it all). */
export function screenUpdate(next: Screen, previous: Screen | undefined, styled: boolean): string {
  let out = previous ? '' : '\x1b[H\x1b[2J'
  next.lines.forEach((line, row) => {
    const old = previous?.lines[row]
    if (old && old.text === line.text && old.style === line.style) return
    const [on, off] = styled && line.style ? STYLES[line.style] : ['', '']
    out += `\x1b[${row + 1};1H${on}${line.text}${off}`
  })
  out += next.cursor ? `\x1b[${next.cursor.row + 1};${next.cursor.col + 1}H\x1b[?25h` : '\x1b[?25l'
  return out
}

export async function runWatchTui(o: WatchTuiOptions): Promise<void> {
  const input = o.input ?? process.stdin
  const output = o.output ?? process.stdout
  if (o.signal?.aborted) return
  // bad flags fail here, before the screen is taken
  const session = new WatchSession({
    client: o.client,
    spec: specFromFlags(o.flags, o.names),
    sort: (o.flags.sort ?? 'count') as SortKey,
    byVcpu: o.flags['by-vcpu'] === true,
    skipZero: o.flags['skip-zero'] === true,
  })
  await session.sampleTop()

  let ui: WatchUiState = initialUiState({ sort: (o.flags.sort ?? 'count') as SortKey })
  let previous: Screen | undefined
  let error: string | undefined
  let timer: NodeJS.Timeout | undefined
  let sampling: Promise<void> | undefined
  let done!: () => void
  const finished = new Promise<void>((resolve) => (done = resolve))
  let quitting = false
  const styled = colorEnabled(output)

  const size = () => ({ width: output.columns || 80, height: output.rows || 24 })
  const logLines = () => Math.max(1, size().height - 5)

  // a message stays on the status line for a few seconds; news from the session
  // (VM gone, VM back) replaces it
  let shown: WatchUiState['message']
  let shownAt = 0
  const draw = () => {
    if (quitting) return
    if (!ui.editor && session.notices.length) {
      ui = { ...ui, message: { text: session.notices.splice(0).join('; '), error: false } }
    }
    if (ui.message !== shown) {
      shown = ui.message
      shownAt = Date.now()
    } else if (shown && !ui.editor && Date.now() - shownAt > MESSAGE_MS) {
      ui = { ...ui, message: undefined }
      shown = undefined
    }
    const { width, height } = size()
    const screen = layoutWatch(session.frame(ui, error), width, height)
    output.write(screenUpdate(screen, previous, styled))
    previous = screen
  }

  const sample = async () => {
    try {
      await session.sample(ui.view, logLines())
      error = undefined
    } catch (e) {
      // the daemon went away or refused: say so on the screen (q still quits)
      error = (e as Error).message
    }
  }

  // one sample at a time; the next is due an interval after the last one finished
  const schedule = (delay: number) => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => void tick(), delay)
  }
  const tick = async () => {
    if (quitting) return
    if (sampling) return schedule(10)
    if (!ui.paused) {
      sampling = sample()
      await sampling
      sampling = undefined
    }
    draw()
    schedule(o.intervalMs)
  }

  const apply = (effect: WatchEffect) => {
    switch (effect.kind) {
      case 'quit':
        quit()
        break
      case 'reset':
        session.reset()
        break
      case 'filter':
        session.setFilter(effect.spec)
        schedule(0)
        break
      case 'sort':
        break
      case 'view':
        session.restartLog()
        schedule(0)
        break
      case 'pause':
        // the log picks up from the present on resume, rather than counting what went by
        if (!effect.paused) {
          if (ui.view === 'log') session.restartLog()
          schedule(0)
        }
        break
    }
  }

  const onData = (data: Buffer | string) => {
    for (const key of decodeKeys(data.toString())) {
      const r = handleKey(ui, key, { filterText: session.filterText })
      ui = r.state
      for (const e of r.effects) apply(e)
      if (quitting) return
    }
    draw()
  }
  const onResize = () => {
    previous = undefined
    draw()
  }
  const onAbort = () => quit()
  function quit() {
    quitting = true
    done()
  }

  const wasRaw = input.isRaw === true
  output.write('\x1b[?1049h\x1b[?25l')
  input.setRawMode?.(true)
  input.on('data', onData)
  input.resume()
  output.on('resize', onResize)
  o.signal?.addEventListener('abort', onAbort)
  try {
    draw()
    schedule(o.intervalMs)
    await finished
    if (sampling) await sampling
  } finally {
    quitting = true
    if (timer) clearTimeout(timer)
    o.signal?.removeEventListener('abort', onAbort)
    output.off('resize', onResize)
    input.off('data', onData)
    input.setRawMode?.(wasRaw)
    input.pause()
    output.write('\x1b[?25h\x1b[?1049l')
  }
}
