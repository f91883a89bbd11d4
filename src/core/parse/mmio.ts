// An MMIO device resource as `--res GPA:HPA:SIZE` (§7.6).
import { UsageError } from '../errors.js'
import { parseInteger } from './number.js'
import { parseSize } from './size.js'

export function parseMmioResource(
  text: string,
  name?: string,
): { gpa: bigint; hpa: bigint; size: bigint } {
  const parts = text.split(':')
  if (parts.length !== 3) {
    throw new UsageError(`'${text}' is not GPA:HPA:SIZE`, {
      flag: name,
      hint: 'for example 0xfed40000:0xfed40000:0x5000',
    })
  }
  return {
    gpa: parseInteger(parts[0]!, { name, align: 4096n }),
    hpa: parseInteger(parts[1]!, { name, align: 4096n }),
    size: parseSize(parts[2]!, { name, min: 4096n, align: 4096n }),
  }
}
