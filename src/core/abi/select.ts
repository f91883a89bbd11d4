// What `hsmctl abi [NAME]` shows: everything, or one struct or ioctl and what goes with it.

import { NotFoundError } from '../errors.js'
import { describeAbi, type AbiDescription } from './describe.js'
import { IOCTLS, ioctlByName } from './ioctls.js'
import type { Layout } from './layout.js'
import { ALL_STRUCTS, findStruct } from './structs.js'

export interface AbiSelection {
  description: AbiDescription
  layouts: readonly Layout[]
}

export function selectAbi(name?: string): AbiSelection {
  if (name === undefined) return { description: describeAbi(), layouts: ALL_STRUCTS }
  const ioctl = ioctlByName(name)
  const layout = ioctl ? ioctl.layout : findStruct(name)
  if (!ioctl && !layout) {
    throw new NotFoundError(
      `no struct or ioctl named '${name}'`,
      `known structs: ${ALL_STRUCTS.map((s) => s.name).join(', ')}; ioctls: run hsmctl abi`,
    )
  }
  const layouts = layout ? [layout] : []
  const description = describeAbi(layouts)
  description.ioctls = description.ioctls.filter((i) =>
    ioctl ? i.name === ioctl.name : IOCTLS.some((x) => x.name === i.name && x.layout === layout),
  )
  return { description, layouts }
}
