import COpenBLAS
import Dispatch

/// How many threads the kernels use. The design gives each rank cores ÷ ranks threads, shared by
/// OpenBLAS and by the row-parallel SIMD kernels.
public enum Parallel {
    nonisolated(unsafe) public private(set) static var threads: Int = {
        let n = Int(openblas_get_num_threads())
        return max(1, n)
    }()

    /// Sets the thread count for OpenBLAS and for the kernels' own row splitting.
    public static func setThreads(_ n: Int) {
        threads = max(1, n)
        openblas_set_num_threads(Int32(threads))
    }

    /// Runs `body` with OpenBLAS limited to one thread (for BLAS calls made from several threads at once),
    /// then restores the thread count.
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(threads)) }
        return try body()
    }

    /// Runs `body` over `0..<count` split into contiguous chunks, one per thread. Work smaller than
    /// `minPerThread` items per thread runs inline: dispatching costs more than it saves.
    @inlinable
    public static func forEachChunk(_ count: Int, minPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        let t = min(threads, max(1, count / max(1, minPerThread)))
        if t <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: t) { i in
            let lo = count * i / t, hi = count * (i + 1) / t
            if lo < hi { body(lo..<hi) }
        }
    }
}
