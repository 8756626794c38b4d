import Foundation
import SwiftFinetune

/// The 135M Llama-shaped model of the issues (SmolLM2-135M's shape), randomly initialised.
enum BenchModel {
    static func config135M() throws -> TransformerConfig {
        let json = try JSONValue.parse("""
        {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
         "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
         "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true}
        """)
        return try ModelRegistry.config(json: json, source: "135M benchmark config")
    }

    /// `rows` sequences of `length` random tokens, each its own span; every token but each row's last
    /// predicts the next one.
    static func randomBatch(_ c: TransformerConfig, rows B: Int, length T: Int)
        -> (tokens: [Int32], positions: [Int32], spans: [AttentionSpan], targets: [Int32], labels: Int) {
        var rng = CounterRNG(seed: 1, purpose: .other)
        let tokens = (0..<B * T).map { _ in Int32(rng.next(below: c.vocabSize)) }
        let positions = (0..<B * T).map { Int32($0 % T) }
        let spans = (0..<B).map { AttentionSpan(qStart: $0 * T, qLen: T) }
        let targets = (0..<B * T).map { $0 % T == T - 1 ? Int32(-100) : tokens[$0 + 1] }
        return (tokens, positions, spans, targets, targets.filter { $0 != -100 }.count)
    }

    /// Forward FLOPs of `rows` sequences of `T` tokens: 2 per multiply-add of every matmul (the LM head
    /// included) plus causal attention's QKᵀ and PV, counting only the unmasked half.
    static func forwardFLOPs(_ c: TransformerConfig, rows: Int, T: Int) -> Double {
        let s = c.attentionShape
        let perTokenMatmul = Double(c.hiddenSize * (s.qDim + 2 * s.kvDim) + s.qDim * c.hiddenSize
            + 3 * c.hiddenSize * c.intermediateSize) * Double(c.numLayers) + Double(c.hiddenSize * c.vocabSize)
        let attentionPairs = Double(T * (T + 1) / 2) * Double(rows)
        let attention = 2 * 2 * attentionPairs * Double(s.qDim) * Double(c.numLayers)
        return 2 * perTokenMatmul * Double(rows * T) + attention
    }
}

enum ForwardBenchmark {
    static func run(peak: Double) throws {
        let c = try BenchModel.config135M()
        let model = TransformerModel(config: c)
        model.initializeRandom(seed: 0)
        let (B, T) = (4, 256)
        var rng = CounterRNG(seed: 1, purpose: .other)
        let tokens = (0..<B * T).map { _ in Int32(rng.next(below: c.vocabSize)) }
        let positions = (0..<B * T).map { Int32($0 % T) }
        let spans = (0..<B).map { AttentionSpan(qStart: $0 * T, qLen: T) }
        let ws = ForwardWorkspace()
        let logits = FlatBuffer(dtype: .f32, count: B * T * c.vocabSize, zeroed: false)
        let times = Measure.times(runs: 5) {
            let h = model.forward(tokens: tokens, positions: positions, spans: spans, workspace: ws)
            model.logits(hidden: h, rows: B * T, into: logits.floats.baseAddress!)
        }
        let t = Measure.median(times)
        let tps = Double(B * T) / t
        let flops = BenchModel.forwardFLOPs(c, rows: B, T: T) / t / 1e9
        print("\n== Forward, 135M Llama-shaped (\(model.parameterCount / 1_000_000)M parameters), f32, batch \(B)×\(T), \(Parallel.threads) threads")
        Measure.line("swift-finetune forward", "\(Measure.fmt(tps)) tokens/s (median of 5, \(Measure.fmt(t, 3)) s/batch)")
        Measure.line("achieved", "\(Measure.fmt(flops)) GFLOP/s = MFU \(Measure.fmt(100 * flops / peak))% of sgemm peak")
        Measure.line("peak RSS so far", "\(Measure.fmt(Double(Measure.peakRSS()) / 1e9, 2)) GB")
        if let peer = Measure.peer("forward_peer"), let ptps = peer["tokens_per_second"]?.doubleValue {
            Measure.line("PyTorch \(peer["torch"]?.stringValue ?? "") eager forward", "\(Measure.fmt(ptps)) tokens/s")
            Measure.line("ratio swift-finetune / PyTorch", "\(Measure.fmt(tps / ptps, 2))×")
        } else {
            Measure.line("PyTorch peer", "not run (make bench-peers needs torch: pip install -r Scripts/reference/requirements.txt)")
        }
    }
}

/// Attention alone on the 135M model's shapes (4 rows × 256 tokens, 9 heads, 3 KV heads, head_dim 64),
/// one head per thread vs BLAS threading inside each head.
enum AttentionBenchmark {
    static func run() {
        let shape = AttentionShape(heads: 9, kvHeads: 3, headDim: 64)
        let (B, T) = (4, 256)
        var rng = CounterRNG(seed: 3)
        let q = (0..<B * T * shape.qDim).map { _ in rng.nextNormal() }
        let k = (0..<B * T * shape.kvDim).map { _ in rng.nextNormal() }
        let v = (0..<B * T * shape.kvDim).map { _ in rng.nextNormal() }
        var out = [Float](repeating: 0, count: B * T * shape.qDim)
        let spans = (0..<B).map { AttentionSpan(qStart: $0 * T, qLen: T) }
        print("\n== Attention, 135M shapes, 30 layers' worth")
        for parallel in [true, false] {
            Attention.parallelHeadsEnabled = parallel
            let t = Measure.median(Measure.times(runs: 5) {
                for _ in 0..<30 { Attention.forward(out: &out, probs: nil, q: q, k: k, v: v, spans: spans, shape: shape) }
            })
            Measure.line(parallel ? "one head per thread" : "BLAS threads inside each head", "\(Measure.fmt(t * 1000)) ms per forward")
        }
        Attention.parallelHeadsEnabled = true
    }
}
