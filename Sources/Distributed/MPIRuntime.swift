import CMPI
import Foundation

/// The process-wide MPI library state: initialised once (funneled threads: only the main thread calls
/// MPI, while kernels run their own worker threads) and finalised once at exit.
enum MPIRuntime {
    nonisolated(unsafe) private static var initialized = false
    private static let lock = NSLock()

    /// Initialises MPI if it is not yet, and arranges MPI_Finalize at process exit: a rank that exits
    /// without finalising is reported by mpirun as a failure even when its work succeeded.
    static func initialize() throws {
        lock.lock()
        defer { lock.unlock() }
        if initialized { return }
        var already: Int32 = 0
        MPI_Initialized(&already)
        if already == 0 {
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided)
            if rc != cmpi_success() {
                throw CommunicatorError.mpi(rank: -1, call: "MPI_Init_thread", message: errorString(rc))
            }
            if provided < cmpi_thread_funneled() {
                throw CommunicatorError.mpi(rank: -1, call: "MPI_Init_thread",
                                            message: "the MPI library provides thread level \(provided), below MPI_THREAD_FUNNELED")
            }
            atexit { MPIRuntime.finalize() }
        }
        initialized = true
    }

    static var isFinalized: Bool {
        var done: Int32 = 0
        MPI_Finalized(&done)
        return done != 0
    }

    static func finalize() {
        var started: Int32 = 0
        MPI_Initialized(&started)
        if started != 0 && !isFinalized { MPI_Finalize() }
    }

    /// MPI's own text for an error code.
    static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        if MPI_Error_string(code, &buffer, &length) != cmpi_success() { return "MPI error code \(code)" }
        return String(cString: buffer) + " (code \(code))"
    }
}
