import { simBackend } from './backend.js'
import { memsegSuite } from './suite/s03-memseg.js'

memsegSuite(simBackend)
