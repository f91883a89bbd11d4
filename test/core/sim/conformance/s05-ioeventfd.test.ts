import { simBackend } from './backend.js'
import { ioeventfdSuite } from './suite/s05-ioeventfd.js'

ioeventfdSuite(simBackend)
