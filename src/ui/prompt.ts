// Every question hsmctl asks on a terminal goes through here (the confirmation of
// destructive verbs, the `vm create` wizard, the host-device picker), so that each asks
// on stderr and takes Ctrl-C as the user saying no: exit 130, as answering "n" does,
// never inquirer's "User force closed the prompt" (exit 1, the HSM's code). Each prompt
// comes before its command changes anything, which the message says: keep it so.

import type { confirm as Confirm, input as Input, select as Select } from '@inquirer/prompts'
import { InterruptedError } from '../core/errors.js'

const output = { output: process.stderr }

async function ask<T>(question: () => Promise<T>): Promise<T> {
  try {
    return await question()
  } catch (e) {
    // inquirer's ExitPromptError: Ctrl-C at the prompt (or the terminal went away)
    if (e instanceof Error && e.name === 'ExitPromptError')
      throw new InterruptedError('cancelled at the prompt (Ctrl-C); nothing was changed')
    throw e
  }
}

export async function confirm(config: Parameters<typeof Confirm>[0]): Promise<boolean> {
  const { confirm } = await import('@inquirer/prompts')
  return ask(() => confirm(config, output))
}

export async function input(config: Parameters<typeof Input>[0]): Promise<string> {
  const { input } = await import('@inquirer/prompts')
  return ask(() => input(config, output))
}

export async function select<T>(config: Parameters<typeof Select<T>>[0]): Promise<T> {
  const { select } = await import('@inquirer/prompts')
  return ask(() => select<T>(config, output))
}
