import Foundation
import SwiftFinetune

/// The pipeline benchmark: the 135M model, global batch 8 × 256 tokens, accumulation 8 (micro-
/// batches of one row). Three launches, all from `make bench`: one process × 2 threads (`pipeline`), data
/// parallel on 2 ranks × 1 thread (`mpirun -np 2 … pipeline dp`, accumulation 4 per rank), and P = 2 on 2
/// ranks × 1 thread (`mpirun -np 2 … pipeline pp`, the 1F1B schedule over the 8 micro-batches). Rank 0
/// prints tokens/s, the largest rank's model-state bytes and peak RSS; the pipeline run also prints the
/// measured bubble (the share of its schedule a stage spent waiting for a neighbour, the larger of the
/// two stages) beside the ideal (P − 1)/(M + P − 1), and its ratios to data parallelism (targets: ≥ 0.85×
/// tokens/s, ≤ 0.55× model state). The split is the engine's default, `partition: parameters`, which
/// balances what each stage holds (PipelinePartition.make: the tied embedding stepped by the last stage,
/// the first holding its f32 weights): printed, with each stage's model state, compute and wait.
enum PipelineBenchmark {
    enum Mode: String { case single, dp, pp }

    static func run(_ mode: Mode) throws {
        let comm = try Distributed.current()
        let c = try BenchModel.config135M()
        let model = TransformerModel(config: c)
        model.initializeRandom(seed: 0)
        let (T, globalRows, M) = (256, 8, 8)
        var options = EngineOptions()
        var placement: PipelinePlacement?
        var data: Communicator = comm
        if mode == .pp {
            options.pipeline.stages = 2
            let groups = try ParallelGroups(world: comm, pipelineStages: 2)
            let split = try PipelinePartition.make(options.pipeline.partition, stages: 2, layout: model.trainableLayout,
                                                   blocks: c.numLayers, tiedHead: model.isHeadTied)
            placement = try PipelinePlacement(groups: groups, partition: split, tiedHead: model.isHeadTied)
            data = groups.dataParallel
        }
        let engine = try TrainingEngine(model: model, options: options,
                                        optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                        maxTokens: T, communicator: data, pipeline: placement)
        let accumulation = M / data.worldSize
        var rng = CounterRNG(seed: 1, purpose: .other, rank: data.rank)
        let batches = try (0..<accumulation).map { _ -> MicroBatch in
            let tokens = (0..<T).map { _ in Int32(rng.next(below: c.vocabSize)) }
            let targets = (0..<T).map { $0 == T - 1 ? Int32(-100) : tokens[$0 + 1] }
            return try model.batch(tokens: tokens, positions: (0..<T).map(Int32.init), spans: [AttentionSpan(qStart: 0, qLen: T)],
                                   targets: targets, normalizer: Float(globalRows * (T - 1)))
        }
        var stageTimes: [PipelineTiming] = []
        let times = try Measure.times(runs: 3) {
            engine.zeroGradients()
            if placement != nil {
                _ = try engine.pipelineMicroSteps(batches)
                stageTimes.append(engine.lastPipelineTiming)
            } else {
                for b in batches {
                    try engine.microStep(tokens: b.tokens, positions: b.positions, spans: b.spans, targets: b.targets, normalizer: b.normalizer)
                }
            }
            _ = try engine.step(lr: 1e-4, maxGradNorm: 1.0)
            try comm.barrier()
        }
        let t = Measure.median(times)
        let tps = Double(globalRows * T) / t
        let rss = try comm.allReduce(Double(Measure.peakRSS()), op: .max)
        let state = try comm.allReduce(Double(engine.modelStateBytes), op: .max)
        // The median step's timing (the warm-up step ran first).
        let median = placement == nil ? PipelineTiming() : stageTimes.suffix(times.count)[stageTimes.count - times.count + times.firstIndex(of: t)!]
        let bubble = try comm.allReduce(median.bubbleFraction, op: .max)
        // Each stage's model state, and its compute and wait in the median step (stage = world rank here).
        var perStage = [Double](repeating: 0, count: 3 * comm.worldSize)
        if let p = placement {
            perStage[3 * p.stage] = Double(engine.modelStateBytes)
            perStage[3 * p.stage + 1] = median.computeSeconds
            perStage[3 * p.stage + 2] = median.waitSeconds
        }
        try perStage.withUnsafeMutableBufferPointer { try comm.allReduce($0.baseAddress!, count: $0.count, op: .sum) }
        guard comm.rank == 0 else { return }
        let label = ["single": "1 process × \(Parallel.threads) threads", "dp": "2 ranks × 1 thread, data parallel",
                     "pp": "2 ranks × 1 thread, pipeline P=2"][mode.rawValue]!
        Measure.line(label, "\(Measure.fmt(tps)) tokens/s (median of 3, \(Measure.fmt(t, 2)) s/step)")
        Measure.line("  model state (largest rank)", "\(Measure.fmt(state / 1e9, 3)) GB")
        Measure.line("  peak RSS (largest rank)", "\(Measure.fmt(rss / 1e9, 2)) GB")
        let basePath = Measure.peerDirectory + "/pipeline_dp.json"
        switch mode {
        case .single:
            break
        case .dp:
            try FileManager.default.createDirectory(atPath: Measure.peerDirectory, withIntermediateDirectories: true)
            try JSONValue.object(JSONObject([("tokens_per_second", .double(tps)), ("model_state", .double(state))])).write(to: basePath)
        case .pp:
            let p = placement!
            Measure.line("  partition (\(options.pipeline.partition))", "blocks per stage \(p.partition.blockCounts)")
            for st in 0..<p.stages {
                Measure.line("  stage \(st): model state, compute, wait", "\(Measure.fmt(perStage[3 * st] / 1e9, 3)) GB, "
                             + "\(Measure.fmt(perStage[3 * st + 1], 2)) s, \(Measure.fmt(perStage[3 * st + 2], 2)) s")
            }
            Measure.line("  bubble: measured / (P−1)/(M+P−1)", "\(Measure.fmt(bubble, 3)) / \(Measure.fmt(PipelineSchedule.idealBubble(stages: 2, microBatches: M), 3))")
            if let base = try? JSONValue.read(path: basePath), let dpTPS = base["tokens_per_second"]?.doubleValue,
               let dpState = base["model_state"]?.doubleValue {
                Measure.line("  vs data parallel: tokens/s, state", "\(Measure.fmt(tps / dpTPS, 2))× (target ≥ 0.85), \(Measure.fmt(state / dpState, 2))× (target ≤ 0.55)")
            }
        }
    }
}
