import { dispatchSuite } from './suite/s04-dispatch.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'

useNativeBackend()
dispatchSuite(nativeBackend)
