import Foundation
import HVCSystem
import Runtime

/// How an OCI container's process (or an exec's) ends, as runc's would.
enum OCIProcessExit {
    /// Ends this process as the command ended: by the same signal (a status over 128), else
    /// with its code.
    static func asCommand(_ code: Int32) -> Never {
        if code > 128, code - 128 <= 64 {
            signal(code - 128, SIG_DFL)
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_UNBLOCK, &all, nil)
            kill(getpid(), code - 128)
        }
        exit(code)
    }

    /// Ends this process on an error before or around the command: one line, the error's code.
    static func failing(_ error: HVCError) -> Never {
        writeToStandardError("hvc-oci: \(error.message)\n")
        exit(error.exitCode)
    }
}
