import { simBackend } from './backend.js'
import { pitfallsSuite } from './suite/s11-pitfalls.js'

pitfallsSuite(simBackend)
