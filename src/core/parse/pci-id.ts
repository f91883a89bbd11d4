// PCI vendor, device and class codes as text: `0x8086`, `0x0c0330`. Fixed width, as
// lspci -n and the PCI spec write them, with the 0x so that a script (or --vendor) reads
// them back as hex without guessing.

/** A 16-bit vendor or device ID: four hex digits. */
export function formatPciId(id: number): string {
  return `0x${id.toString(16).padStart(4, '0')}`
}

/** A 24-bit class code (base class, subclass, programming interface): six hex digits. */
export function formatClassCode(code: number): string {
  return `0x${code.toString(16).padStart(6, '0')}`
}
