import { simBackend } from './backend.js'
import { errnoSuite } from './suite/s10-errno.js'

errnoSuite(simBackend)
