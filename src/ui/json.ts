import { stringify } from '../core/daemon/protocol.js'

/** JSON with bigint as hex strings, indented for people (the wire form is compact). */
export function toJson(value: unknown): string {
  return stringify(value, 2)
}
