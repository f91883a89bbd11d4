import { ioeventfdSuite } from './suite/s05-ioeventfd.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'

useNativeBackend()
ioeventfdSuite(nativeBackend)
