import { simBackend } from './backend.js'
import { interruptsSuite } from './suite/s07-interrupts.js'

interruptsSuite(simBackend)
