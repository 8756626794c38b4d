import Foundation
import SwiftFinetune

// `make bench` [BENCH_ARGS="forward tokenizer ..."]: each section prints its figure beside references
// measured in this same run (the sgemm peak; peers when `Benchmarks/peers/` ran first).
let args = Set(CommandLine.arguments.dropFirst())
func wanted(_ name: String) -> Bool { args.isEmpty || args.contains(name) }

Parallel.setThreads(ProcessInfo.processInfo.activeProcessorCount)
print("swift-finetune benchmarks: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(Parallel.threads) threads")
// The peak is measured again right before each section and the higher of the two is used: another
// process taking a core for a moment must not inflate a section's MFU.
let startPeak = SgemmPeak.measure()
Measure.line("OpenBLAS sgemm 2048³ (the MFU reference)", "\(Measure.fmt(startPeak)) GFLOP/s (median of 5)")
func peak() -> Double {
    let now = SgemmPeak.measure()
    Measure.line("sgemm peak before this section", "\(Measure.fmt(now)) GFLOP/s")
    return max(now, startPeak)
}

do {
    if wanted("tokenizer") { try runTokenizerBenchmark() }
    if wanted("forward") { try ForwardBenchmark.run(peak: peak()) }
    if args.contains("attention") { AttentionBenchmark.run() }
    if wanted("train") { try TrainStepBenchmark.run(peak: peak()) }
} catch {
    FileHandle.standardError.write(Data("benchmark failed: \(error)\n".utf8))
    exit(1)
}
