// Declarative C struct layouts for the ACRN UAPI, with encode/decode.
//
// A layout is a table of fields (name, offset, type, count, nested layout, anonymous
// union). The table states every offset the way the header's comments and the spec
// (§10.3) do, and `defineStruct` checks each one against the x86-64 SysV layout rules
// (natural alignment, `packed`, `aligned(N)`), so a typo in a table fails at import
// time, and the conformance test then checks the same tables against the C compiler.

/** Scalar C types used by the UAPI. `le*` are the `__le*` types: little-endian on x86-64. */
export type Scalar = 'u8' | 'u16' | 'u32' | 'u64' | 's32' | 'le16' | 'le32' | 'le64'

const SCALAR_SIZE: Readonly<Record<Scalar, number>> = {
  u8: 1,
  u16: 2,
  u32: 4,
  u64: 8,
  s32: 4,
  le16: 2,
  le32: 4,
  le64: 8,
}

export function scalarSize(type: Scalar): number {
  return SCALAR_SIZE[type]
}

export interface Field {
  /** C member name; '' for an anonymous union whose members belong to the parent. */
  readonly name: string
  readonly offset: number
  readonly type: Scalar | Layout
  /** Array length; 1 for a plain member, 0 for a flexible array member. */
  readonly count: number
  readonly isArray: boolean
  readonly anonymous: boolean
}

export interface Layout {
  readonly name: string
  readonly kind: 'struct' | 'union'
  readonly size: number
  readonly align: number
  readonly packed: boolean
  readonly fields: readonly Field[]
  /** Where the layout comes from: the UAPI header, the kernel driver, or the hypervisor. */
  readonly origin: 'uapi' | 'kernel' | 'hypervisor' | 'inline'
}

export interface FieldSpec {
  name: string
  offset: number
  type: Scalar | Layout
  count?: number
  anonymous?: boolean
}

/** A member: `field('vmid', 0, 'u16')`, `field('bar', 12, 'u32', 6)`. */
export function field(
  name: string,
  offset: number,
  type: Scalar | Layout,
  count?: number,
): FieldSpec {
  return count === undefined ? { name, offset, type } : { name, offset, type, count }
}

/** An anonymous union member (`union { ... };` with no name): its members read as the parent's. */
export function anonymous(offset: number, union: Layout): FieldSpec {
  return { name: '', offset, type: union, anonymous: true }
}

export interface LayoutOptions {
  /** The size the spec states; checked against the computed size. */
  size: number
  packed?: boolean
  /** `__attribute__((aligned(N)))` */
  aligned?: number
  origin?: Layout['origin']
}

function typeSize(type: Scalar | Layout): number {
  return typeof type === 'string' ? SCALAR_SIZE[type] : type.size
}

function typeAlign(type: Scalar | Layout): number {
  return typeof type === 'string' ? SCALAR_SIZE[type] : type.align
}

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align
}

function build(
  kind: Layout['kind'],
  name: string,
  specs: FieldSpec[],
  opts: LayoutOptions,
): Layout {
  const packed = opts.packed ?? false
  let end = 0
  let align = 1
  const fields: Field[] = []
  for (const spec of specs) {
    const count = spec.count ?? 1
    const fieldAlign = packed ? 1 : typeAlign(spec.type)
    const natural = kind === 'union' ? 0 : alignUp(end, fieldAlign)
    if (spec.offset !== natural) {
      throw new Error(
        `layout ${name}: member ${spec.name || '(anonymous)'} declared at offset ${spec.offset}, C puts it at ${natural}`,
      )
    }
    const size = typeSize(spec.type) * count
    end = Math.max(end, spec.offset + size)
    align = Math.max(align, fieldAlign)
    fields.push({
      name: spec.name,
      offset: spec.offset,
      type: spec.type,
      count,
      isArray: spec.count !== undefined,
      anonymous: spec.anonymous ?? false,
    })
  }
  if (opts.aligned !== undefined) align = Math.max(align, opts.aligned)
  const size = alignUp(end, align)
  if (size !== opts.size) {
    throw new Error(`layout ${name}: computed size ${size}, expected ${opts.size}`)
  }
  return Object.freeze({
    name,
    kind,
    size,
    align,
    packed,
    fields: Object.freeze(fields),
    origin: opts.origin ?? 'uapi',
  })
}

export function defineStruct(name: string, fields: FieldSpec[], opts: LayoutOptions): Layout {
  return build('struct', name, fields, opts)
}

/** A union: every member at offset 0. */
export function defineUnion(name: string, members: FieldSpec[], opts: LayoutOptions): Layout {
  return build('union', name, members, { origin: 'inline', ...opts })
}

