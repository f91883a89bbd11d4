// The package entry point: the ABI, the parsers and the error family, for programs that
// drive /dev/acrn_hsm from TypeScript. (The simulated platform joins it in the next issue.)
export * from './core/abi/index.js'
export * from './core/parse/index.js'
export * from './core/errors.js'
export * from './core/sim/index.js'
