import Foundation
import SwiftFinetune

/// Timing and reporting shared by every benchmark: medians of repeated runs (these machines are noisy),
/// and peer figures read from the JSON files `Benchmarks/peers/` scripts write in the same `make bench`.
enum Measure {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Seconds of each of `runs` timed calls after `warmup` untimed ones.
    static func times(runs: Int, warmup: Int = 1, _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmup { try body() }
        return try (0..<runs).map { _ in
            let t0 = now()
            try body()
            return now() - t0
        }
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Peak RSS of this process so far, in bytes (VmHWM).
    static func peakRSS() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            // "VmHWM:\t 3640000 kB"; from 8 digits on there is no space after the tab.
            let kb = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    static var peerDirectory: String {
        ProcessInfo.processInfo.environment["SWIFT_FINETUNE_BENCH_DIR"] ?? "/tmp/swift-finetune-bench"
    }

    /// A peer's result file, if the peer ran in this `make bench` (files older than an hour are ignored).
    static func peer(_ name: String) -> JSONValue? {
        let path = peerDirectory + "/" + name + ".json"
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path),
              let date = attrs[.modificationDate] as? Date, Date().timeIntervalSince(date) < 3600 else { return nil }
        return try? JSONValue.read(path: path)
    }

    static func line(_ label: String, _ value: String) {
        print(label.padding(toLength: 44, withPad: " ", startingAt: 0) + value)
    }

    static func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
}

/// The machine's own sgemm throughput, the denominator of every MFU figure.
enum SgemmPeak {
    static func measure(size n: Int = 2048, runs: Int = 5) -> Double {
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let t = Measure.times(runs: runs) {
            Matmul.gemm(transA: false, transB: false, M: n, N: n, K: n, A: a, lda: n, B: b, ldb: n, C: &c, ldc: n)
        }
        return 2 * Double(n * n * n) / Measure.median(t) / 1e9
    }
}
