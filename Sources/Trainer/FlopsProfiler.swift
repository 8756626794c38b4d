import Foundation
import Formats
import Kernels
import Models
import Tensors

/// One row of the FLOPs profile: a module of the model (or the step's optimizer, communication and
/// other time), its parameters, FLOPs counted analytically per kernel, and its measured latency.
public struct ModuleProfile: Sendable, Equatable {
    public var name: String
    /// 0 the whole step, 1 its parts, 2 each block, 3 a block's attention, MLP and norms.
    public var depth: Int
    public var parameters: Int
    public var forwardFLOPs: Int
    public var backwardFLOPs: Int
    /// Seconds (a block's norms and other: the block's time less its attention's and MLP's).
    public var latency: Double?

    public var flops: Int { forwardFLOPs + backwardFLOPs }
}

/// FLOPs of a step, counted per kernel from the model's layout and the step's token spans:
/// - a linear layer with weight [a, b] over N tokens is 2·N·a·b forward (FORMATS.md: 2mkn per matmul);
///   its backward is twice that (input and weight gradients);
/// - attention per head is q·kᵀ and p·v over the causal pairs of each span: 4·pairs·head_dim forward,
///   8·pairs·head_dim backward (pairs = qLen·(qLen+1)/2; the blocked kernel computes a little more
///   near the diagonal);
/// - the LM head (tied or not) is 2·N·H·V forward, 4·N·H·V backward;
/// - with activation checkpointing each block's forward runs again in backward;
/// - a frozen base (LoRA) gets no weight gradients: its linear layers' backward is once forward (the
///   input gradient only); each adapter's two products (x·Aᵀ [N, r] and u·Bᵀ, 2·N·r·(in + out)) are counted
///   in its module, backward twice forward (A's and B's gradients and the input's), and again under
///   activation checkpointing.
/// Elementwise work (norms, activations, softmax, RoPE, the embedding lookup, the optimizer update) is
/// not counted: it is O(N·H), against O(N·H²) for the products.
public enum FlopsCount {
    /// The module rows of depths 1-3 for the given micro-batches' spans (this rank's tokens).
    /// `adapter` is a LoRA adapter's layout (its lora_A [r, in] and lora_B [out, r] in the layer group of
    /// the block they adapt); with one, the base is frozen.
    public static func modules(config: TransformerConfig, layout: ParameterLayout, spans: [[AttentionSpan]],
                               recompute: Bool, frozenBase: Bool = false, adapter: ParameterLayout? = nil) -> [ModuleProfile] {
        let frozenBase = frozenBase || adapter != nil
        let N = spans.reduce(0) { $0 + $1.reduce(0) { $0 + $1.qLen } }
        let pairs = spans.reduce(0) { $0 + $1.reduce(0) { $0 + $1.qLen * ($1.qLen + 1) / 2 } }
        let L = config.numLayers, H = config.hiddenSize, V = config.vocabSize
        func params(_ es: [ParameterLayout.Entry]) -> Int { es.reduce(0) { $0 + $1.count } }
        func linear(_ es: [ParameterLayout.Entry]) -> Int {
            es.filter { $0.shape.count == 2 }.reduce(0) { $0 + 2 * N * $1.shape[0] * $1.shape[1] }
        }
        var rows: [ModuleProfile] = []
        let embedding = layout.entries.filter { $0.group == 0 }
        rows.append(ModuleProfile(name: "embedding", depth: 1, parameters: params(embedding), forwardFLOPs: 0, backwardFLOPs: 0))
        for l in 0..<L {
            let es = layout.entries.filter { $0.group == l + 1 }
            let attention = es.filter { $0.name.contains("attn") && !$0.name.contains("norm") && !$0.name.contains(".ln_") }
            let mlp = es.filter { $0.name.contains("mlp") && !$0.name.contains("norm") }
            let lora = adapter?.entries.filter { $0.group == l + 1 && $0.name.contains(".lora_") } ?? []
            let loraAttention = lora.filter { $0.name.contains("attn") }, loraMLP = lora.filter { $0.name.contains("mlp") }
            let grouped = Set(attention.map(\.name)).union(mlp.map(\.name))
            let norms = es.filter { !grouped.contains($0.name) }
            let core = 4 * pairs * config.headDim * config.numHeads
            let attnFwd = linear(attention) + core
            let mlpFwd = linear(mlp)
            let again = recompute ? 1 : 0, weights = frozenBase ? 1 : 2
            // Backward: the products' input (and, when trained, weight) gradients, plus a recompute.
            func backward(_ linearFLOPs: Int, core: Int = 0) -> Int { weights * linearFLOPs + 2 * core + again * (linearFLOPs + core) }
            // The adapters' products are trained: input and weight gradients, plus the recompute.
            func adapted(_ es: [ParameterLayout.Entry]) -> (forward: Int, backward: Int) { (linear(es), (2 + again) * linear(es)) }
            let (la, lm) = (adapted(loraAttention), adapted(loraMLP))
            let parts = [
                ModuleProfile(name: "block \(l) attention", depth: 3, parameters: params(attention) + params(loraAttention),
                              forwardFLOPs: attnFwd + la.forward, backwardFLOPs: backward(linear(attention), core: core) + la.backward),
                ModuleProfile(name: "block \(l) mlp", depth: 3, parameters: params(mlp) + params(loraMLP), forwardFLOPs: mlpFwd + lm.forward,
                              backwardFLOPs: backward(mlpFwd) + lm.backward),
                ModuleProfile(name: "block \(l) norms and other", depth: 3, parameters: params(norms), forwardFLOPs: linear(norms),
                              backwardFLOPs: backward(linear(norms))),
            ]
            rows.append(ModuleProfile(name: "block \(l)", depth: 2, parameters: params(es) + params(lora),
                                      forwardFLOPs: parts.reduce(0) { $0 + $1.forwardFLOPs }, backwardFLOPs: parts.reduce(0) { $0 + $1.backwardFLOPs }))
            rows += parts
        }
        let head = layout.entries.filter { $0.group == L + 1 }
        rows.append(ModuleProfile(name: "head and loss", depth: 1, parameters: params(head), forwardFLOPs: 2 * N * H * V,
                                  backwardFLOPs: (frozenBase ? 1 : 2) * 2 * N * H * V))
        return rows
    }
}

