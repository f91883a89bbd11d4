// What the watch view's keys do, as a pure state machine: a key and the current state in,
// the next state and the effects for the data side out (reset, new filter, view switch).
// The terminal loop applies the effects; the tests drive it key by key.

import { SORT_KEYS, type SortKey } from '../../core/trace/view.js'
import { isChar, isKey, type Key } from './keys.js'
import { parseFilterLine, type FilterSpec } from './filter-line.js'

export type WatchViewName = 'top' | 'log'

export interface LineEditor {
  text: string
  /** Caret position in `text` (0..length). */
  cursor: number
}

export interface WatchUiState {
  view: WatchViewName
  paused: boolean
  help: boolean
  sort: SortKey
  /** The filter line editor, while `f` has it open. */
  editor: LineEditor | undefined
  /** A one-off message for the status line (cleared by the next key). */
  message: { text: string; error: boolean } | undefined
}

export type WatchEffect =
  | { kind: 'quit' }
  | { kind: 'reset' }
  | { kind: 'filter'; spec: FilterSpec }
  | { kind: 'sort'; sort: SortKey }
  | { kind: 'view'; view: WatchViewName }
  | { kind: 'pause'; paused: boolean }

export function initialUiState(options: { sort?: SortKey; view?: WatchViewName } = {}) {
  const state: WatchUiState = {
    view: options.view ?? 'top',
    paused: false,
    help: false,
    sort: options.sort ?? 'count',
    editor: undefined,
    message: undefined,
  }
  return state
}

export interface KeyContext {
  /** The current filter as a line, for the editor to start from. */
  filterText: string
}

export interface KeyResult {
  state: WatchUiState
  effects: WatchEffect[]
}

/** Apply one key. */
export function handleKey(state: WatchUiState, key: Key, context: KeyContext): KeyResult {
  if (isKey(key, 'ctrl-c')) return { state, effects: [{ kind: 'quit' }] }
  if (state.editor) return editKey(state, state.editor, key)
  const next: WatchUiState = { ...state, message: undefined }
  if (state.help) {
    // any key closes the help; q still quits
    if (isChar(key, 'q')) return { state: next, effects: [{ kind: 'quit' }] }
    return { state: { ...next, help: false }, effects: [] }
  }
  if (!isChar(key)) {
    if (isKey(key, 'escape') || isKey(key, 'ctrl-l')) return { state: next, effects: [] }
    return { state, effects: [] }
  }
  switch (key.char) {
    case 'q':
    case 'Q':
      return { state: next, effects: [{ kind: 'quit' }] }
    case 'h':
    case 'H':
    case '?':
      return { state: { ...next, help: true }, effects: [] }
    case 'f':
    case 'F':
    case '/': {
      const text = context.filterText ? `${context.filterText} ` : ''
      return { state: { ...next, editor: { text, cursor: text.length } }, effects: [] }
    }
    case 's':
    case 'S': {
      const sort = SORT_KEYS[(SORT_KEYS.indexOf(state.sort) + 1) % SORT_KEYS.length]!
      return {
        state: { ...next, sort, message: { text: `sorted by ${sort}`, error: false } },
        effects: [{ kind: 'sort', sort }],
      }
    }
    case 'r':
    case 'R':
      return {
        state: { ...next, message: { text: 'counts and latencies reset to zero', error: false } },
        effects: [{ kind: 'reset' }],
      }
    case 'o':
    case 'O': {
      const view: WatchViewName = state.view === 'top' ? 'log' : 'top'
      return { state: { ...next, view }, effects: [{ kind: 'view', view }] }
    }
    case ' ':
    case 'p':
      return {
        state: { ...next, paused: !state.paused },
        effects: [{ kind: 'pause', paused: !state.paused }],
      }
    default:
      return {
        state: { ...next, message: { text: 'h shows the keys', error: false } },
        effects: [],
      }
  }
}

/** The filter line editor: Enter applies (or shows the error and stays), Esc cancels. */
function editKey(state: WatchUiState, editor: LineEditor, key: Key): KeyResult {
  const { text, cursor } = editor
  const edit = (t: string, c: number): KeyResult => ({
    state: { ...state, editor: { text: t, cursor: c }, message: undefined },
    effects: [],
  })
  if (isChar(key)) {
    return edit(text.slice(0, cursor) + key.char + text.slice(cursor), cursor + key.char.length)
  }
  const name = (key as { name: string }).name
  switch (name) {
    case 'escape':
      return {
        state: { ...state, editor: undefined, message: { text: 'filter unchanged', error: false } },
        effects: [],
      }
    case 'enter': {
      try {
        const spec = parseFilterLine(text)
        return {
          state: { ...state, editor: undefined, message: undefined },
          effects: [{ kind: 'filter', spec }],
        }
      } catch (e) {
        const hint = (e as { hint?: string }).hint
        return {
          state: {
            ...state,
            message: { text: `${(e as Error).message}${hint ? ` (${hint})` : ''}`, error: true },
          },
          effects: [],
        }
      }
    }
    case 'backspace':
      return cursor > 0
        ? edit(text.slice(0, cursor - 1) + text.slice(cursor), cursor - 1)
        : edit(text, cursor)
    case 'delete':
    case 'ctrl-d':
      return edit(text.slice(0, cursor) + text.slice(cursor + 1), cursor)
    case 'left':
      return edit(text, Math.max(0, cursor - 1))
    case 'right':
      return edit(text, Math.min(text.length, cursor + 1))
    case 'home':
    case 'ctrl-a':
      return edit(text, 0)
    case 'end':
    case 'ctrl-e':
      return edit(text, text.length)
    case 'ctrl-u':
      return edit(text.slice(cursor), 0)
    case 'ctrl-k':
      return edit(text.slice(0, cursor), cursor)
    case 'ctrl-w': {
      const before = text.slice(0, cursor).replace(/\S+\s*$/, '')
      return edit(before + text.slice(cursor), before.length)
    }
    default:
      return { state, effects: [] }
  }
}
