#if canImport(Glibc)
import Glibc
#endif

/// What schedulers and preemptible machines send before they take a machine away: SIGTERM (and a user's
/// Ctrl-C, SIGINT). The first one asks the Trainer to finish the optimizer step it is in, write a
/// checkpoint (all ranks agree on the step through a collective) and stop with
/// `TrainerError.interrupted`; a second one exits at once (128 + signal), for when waiting is not wanted.
/// `install` is called by the command line; a program embedding the Trainer may call it or not.
public enum GracefulStop {
    /// The signal received, 0 for none. Written only by the handler; a signal handler may only store
    /// to a lock-free word, which is all this is.
    nonisolated(unsafe) static let received: UnsafeMutablePointer<sig_atomic_t> = {
        let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    public static func install() {
        _ = received
        for s in [SIGINT, SIGTERM] {
            signal(s) { sig in
                if GracefulStop.received.pointee != 0 { _exit(128 + sig) }
                GracefulStop.received.pointee = sig_atomic_t(sig)
            }
        }
    }

    /// The signal asking for a stop, 0 when none came.
    public static var requested: Int32 { Int32(received.pointee) }

    /// "SIGINT" for 2.
    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        default: return "signal \(signal)"
        }
    }
}
