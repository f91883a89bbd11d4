// Types of _acrn-dm.js, for test/support/acrn-dm.ts.
export function acrnDmBuild(): { path: string; acrnctl: string } | { unavailable: string }
export function privateAcrnNamespace(dir: string): number
