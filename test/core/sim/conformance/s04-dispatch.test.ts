import { simBackend } from './backend.js'
import { dispatchSuite } from './suite/s04-dispatch.js'

dispatchSuite(simBackend)
