import Foundation
import SwiftFinetune

// `make bench` [BENCH_ARGS="forward tokenizer ..."]: each section prints its figure beside references
// measured in this same run (the sgemm peak; peers when `Benchmarks/peers/` ran first).
let args = Set(CommandLine.arguments.dropFirst().filter { Int($0) == nil })
func wanted(_ name: String) -> Bool { args.isEmpty || args.contains(name) }

// Under mpirun each rank gets cores ÷ local ranks threads.
Parallel.setThreads(Distributed.threadsPerRank(cores: ProcessInfo.processInfo.activeProcessorCount,
                                               localRanks: Distributed.localRanks(environment: ProcessInfo.processInfo.environment)))
// Under mpirun only rank 0 prints the banner and the sgemm reference.
let isRankZero = (ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? "0") == "0"
if isRankZero { print("swift-finetune benchmarks: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(Parallel.threads) threads") }
// The peak is measured again right before each section and the higher of the two is used: another
// process taking a core for a moment must not inflate a section's MFU.
let startPeak = SgemmPeak.measure()
if isRankZero { Measure.line("OpenBLAS sgemm 2048³ (the MFU reference)", "\(Measure.fmt(startPeak)) GFLOP/s (median of 5)") }
func peak() -> Double {
    let now = SgemmPeak.measure()
    Measure.line("sgemm peak before this section", "\(Measure.fmt(now)) GFLOP/s")
    return max(now, startPeak)
}

do {
    if wanted("tokenizer") { try runTokenizerBenchmark() }
    if wanted("forward") { try ForwardBenchmark.run(peak: peak()) }
    if args.contains("attention") { AttentionBenchmark.run() }
    for name in ["train", "train-ckpt", "train-bf16", "train-bf16-ckpt", "train-bf16-offload", "train-512", "train-bf16-512",
                 "train-1024", "train-bf16-1024"]
        where wanted(name) {
        try TrainStepBenchmark.run(peak: peak(), variant: TrainStepBenchmark.variants[name]!)
    }
    if wanted("checkpoint") { try CheckpointBenchmark.run() }
    if wanted("lora") { try LoRABenchmark.run(.m135) }
    if args.contains("lora-1.7b") { try LoRABenchmark.run(.b17, rounds: 1, peer: true) }
    if args.contains("lora-setup") {
        try LoRABenchmark.saveRandom17B()
        print("{}")
    }
    if args.contains("lora-once") { try LoRABenchmark.once(LoRABenchmark.Shape(rawValue: CommandLine.arguments.last!) ?? .m135) }
    if wanted("train-summary") { try TrainStepBenchmark.summary() }
    if args.contains("zero") {
        let stage = CommandLine.arguments.last.flatMap(Int.init)
        if stage == nil { print("\n== ZeRO, 135M, global batch 8×256, f32 AdamW") }
        try ZeROBenchmark.run(stage: stage)
    }
    if args.contains("pipeline") {
        let mode = PipelineBenchmark.Mode(rawValue: CommandLine.arguments.last ?? "") ?? .single
        if mode == .single { print("\n== Pipeline P=2 vs data parallel, 135M, global batch 8×256, accumulation 8, f32 AdamW") }
        try PipelineBenchmark.run(mode)
    }
} catch {
    FileHandle.standardError.write(Data("benchmark failed: \(error)\n".utf8))
    exit(1)
}
