import Foundation
import SwiftFinetune

/// The 135M model's full fine-tune step with a global batch of 8 × 256 tokens: one process with 2 BLAS
/// threads (micro-batch 4, accumulation 2), or — launched as `mpirun -np 2 Benchmarks zero STAGE` — two
/// ranks with one thread each (micro-batch 4 per rank) under data parallelism (stage 0) or ZeRO-1/2/3.
/// Rank 0 prints tokens/s, the engine's model-state bytes per rank beside DeepSpeed's formula, and the
/// largest peak RSS over the ranks. The baseline writes its figure for the ranked runs to compare with.
enum ZeROBenchmark {
    static func run(stage: Int?) throws {
        let comm = try Distributed.current()
        let c = try BenchModel.config135M()
        let model = TransformerModel(config: c)
        model.initializeRandom(seed: 0)
        let (rowsPerMicro, T, globalRows) = (4, 256, 8)
        let accumulation = globalRows / (rowsPerMicro * comm.worldSize)
        var options = EngineOptions()
        options.zeroStage = stage ?? 0
        let engine = try TrainingEngine(model: model, options: options,
                                        optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                        maxTokens: rowsPerMicro * T, communicator: comm)
        var rng = CounterRNG(seed: 1, purpose: .other, rank: comm.rank)
        let tokens = (0..<rowsPerMicro * T).map { _ in Int32(rng.next(below: c.vocabSize)) }
        let positions = (0..<rowsPerMicro * T).map { Int32($0 % T) }
        let spans = (0..<rowsPerMicro).map { AttentionSpan(qStart: $0 * T, qLen: T) }
        let targets = (0..<rowsPerMicro * T).map { $0 % T == T - 1 ? Int32(-100) : tokens[$0 + 1] }
        let labels = globalRows * (T - 1)
        let times = try Measure.times(runs: 3) {
            engine.zeroGradients()
            for _ in 0..<accumulation {
                try engine.microStep(tokens: tokens, positions: positions, spans: spans, targets: targets, normalizer: Float(labels))
            }
            _ = try engine.step(lr: 1e-4, maxGradNorm: 1.0)
            try comm.barrier()
        }
        let t = Measure.median(times)
        let tps = Double(globalRows * T) / t
        let rss = try comm.allReduce(Double(Measure.peakRSS()), op: .max)
        guard comm.rank == 0 else { return }
        let label = stage.map { $0 == 0 ? "2 ranks × 1 thread, data parallel" : "2 ranks × 1 thread, ZeRO-\($0)" } ?? "1 process × \(Parallel.threads) threads"
        let formula = MemoryEstimate.modelStateBytes(parameters: model.parameterCount, stage: stage ?? 0, ranks: comm.worldSize)
        Measure.line(label, "\(Measure.fmt(tps)) tokens/s (median of 3, \(Measure.fmt(t, 2)) s/step)")
        Measure.line("  model state per rank: engine / formula", "\(Measure.fmt(Double(engine.modelStateBytes) / 1e9, 3)) / \(Measure.fmt(Double(formula) / 1e9, 3)) GB")
        Measure.line("  peak RSS (largest rank)", "\(Measure.fmt(rss / 1e9, 2)) GB")
        let baselinePath = Measure.peerDirectory + "/zero_baseline.json"
        if stage == nil {
            try FileManager.default.createDirectory(atPath: Measure.peerDirectory, withIntermediateDirectories: true)
            try JSONValue.object(JSONObject([("tokens_per_second", .double(tps))])).write(to: baselinePath)
        } else if let base = try? JSONValue.read(path: baselinePath)["tokens_per_second"]?.doubleValue {
            Measure.line("  ratio to 1 process × 2 threads", "\(Measure.fmt(tps / base, 2))× (target ≥ \(stage == 3 ? "0.8" : "0.9"))")
        }
    }
}
