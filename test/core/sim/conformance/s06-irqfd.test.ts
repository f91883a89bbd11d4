import { simBackend } from './backend.js'
import { irqfdSuite } from './suite/s06-irqfd.js'

irqfdSuite(simBackend)