/// sgemm's peak on this machine, measured (as FORMATS.md asks: in the same run as the figure compared).
public enum SgemmPeak {
    /// The best of `repeats` n³ products through OpenBLAS, in FLOP/s.
    public static func measure(n: Int = 1024, repeats: Int = 3) -> Double {
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = monotonicSeconds()
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        Matmul.gemm(transA: false, transB: false, M: n, N: n, K: n, A: pa.baseAddress!, lda: n,
                                    B: pb.baseAddress!, ldb: n, C: pc.baseAddress!, ldc: n)
                    }
                }
            }
            best = min(best, monotonicSeconds() - t0)
        }
        return 2 * Double(n * n * n) / best
    }
}

/// DeepSpeed's flops profiler at one step: the totals and the per-module rows with their latencies.
public struct FlopsProfile: Sendable {
    public var step: Int
    public var worldSize: Int
    public var parameters: Int
    public var times: StepTimes
    public var modules: [ModuleProfile]
    public var sgemmPeak: Double

    /// Rows of every depth, latencies from the step's measured pieces; the depth-1 rows' latencies add
    /// up to the step.
    public init(step: Int, worldSize: Int, config: TransformerConfig, layout: ParameterLayout, spans: [[AttentionSpan]],
                recompute: Bool, frozenBase: Bool = false, adapter: ParameterLayout? = nil, times: StepTimes, sgemmPeak: Double) {
        self.step = step
        self.worldSize = worldSize
        self.times = times
        self.sgemmPeak = sgemmPeak
        parameters = layout.totalCount + (adapter?.totalCount ?? 0)
        var rows = FlopsCount.modules(config: config, layout: layout, spans: spans, recompute: recompute, frozenBase: frozenBase, adapter: adapter)
        for i in rows.indices {
            switch rows[i].name {
            case "embedding": rows[i].latency = times.pieces[.embedding] ?? 0
            case "head and loss": rows[i].latency = times.pieces[.headAndLoss] ?? 0
            default:
                // "block L", "block L attention", "block L mlp", "block L norms and other".
                let words = rows[i].name.split(separator: " ")
                guard words.count >= 2, let l = Int(words[1]) else { break }
                switch words.count > 2 ? words[2] : "" {
                case "": rows[i].latency = times.pieces[.block(l)] ?? 0
                case "attention": rows[i].latency = times.pieces[.attention(l)] ?? 0
                case "mlp": rows[i].latency = times.pieces[.mlp(l)] ?? 0
                default:
                    let inner = (times.pieces[.attention(l)] ?? 0) + (times.pieces[.mlp(l)] ?? 0)
                    rows[i].latency = max((times.pieces[.block(l)] ?? 0) - inner, 0)
                }
            }
        }
        let blocks = rows.filter { $0.depth == 2 }
        let blocksRow = ModuleProfile(name: "blocks", depth: 1, parameters: blocks.reduce(0) { $0 + $1.parameters },
                                      forwardFLOPs: blocks.reduce(0) { $0 + $1.forwardFLOPs }, backwardFLOPs: blocks.reduce(0) { $0 + $1.backwardFLOPs },
                                      latency: blocks.reduce(0) { $0 + ($1.latency ?? 0) })
        rows.insert(blocksRow, at: 1)
        rows.append(ModuleProfile(name: "optimizer", depth: 1, parameters: parameters, forwardFLOPs: 0, backwardFLOPs: 0, latency: times.optimizer))
        rows.append(ModuleProfile(name: "communication", depth: 1, parameters: 0, forwardFLOPs: 0, backwardFLOPs: 0, latency: times.communicationTotal))
        rows.append(ModuleProfile(name: "other", depth: 1, parameters: 0, forwardFLOPs: 0, backwardFLOPs: 0, latency: times.other))
        let top = rows.filter { $0.depth == 1 }
        rows.insert(ModuleProfile(name: "step", depth: 0, parameters: parameters, forwardFLOPs: top.reduce(0) { $0 + $1.forwardFLOPs },
                                  backwardFLOPs: top.reduce(0) { $0 + $1.backwardFLOPs }, latency: times.step), at: 0)
        modules = rows
    }

    public var forwardFLOPs: Int { modules[0].forwardFLOPs }
    public var backwardFLOPs: Int { modules[0].backwardFLOPs }
    /// The step latency as the sum of its depth-1 modules' (equal to the measured step by construction).
    public var stepLatency: Double { modules.filter { $0.depth == 1 }.reduce(0) { $0 + ($1.latency ?? 0) } }
    public var achievedFLOPS: Double { Double(forwardFLOPs + backwardFLOPs) / max(stepLatency, 1e-12) }
    /// Model FLOPs utilisation against the measured sgemm peak.
    public var mfu: Double { achievedFLOPS / sgemmPeak }
}
