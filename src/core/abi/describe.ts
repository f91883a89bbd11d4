// The ABI as data, for `hsmctl abi --json` and its table/pahole views.

import { formatRequest, IOCTLS } from './ioctls.js'
import { members, type Layout } from './layout.js'
import { ALL_STRUCTS } from './structs.js'

export interface IoctlDescription {
  name: string
  request: string
  nr: number
  dir: string
  size: number
  arg: string | null
}

export interface FieldDescription {
  name: string
  offset: number
  size: number
  type: string
}

export interface StructDescription {
  name: string
  size: number
  align: number
  fields: FieldDescription[]
}

export interface AbiDescription {
  ioctls: IoctlDescription[]
  structs: StructDescription[]
}

export function describeIoctls(): IoctlDescription[] {
  return IOCTLS.map((i) => ({
    name: i.name,
    request: formatRequest(i.request),
    nr: i.nr,
    dir: i.dir,
    size: i.size,
    arg: i.arg,
  }))
}

export function describeStruct(layout: Layout): StructDescription {
  return {
    name: layout.name,
    size: layout.size,
    align: layout.align,
    fields: members(layout).map(({ name, offset, size, type }) => ({ name, offset, size, type })),
  }
}

export function describeAbi(structs: readonly Layout[] = ALL_STRUCTS): AbiDescription {
  return { ioctls: describeIoctls(), structs: structs.map(describeStruct) }
}
