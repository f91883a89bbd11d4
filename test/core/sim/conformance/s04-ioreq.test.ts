import { simBackend } from './backend.js'
import { ioreqSuite } from './suite/s04-ioreq.js'

ioreqSuite(simBackend)
