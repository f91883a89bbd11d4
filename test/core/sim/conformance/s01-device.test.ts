import { simBackend } from './backend.js'
import { deviceSuite } from './suite/s01-device.js'

deviceSuite(simBackend)
