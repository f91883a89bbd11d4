// A VM's serial console log: the bytes hsmd's UART model got from the guest, in a file.

import { createWriteStream, type WriteStream } from 'node:fs'
import { join } from 'node:path'
import { ensurePrivateDir, openPrivateFile, readAll } from '../daemon/private-files.js'

/**
 * A VM's serial console: bytes the guest wrote to its UART, appended to a log file that
 * the daemon opened once (no link followed) and reads back through the same fd.
 */
export class ConsoleLog {
  readonly path: string
  private readonly fd: number
  private stream: WriteStream
  bytes = 0

  constructor(dir: string, name: string) {
    ensurePrivateDir({ path: dir, role: 'console log directory', variable: 'HSMCTL_STATE_DIR' })
    this.path = join(dir, `${name}.log`)
    this.fd = openPrivateFile(this.path, 'replace')
    this.stream = createWriteStream('', { fd: this.fd, autoClose: true })
  }

  /** Everything written so far, from byte `from` (flush first). */
  read(from = 0): Buffer {
    return readAll(this.fd, from)
  }

  write(byte: number) {
    this.bytes++
    this.stream.write(Buffer.of(byte))
  }

  /** Settle pending writes so that readers of the file see every byte. */
  flush(): Promise<void> {
    return new Promise((resolve) => this.stream.write('', () => resolve()))
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()))
  }
}
