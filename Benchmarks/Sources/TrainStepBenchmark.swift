import Foundation
import SwiftFinetune

/// A full fine-tune step of the 135M model: forward, loss over every token, backward, global-norm
/// clipping and AdamW, micro-batch 4 × 256. Peak RSS is this process's (run each variant as its own
/// section); each variant appends its figures to `.build/bench/train_variants.jsonl` for the
/// `train-summary` section, which sets them side by side.
enum TrainStepBenchmark {
    struct Variant {
        var name: String
        var precision: EngineOptions.Precision = .f32
        /// Keep only block inputs and recompute in backward.
        var checkpointing = false
        /// Optimizer state (and master weights) in files under this directory.
        var offloadPath: String?
        /// Rows × tokens per row of the micro-batch.
        var batch = (rows: 4, length: 256)
    }

    static let variants: [String: Variant] = [
        "train": Variant(name: "f32"),
        "train-ckpt": Variant(name: "f32 + activation checkpointing", checkpointing: true),
        "train-bf16": Variant(name: "bf16", precision: .bf16),
        "train-bf16-ckpt": Variant(name: "bf16 + activation checkpointing", precision: .bf16, checkpointing: true),
        "train-bf16-offload": Variant(name: "bf16 + NVMe optimizer offload", precision: .bf16,
                                      offloadPath: NSTemporaryDirectory() + "swift-finetune-bench-offload"),
        // Longer rows: activations outweigh model state, as in most fine-tunes.
        "train-512": Variant(name: "f32, 4×512", batch: (4, 512)),
        "train-bf16-512": Variant(name: "bf16, 4×512", precision: .bf16, batch: (4, 512)),
        "train-1024": Variant(name: "f32, 4×1024", batch: (4, 1024)),
        "train-bf16-1024": Variant(name: "bf16, 4×1024", precision: .bf16, batch: (4, 1024)),
    ]

