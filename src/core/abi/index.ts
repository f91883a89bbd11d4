export * from './constants.js'
export * from './errno.js'
export * from './ioctls.js'
export * from './layout.js'
export * as structs from './structs.js'
export { UAPI_STRUCTS, INTERNAL_STRUCTS, ALL_STRUCTS, findStruct } from './structs.js'
export { describeAbi, describeIoctls, describeStruct } from './describe.js'
export type {
  AbiDescription,
  IoctlDescription,
  StructDescription,
  FieldDescription,
} from './describe.js'
