import Foundation
import SwiftFinetune

/// LoRA r=16 (alpha 32) on every linear layer of the blocks, batch 4×256, AdamW, clipping 1.0, the
/// base frozen and stored in bf16 (SmolLM2's checkpoint dtype), compute in f32: against PyTorch + PEFT
/// (Benchmarks/peers/lora_round.py, base in f32) on the same shape, batch and threads.
///
/// Each round is a fresh process (so each peak RSS is that round's own), and rounds alternate ours,
/// peer, ours, peer, …: this machine's speed drifts, and the medians of interleaved rounds compare like
/// with like. `lora` runs the 135M shape; `lora-1.7b` SmolLM2-1.7B's shape (ours only when the peer's
/// f32 model would not fit comfortably: 1.7B × 4 bytes = 6.8 GB of base alone).
enum LoRABenchmark {
    enum Shape: String { case m135 = "135m", b17 = "1.7b" }

    static func config(_ shape: Shape) throws -> TransformerConfig {
        switch shape {
        case .m135: return try BenchModel.config135M()
        case .b17:
            let json = try JSONValue.parse("""
            {"model_type": "llama", "vocab_size": 49152, "hidden_size": 2048, "intermediate_size": 8192,
             "num_hidden_layers": 24, "num_attention_heads": 32, "num_key_value_heads": 32,
             "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 130000.0, "tie_word_embeddings": true,
             "torch_dtype": "bfloat16"}
            """)
            return try ModelRegistry.config(json: json, source: "1.7B benchmark config")
        }
    }

    /// The 1.7B shape's random weights saved in bf16 (made once, by its own process, and cached).
    static let folder17B = ".build/bench/lora-1.7b-bf16"

    static func saveRandom17B() throws {
        let model = TransformerModel(config: try config(.b17))
        model.initializeRandom(seed: 0)
        try model.save(directory: folder17B + ".tmp", dtype: .bf16)
        try? FileManager.default.removeItem(atPath: folder17B)
        try FileManager.default.moveItem(atPath: folder17B + ".tmp", toPath: folder17B)
    }

    /// Rows × tokens per row of each shape's micro-batch (the issue's).
    static func batch(_ shape: Shape) -> (rows: Int, length: Int) { shape == .b17 ? (1, 512) : (4, 256) }

