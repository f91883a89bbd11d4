import { simBackend } from './backend.js'
import { lifecycleSuite } from './suite/s02-lifecycle.js'

lifecycleSuite(simBackend)