// ---------------------------------------------------------------------------
// Values

/** Decoded struct: numbers for fields up to 32 bits, bigint for 64-bit, Uint8Array for u8[]. */
export type StructValue = { [member: string]: FieldValue }
export type FieldValue = number | bigint | Uint8Array | StructValue | FieldValue[]

function readScalar(view: DataView, offset: number, type: Scalar): number | bigint {
  switch (type) {
    case 'u8':
      return view.getUint8(offset)
    case 'u16':
    case 'le16':
      return view.getUint16(offset, true)
    case 'u32':
    case 'le32':
      return view.getUint32(offset, true)
    case 's32':
      return view.getInt32(offset, true)
    case 'u64':
    case 'le64':
      return view.getBigUint64(offset, true)
  }
}

const SCALAR_RANGE: Readonly<Record<Scalar, readonly [bigint, bigint]>> = {
  u8: [0n, 0xffn],
  u16: [0n, 0xffffn],
  le16: [0n, 0xffffn],
  u32: [0n, 0xffff_ffffn],
  le32: [0n, 0xffff_ffffn],
  s32: [-(2n ** 31n), 2n ** 31n - 1n],
  u64: [0n, 2n ** 64n - 1n],
  le64: [0n, 2n ** 64n - 1n],
}

function writeScalar(view: DataView, offset: number, type: Scalar, value: unknown, path: string) {
  let big: bigint
  if (typeof value === 'bigint') big = value
  else if (typeof value === 'number' && Number.isInteger(value)) big = BigInt(value)
  else throw new TypeError(`${path}: expected an integer for ${type}, got ${String(value)}`)
  const [min, max] = SCALAR_RANGE[type]
  if (big < min || big > max) {
    throw new RangeError(`${path}: ${big} does not fit in ${type}`)
  }
  switch (type) {
    case 'u8':
      return view.setUint8(offset, Number(big))
    case 'u16':
    case 'le16':
      return view.setUint16(offset, Number(big), true)
    case 'u32':
    case 'le32':
      return view.setUint32(offset, Number(big), true)
    case 's32':
      return view.setInt32(offset, Number(big), true)
    case 'u64':
    case 'le64':
      return view.setBigUint64(offset, big, true)
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function decodeElement(view: DataView, bytes: Uint8Array, offset: number, type: Scalar | Layout) {
  return typeof type === 'string'
    ? readScalar(view, offset, type)
    : decodeInto(type, view, bytes, offset, {})
}

function decodeInto(
  layout: Layout,
  view: DataView,
  bytes: Uint8Array,
  base: number,
  out: StructValue,
): StructValue {
  for (const f of layout.fields) {
    const at = base + f.offset
    if (f.anonymous) {
      decodeInto(f.type as Layout, view, bytes, at, out)
    } else if (!f.isArray) {
      out[f.name] = decodeElement(view, bytes, at, f.type)
    } else if (f.type === 'u8') {
      out[f.name] = bytes.slice(at, at + f.count)
    } else {
      const step = typeSize(f.type)
      const list: FieldValue[] = []
      for (let i = 0; i < f.count; i++) list.push(decodeElement(view, bytes, at + i * step, f.type))
      out[f.name] = list
    }
  }
  return out
}

/** Read a struct from `bytes` at `offset`. Unions yield every member's view of the bytes. */
export function decode(layout: Layout, bytes: Uint8Array, offset = 0): StructValue {
  if (offset < 0 || offset + layout.size > bytes.byteLength) {
    throw new RangeError(
      `decode ${layout.name}: needs ${layout.size} bytes at offset ${offset}, buffer has ${bytes.byteLength}`,
    )
  }
  return decodeInto(layout, viewOf(bytes), bytes, offset, {})
}

function encodeElement(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  type: Scalar | Layout,
  value: unknown,
  path: string,
) {
  if (typeof type === 'string') writeScalar(view, offset, type, value, path)
  else encodeInto(type, view, bytes, offset, value, path)
}

function encodeInto(
  layout: Layout,
  view: DataView,
  bytes: Uint8Array,
  base: number,
  value: unknown,
  path: string,
) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${path}: expected an object for ${layout.name}`)
  }
  const record = value as Record<string, unknown>
  for (const f of layout.fields) {
    const at = base + f.offset
    if (f.anonymous) {
      encodeInto(f.type as Layout, view, bytes, at, record, path)
      continue
    }
    const member = record[f.name]
    if (member === undefined) continue
    const memberPath = path ? `${path}.${f.name}` : f.name
    if (!f.isArray) {
      encodeElement(view, bytes, at, f.type, member, memberPath)
      continue
    }
    if (!(Array.isArray(member) || member instanceof Uint8Array)) {
      throw new TypeError(`${memberPath}: expected an array of ${f.count}`)
    }
    if (member.length > f.count) {
      throw new RangeError(`${memberPath}: ${member.length} elements, the array holds ${f.count}`)
    }
    const step = typeSize(f.type)
    for (let i = 0; i < member.length; i++) {
      encodeElement(view, bytes, at + i * step, f.type, member[i], `${memberPath}[${i}]`)
    }
  }
}

/**
 * Write a struct. Members left undefined keep the target's bytes (zero in a fresh buffer).
 * For a union, members are written in declaration order, so give only the one you mean.
 */
export function encode(
  layout: Layout,
  value: Record<string, unknown>,
  target: Uint8Array = new Uint8Array(layout.size),
  offset = 0,
): Uint8Array {
  if (offset < 0 || offset + layout.size > target.byteLength) {
    throw new RangeError(
      `encode ${layout.name}: needs ${layout.size} bytes at offset ${offset}, buffer has ${target.byteLength}`,
    )
  }
  encodeInto(layout, viewOf(target), target, offset, value, '')
  return target
}

// ---------------------------------------------------------------------------
// Listing (for `hsmctl abi`, offsetOf and the conformance test)

export interface MemberInfo {
  /** C member path: `vmid`, `reqs.pio_request.value`, `res[0].size`. */
  readonly name: string
  /** Offset from the start of the outermost struct. */
  readonly offset: number
  readonly size: number
  /** C-like type: `u16`, `u32[3]`, `struct acrn_gp_regs`, `union {...}`. */
  readonly type: string
  /** 0 for top-level members (anonymous-union members count as top level). */
  readonly depth: number
  readonly scalar: Scalar | undefined
  readonly count: number
}

function typeName(f: Field): string {
  const base =
    typeof f.type === 'string'
      ? f.type
      : f.type.origin === 'inline'
        ? `${f.type.kind} {...}`
        : `struct ${f.type.name}`
  return f.isArray ? `${base}[${f.count}]` : base
}

function collect(layout: Layout, base: number, prefix: string, depth: number, out: MemberInfo[]) {
  for (const f of layout.fields) {
    const at = base + f.offset
    if (f.anonymous) {
      collect(f.type as Layout, at, prefix, depth, out)
      continue
    }
    const name = prefix + f.name
    out.push({
      name,
      offset: at,
      size: typeSize(f.type) * f.count,
      type: typeName(f),
      depth,
      scalar: typeof f.type === 'string' ? f.type : undefined,
      count: f.count,
    })
    if (typeof f.type !== 'string' && f.count > 0) {
      // Arrays of structs list their first element; the rest repeat at a fixed stride.
      collect(f.type, at, f.isArray ? `${name}[0].` : `${name}.`, depth + 1, out)
    }
  }
}

/** Every member: top-level ones, each followed by its nested members as dotted names. */
export function members(layout: Layout): MemberInfo[] {
  const out: MemberInfo[] = []
  collect(layout, 0, '', 0, out)
  return out
}

/** Offset of a member path (as listed by `members`), for hot paths that use DataView directly. */
export function offsetOf(layout: Layout, path: string): number {
  const found = members(layout).find((m) => m.name === path)
  if (!found) throw new Error(`${layout.name} has no member ${path}`)
  return found.offset
}

export interface Gap {
  readonly offset: number
  readonly size: number
  /** 'hole' between members, 'padding' at the end. */
  readonly kind: 'hole' | 'padding'
  /** The member the gap follows. */
  readonly after: string
}

/** Holes between top-level members and tail padding, like pahole reports them. */
export function gaps(layout: Layout): Gap[] {
  const out: Gap[] = []
  if (layout.kind === 'union') {
    const used = Math.max(0, ...layout.fields.map((f) => f.offset + typeSize(f.type) * f.count))
    if (used < layout.size) {
      out.push({ offset: used, size: layout.size - used, kind: 'padding', after: '' })
    }
    return out
  }
  let end = 0
  let last = ''
  for (const f of layout.fields) {
    if (f.offset > end) out.push({ offset: end, size: f.offset - end, kind: 'hole', after: last })
    end = f.offset + typeSize(f.type) * f.count
    // An anonymous union's members are listed as the parent's; the gap follows its last one.
    last = f.anonymous ? ((f.type as Layout).fields.at(-1)?.name ?? '') : f.name
  }
  if (end < layout.size)
    out.push({ offset: end, size: layout.size - end, kind: 'padding', after: last })
  return out
}