    /// One round of ours: one JSON line on stdout.
    static func once(_ shape: Shape) throws {
        // The base goes into its bf16 storage a layer group at a time (read from the saved folder, or
        // initialised), so its f32 form is never all resident.
        let model: TransformerModel, fill: (Range<Int>) throws -> Void
        if shape == .b17 {
            (model, fill) = try TransformerModel.loadDeferred(directory: folder17B)
        } else {
            model = TransformerModel(config: try config(shape))
            fill = { [model] range in model.initializeRandom(seed: 0, range: range) }
        }
        let c = model.config
        model.adapter = try LoRAAdapter(model: model, settings: LoRASettings(r: 16, alpha: 32, targets: .allLinear))
        model.adapter!.initializeFresh(seed: 1)
        let (B, T) = batch(shape)
        // 1.7B: activation checkpointing, as on a laptop (24 blocks' activations at 1×512 are ~2.5 GB);
        // one timed step without warm-up (a step is minutes on 2 cores).
        var options = EngineOptions()
        options.activationCheckpointing = shape == .b17
        let engine = try TrainingEngine(model: model, options: options,
                                        optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.0),
                                        frozenBaseDType: .bf16, frozenBaseFill: fill, maxTokens: B * T)
        let (tokens, positions, spans, targets, labels) = BenchModel.randomBatch(c, rows: B, length: T)
        let times = try Measure.times(runs: shape == .b17 ? 1 : 3, warmup: shape == .b17 ? 0 : 1) {
            engine.zeroGradients()
            try engine.microStep(tokens: tokens, positions: positions, spans: spans, targets: targets, normalizer: Float(labels))
            _ = try engine.step(lr: 1e-4, maxGradNorm: 1.0)
        }
        let t = Measure.median(times)
        let out = JSONObject([("tokens_per_second", .double(Double(B * T) / t)), ("peak_rss_bytes", .int(Int64(Measure.peakRSS()))),
                              ("trainable", .int(Int64(engine.trainableLayout.totalCount))),
                              ("model_state_bytes", .int(Int64(engine.modelStateBytes))),
                              ("frozen_base_bytes", .int(Int64(engine.frozenBaseBytes)))])
        print(JSONWriter.compact.string(.object(out)))
    }

    static func round(_ executable: String, _ arguments: [String]) throws -> JSONValue? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else { return nil }
        return try? JSONValue.parse(String(line))
    }

    static func run(_ shape: Shape, rounds: Int = 3, peer: Bool = true) throws {
        let me = CommandLine.arguments[0]
        let peerScript = "Benchmarks/peers/lora_round.py"
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        if shape == .b17 && !FileManager.default.fileExists(atPath: folder17B + "/config.json") {
            guard try round(me, ["lora-setup", "1.7b"]) != nil || FileManager.default.fileExists(atPath: folder17B + "/config.json") else {
                throw BenchmarkError.failed("could not write \(folder17B)")
            }
        }
        var ours: [JSONValue] = [], theirs: [JSONValue] = []
        var peerMissing = !peer
        for _ in 0..<rounds {
            guard let o = try round(me, ["lora-once", shape.rawValue]) else { throw BenchmarkError.failed("lora benchmark round failed") }
            ours.append(o)
            if !peerMissing {
                if let p = try round("/usr/bin/env", [python, peerScript, "--shape", shape.rawValue]) { theirs.append(p) } else { peerMissing = true }
            }
        }
        func median(_ xs: [JSONValue], _ key: String) -> Double { Measure.median(xs.compactMap { $0[key]?.doubleValue }) }
        let tps = median(ours, "tokens_per_second"), rss = median(ours, "peak_rss_bytes") / 1e9
        let (B, T) = batch(shape)
        print("\n== LoRA r=16 all-linear, \(shape.rawValue) Llama shape, batch \(B)×\(T), AdamW, bf16 frozen base\(shape == .b17 ? ", activation checkpointing" : ""), \(Parallel.threads) threads, \(rounds) round(s)\(peer ? " interleaved with the peer's" : "")")
        Measure.line("swift-finetune LoRA step", "\(Measure.fmt(tps)) tokens/s, peak RSS \(Measure.fmt(rss, 2)) GB (medians)")
        if let o = ours.first {
            Measure.line("  trainable / model state / frozen base", "\(o["trainable"]!.intValue!) params / \(Measure.fmt(o["model_state_bytes"]!.doubleValue! / 1e6)) MB / \(Measure.fmt(o["frozen_base_bytes"]!.doubleValue! / 1e9, 2)) GB")
        }
        if shape == .b17 { Measure.line("  target peak RSS", "≤ 6 GB: \(rss <= 6 ? "met" : "NOT met")") }
        guard !theirs.isEmpty else {
            Measure.line("PyTorch + PEFT peer", peer ? "not run (needs torch, transformers and peft: pip install -r Scripts/reference/requirements.txt)" : "skipped for this shape")
            return
        }
        let ptps = median(theirs, "tokens_per_second"), prss = median(theirs, "peak_rss_bytes") / 1e9
        Measure.line("PyTorch \(theirs[0]["torch"]?.stringValue ?? "") + PEFT LoRA step (f32 base)", "\(Measure.fmt(ptps)) tokens/s, peak RSS \(Measure.fmt(prss, 2)) GB (medians)")
        Measure.line("ratio swift-finetune / PEFT", "\(Measure.fmt(tps / ptps, 2))× tokens/s (target ≥ 1.4), \(Measure.fmt(rss / prss, 2))× peak RSS (target ≤ 0.5)")
        let perRound = zip(ours, theirs).map { ($0["tokens_per_second"]!.doubleValue! / $1["tokens_per_second"]!.doubleValue!) }
        Measure.line("  tokens/s ratio per round", perRound.map { Measure.fmt($0, 2) }.joined(separator: ", "))
    }
}

enum BenchmarkError: Error { case failed(String) }
