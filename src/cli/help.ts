// oclif's help plus what every user of a CLI needs and oclif does not print: the exit
// codes, from the same table the error handler uses.

import { CommandHelp, Help } from '@oclif/core'
import { EXIT_CODES } from '../core/errors.js'

export function exitCodesSection(): string {
  const width = Math.max(...EXIT_CODES.map((e) => String(e.code).length))
  return [
    'EXIT CODES',
    ...EXIT_CODES.map((e) => `  ${String(e.code).padStart(width)}  ${e.meaning}`),
  ].join('\n')
}

interface Block {
  /** Spaces before the first line, and before the lines it wraps onto. */
  indent: number
  hang: number
  text: string
  /** A list item or an indented line: more indented lines after it continue it. */
  hanging: boolean
}

/** Words onto lines of at most `width` columns; a word longer than a line gets one alone. */
function fill(block: Block, width: number): string[] {
  const lines: string[] = []
  let line = ' '.repeat(block.indent)
  let empty = true
  // split before each word: the runs of spaces that align a term with its definition stay
  for (const word of block.text.split(/ (?=\S)/)) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line)
      line = ' '.repeat(block.hang)
      empty = true
    }
    line += (empty ? '' : ' ') + word
    empty = false
  }
  lines.push(line)
  return lines.map((l) => l.trimEnd())
}

/**
 * A command's description laid out at `width` columns: each paragraph filled once (the
 * source's line breaks inside it are not kept, so no short line is left in its middle);
 * an indented line starts a block of its own (a command to copy, a term of a list), and
 * the more indented lines after it continue it at their indent (the term's definition).
 */
export function layoutDescription(text: string, width: number): string {
  const blocks: (Block | undefined)[] = [] // undefined: a blank line
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    const last = blocks[blocks.length - 1]
    if (line === '') {
      blocks.push(undefined)
      continue
    }
    const indent = /^ */.exec(line)![0].length
    const item = /^([-*•]|\d+\.) /.test(line.trimStart())
    if (last && !item && indent === 0 && !last.hanging) last.text += ` ${line}`
    else if (
      last?.hanging &&
      !item &&
      indent > last.indent &&
      (last.hang === last.indent || indent === last.hang)
    ) {
      last.hang = indent
      last.text += ` ${line.trim()}`
    } else
      blocks.push({
        indent,
        // a term and its definition: the definition's column; a list item: past its mark
        hang: item ? indent + 2 : (/^( *\S.*?  +)\S/.exec(line)?.[1]?.length ?? indent),
        // an indented line keeps its own start: the spaces that align its columns stay
        text: line.trimStart(),
        hanging: item || indent > 0,
      })
  }
  return blocks.flatMap((b) => (b ? fill(b, width) : [''])).join('\n')
}

/** The DESCRIPTION section laid out by layoutDescription instead of wrapped line by line. */
class HsmctlCommandHelp extends CommandHelp {
  protected override description(): string | undefined {
    const { summary, description } = this.command
    if (!description) return undefined
    const width = this.opts.maxWidth - this.indentSpacing
    const text = summary ? `${summary}\n\n${description}` : description
    return layoutDescription(this.render(text), width)
  }
}

export default class HsmctlHelp extends Help {
  protected override CommandHelpClass = HsmctlCommandHelp

  /** `help vm lst` and `vm lst --help`: the unknown command as when it is run. */
  override async showHelp(argv: string[]): Promise<void> {
    try {
      await super.showHelp(argv)
    } catch (e) {
      const unknown = /^Command (\S+) not found\.$/.exec((e as Error).message)
      if (!unknown) throw e
      const { failUnknownCommand } = await import('./unknown-command.js')
      failUnknownCommand(unknown[1]!, this.config)
    }
  }

  protected override async showRootHelp(): Promise<void> {
    await super.showRootHelp()
    this.log('')
    this.log(exitCodesSection())
    this.log('')
    this.log('ENVIRONMENT')
    this.log('  NO_COLOR  when set and not empty, output is not coloured (as with --no-color)')
  }
}
