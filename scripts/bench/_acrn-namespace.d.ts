// Types of _acrn-namespace.js, for test/support/acrn-dm.ts.
export function privateAcrnNamespace(dir: string): number
