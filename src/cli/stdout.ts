// A reader that goes away (`hsmctl ioreq tail | head -n 2`) ends hsmctl at its next write
// to stdout, quietly, with status 141, as SIGPIPE ends a C program (`yes | head`). Node
// ignores SIGPIPE and reports EPIPE as an error event on stdout instead, which oclif
// swallows: a streaming command would go on writing into nothing, forever. bin/run.js
// installs this first, so that every command, the shell and the fast path share it. Like
// SIGPIPE it ends the process where it stands: nothing may depend on running on after
// its output is gone.

import { EXIT_CODES } from '../core/errors.js'

export const STDOUT_CLOSED = EXIT_CODES.find((e) => e.name === 'stdout-closed')!.code

export function endWhenStdoutCloses(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(STDOUT_CLOSED)
    throw e
  })
}