    static func run(peak: Double, variant v: Variant) throws {
        let c = try BenchModel.config135M()
        let model = TransformerModel(config: c)
        model.initializeRandom(seed: 0)
        let (B, T) = v.batch
        let checkpointing = v.checkpointing
        var options = EngineOptions()
        options.activationCheckpointing = checkpointing
        options.precision = v.precision
        if let path = v.offloadPath {
            options.offloadOptimizer.device = .nvme
            options.offloadOptimizer.path = path
        }
        let engine = try TrainingEngine(model: model, options: options,
                                        optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.0),
                                        maxTokens: B * T)
        let (tokens, positions, spans, targets, labels) = BenchModel.randomBatch(c, rows: B, length: T)
        var phases: [String: Double] = [:]
        let times = try Measure.times(runs: 3) {
            let t0 = Measure.now()
            engine.zeroGradients()
            try engine.microStep(tokens: tokens, positions: positions, spans: spans, targets: targets, normalizer: Float(labels))
            let t1 = Measure.now()
            _ = try engine.step(lr: 1e-4, maxGradNorm: 1.0)
            phases["forward+backward", default: 0] += t1 - t0
            phases["clip+AdamW", default: 0] += Measure.now() - t1
        }
        let t = Measure.median(times)
        let tps = Double(B * T) / t
        // Backward costs twice the forward's matmul work: 3× the forward FLOPs in all.
        let flops = 3 * BenchModel.forwardFLOPs(c, rows: B, T: T) / t / 1e9
        print("\n== Full fine-tune step, 135M Llama-shaped, \(v.name), AdamW, batch \(B)×\(T), \(Parallel.threads) threads")
        Measure.line("swift-finetune train step", "\(Measure.fmt(tps)) tokens/s (median of 3, \(Measure.fmt(t, 3)) s/step)")
        Measure.line("  of which forward+backward / clip+AdamW", "\(Measure.fmt(phases["forward+backward"]! / 4, 3)) s / \(Measure.fmt(phases["clip+AdamW"]! / 4, 3)) s (mean)")
        Measure.line("achieved", "\(Measure.fmt(flops)) GFLOP/s = MFU \(Measure.fmt(100 * flops / peak))% of sgemm peak")
        Measure.line("model state in memory (params, grads, m, v)", "\(Measure.fmt(Double(engine.modelStateBytes) / 1e9, 2)) GB")
        let rss = Double(Measure.peakRSS()) / 1e9
        Measure.line("peak RSS", "\(Measure.fmt(rss, 2)) GB")
        let optimizerBytes = Double(engine.optimizerStateBytes) / 1e9
        try record([("variant", .string(v.name)), ("tokens_per_second", .double(tps)), ("peak_rss_gb", .double(rss)),
                    ("optimizer_state_gb", .double(optimizerBytes))])
        if v.name == "f32", let peer = Measure.peer("train_peer"), let ptps = peer["tokens_per_second"]?.doubleValue {
            let prss = (peer["peak_rss_bytes"]?.doubleValue ?? 0) / 1e9
            Measure.line("PyTorch \(peer["torch"]?.stringValue ?? "") eager train step", "\(Measure.fmt(ptps)) tokens/s, peak RSS \(Measure.fmt(prss, 2)) GB")
            Measure.line("ratio swift-finetune / PyTorch", "\(Measure.fmt(tps / ptps, 2))× tokens/s, \(Measure.fmt(rss / max(prss, 1e-9), 2))× peak RSS")
        } else if v.name == "f32" {
            Measure.line("PyTorch peer", "not run (make bench-peers needs torch)")
        }
    }

    static let recordPath = ".build/bench/train_variants.jsonl"

    static func record(_ fields: [(String, JSONValue)]) throws {
        try FileManager.default.createDirectory(atPath: (recordPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: recordPath) { FileManager.default.createFile(atPath: recordPath, contents: nil) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: recordPath))
        defer { try? h.close() }
        h.seekToEndOfFile()
        h.write(Data((JSONWriter.compact.string(.object(JSONObject(fields))) + "\n").utf8))
    }

    /// The variants of this run side by side, against the issue's targets: bf16 peak RSS ≤ 0.7× f32;
    /// offload peak RSS ≤ f32 − 0.8× the offloaded optimizer bytes, at ≥ 0.7× in-memory tokens/s.
    static func summary() throws {
        guard let text = try? String(contentsOfFile: recordPath, encoding: .utf8) else { return }
        var rows: [String: (tps: Double, rss: Double, opt: Double)] = [:]
        for line in text.split(separator: "\n") {
            let j = try JSONValue.parse(String(line))
            rows[j["variant"]!.stringValue!] = (j["tokens_per_second"]!.doubleValue!, j["peak_rss_gb"]!.doubleValue!,
                                               j["optimizer_state_gb"]!.doubleValue!)
        }
        print("\n== Precision, checkpointing and offload side by side (135M, batch 4×256 unless named, this run)")
        for name in ["f32", "f32 + activation checkpointing", "bf16", "bf16 + activation checkpointing", "bf16 + NVMe optimizer offload",
                     "f32, 4×512", "bf16, 4×512", "f32, 4×1024", "bf16, 4×1024"] {
            guard let r = rows[name] else { continue }
            Measure.line("  " + name, "\(Measure.fmt(r.tps)) tokens/s, peak RSS \(Measure.fmt(r.rss, 2)) GB")
        }
        if let f = rows["f32"], let b = rows["bf16"] {
            Measure.line("bf16 / f32", "\(Measure.fmt(b.rss / f.rss, 2))× peak RSS (target ≤ 0.70), \(Measure.fmt(b.tps / f.tps, 2))× tokens/s")
        }
        for batch in ["4×512", "4×1024"] {
            if let f = rows["f32, " + batch], let b = rows["bf16, " + batch] {
                Measure.line("bf16 / f32 at \(batch)", "\(Measure.fmt(b.rss / f.rss, 2))× peak RSS (target ≤ 0.70), \(Measure.fmt(b.tps / f.tps, 2))× tokens/s")
            }
        }
        if let f = rows["f32"], let b = rows["bf16"], let o = rows["bf16 + NVMe optimizer offload"] {
            Measure.line("offload: peak RSS vs f32 − 0.8 × state", "\(Measure.fmt(o.rss, 2)) GB vs \(Measure.fmt(f.rss - 0.8 * b.opt, 2)) GB (offloaded \(Measure.fmt(b.opt, 2)) GB)")
            Measure.line("offload / in-memory bf16 tokens/s", "\(Measure.fmt(o.tps / b.tps, 2))× (target ≥ 0.70)")
        }
    }
}
