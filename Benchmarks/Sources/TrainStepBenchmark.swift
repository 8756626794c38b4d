import Foundation
import SwiftFinetune

/// A full fine-tune step of the 135M model: forward, loss over every token, backward, global-norm
/// clipping and AdamW, micro-batch 4 × 256, f32. Peak RSS is this process's (run it as its own section).
enum TrainStepBenchmark {
    /// `checkpointing`: keep only block inputs and recompute in backward (the "train-ckpt" section).
    static func run(peak: Double, checkpointing: Bool = false) throws {
        let c = try BenchModel.config135M()
        let model = TransformerModel(config: c)
        model.initializeRandom(seed: 0)
        let (B, T) = (4, 256)
        var options = EngineOptions()
        options.activationCheckpointing = checkpointing
        let engine = try TrainingEngine(model: model, options: options,
                                        optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.0),
                                        maxTokens: B * T)
        var rng = CounterRNG(seed: 1, purpose: .other)
        let tokens = (0..<B * T).map { _ in Int32(rng.next(below: c.vocabSize)) }
        let positions = (0..<B * T).map { Int32($0 % T) }
        let spans = (0..<B).map { AttentionSpan(qStart: $0 * T, qLen: T) }
        // Every token but each row's last predicts the next one.
        let targets = (0..<B * T).map { $0 % T == T - 1 ? Int32(-100) : tokens[$0 + 1] }
        let labels = targets.filter { $0 != -100 }.count
        var phases: [String: Double] = [:]
        let times = try Measure.times(runs: 3) {
            let t0 = Measure.now()
            engine.zeroGradients()
            try engine.microStep(tokens: tokens, positions: positions, spans: spans, targets: targets, normalizer: Float(labels))
            let t1 = Measure.now()
            _ = engine.step(lr: 1e-4, maxGradNorm: 1.0)
            phases["forward+backward", default: 0] += t1 - t0
            phases["clip+AdamW", default: 0] += Measure.now() - t1
        }
        let t = Measure.median(times)
        let tps = Double(B * T) / t
        // Backward costs twice the forward's matmul work: 3× the forward FLOPs in all.
        let flops = 3 * BenchModel.forwardFLOPs(c, rows: B, T: T) / t / 1e9
        print("\n== Full fine-tune step, 135M Llama-shaped, f32, AdamW, batch \(B)×\(T), \(Parallel.threads) threads"
              + (checkpointing ? ", activation checkpointing" : ""))
        Measure.line("swift-finetune train step", "\(Measure.fmt(tps)) tokens/s (median of 3, \(Measure.fmt(t, 3)) s/step)")
        Measure.line("  of which forward+backward / clip+AdamW", "\(Measure.fmt(phases["forward+backward"]! / 4, 3)) s / \(Measure.fmt(phases["clip+AdamW"]! / 4, 3)) s (mean)")
        Measure.line("achieved", "\(Measure.fmt(flops)) GFLOP/s = MFU \(Measure.fmt(100 * flops / peak))% of sgemm peak")
        Measure.line("model state (params, grads, m, v)", "\(Measure.fmt(Double(engine.modelStateBytes) / 1e9, 2)) GB")
        let rss = Double(Measure.peakRSS()) / 1e9
        Measure.line("peak RSS", "\(Measure.fmt(rss, 2)) GB")
        if !checkpointing, let peer = Measure.peer("train_peer"), let ptps = peer["tokens_per_second"]?.doubleValue {
            let prss = (peer["peak_rss_bytes"]?.doubleValue ?? 0) / 1e9
            Measure.line("PyTorch \(peer["torch"]?.stringValue ?? "") eager train step", "\(Measure.fmt(ptps)) tokens/s, peak RSS \(Measure.fmt(prss, 2)) GB")
            Measure.line("ratio swift-finetune / PyTorch", "\(Measure.fmt(tps / ptps, 2))× tokens/s, \(Measure.fmt(rss / max(prss, 1e-9), 2))× peak RSS")
        } else if !checkpointing {
            Measure.line("PyTorch peer", "not run (make bench-peers needs torch)")
        }
    }
}
