import { errnoSuite } from './suite/s10-errno.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'
import { known, UNKNOWN_REQUEST } from './native-known.js'

// The runner of s01 checks what the native backend answers instead.
useNativeBackend(known([["§10.2 unknown command without a VM -> 'EINVAL'", UNKNOWN_REQUEST]]))
errnoSuite(nativeBackend)
