import { memsegSuite } from './suite/s03-memseg.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'

useNativeBackend()
memsegSuite(nativeBackend)
