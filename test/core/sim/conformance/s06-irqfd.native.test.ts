import { irqfdSuite } from './suite/s06-irqfd.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'

useNativeBackend()
irqfdSuite(nativeBackend)
