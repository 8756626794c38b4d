#if canImport(Glibc)
import Glibc
#endif
import Kernels
import Tensors

/// How the next token is chosen: greedy (argmax), or sampling with temperature and nucleus (top-p).
public struct SamplingOptions: Sendable {
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64
    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }
    public var isGreedy: Bool { temperature <= 0 }
}

extension TransformerModel {
    /// Continues `prompt` by up to `maxNewTokens` tokens with a KV cache (the prompt is one forward pass,
    /// then one token at a time), stopping after any of `stopTokens`. Returns only the new tokens.
    public func generate(prompt: [Int32], maxNewTokens: Int, sampling: SamplingOptions = SamplingOptions(),
                         stopTokens: Set<Int32> = [], onToken: ((Int32) -> Void)? = nil) -> [Int32] {
        guard !prompt.isEmpty, maxNewTokens > 0 else { return [] }
        let cache = KVCache(config: config, maxTokens: prompt.count + maxNewTokens)
        let ws = ForwardWorkspace()
        var logits = [Float](repeating: 0, count: config.vocabSize)
        var rng = CounterRNG(seed: sampling.seed, purpose: .sampling)
        var out: [Int32] = []
        var next = prompt
        while out.count < maxNewTokens {
            let n = next.count, past = cache.length
            let positions = (0..<n).map { Int32(past + $0) }
            let hidden = forward(tokens: next, positions: positions, spans: [AttentionSpan(qStart: 0, qLen: n, kvStart: 0, past: past)],
                                 cache: cache, workspace: ws)
            logits.withUnsafeMutableBufferPointer {
                self.logits(hidden: hidden + (n - 1) * config.hiddenSize, rows: 1, into: $0.baseAddress!)
            }
            let token = Int32(Sampler.pick(logits, sampling, &rng))
            out.append(token)
            onToken?(token)
            if stopTokens.contains(token) { break }
            next = [token]
        }
        return out
    }
}

enum Sampler {
    static func pick(_ logits: [Float], _ s: SamplingOptions, _ rng: inout CounterRNG) -> Int {
        if s.isGreedy {
            // First maximum, as torch.argmax returns.
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return best
        }
        let m = logits.max() ?? 0
        var probs = logits.map { expf(($0 - m) / s.temperature) }
        let z = probs.reduce(0, +)
        probs = probs.map { $0 / z }
        var order = Array(0..<probs.count)
        order.sort { probs[$0] > probs[$1] }
        // Nucleus: the smallest prefix whose mass reaches top_p (at least one token).
        var kept: [Int] = []
        var mass: Float = 0
        for i in order {
            kept.append(i)
            mass += probs[i]
            if mass >= s.topP { break }
        }
        var r = rng.nextFloat() * mass
        for i in kept {
            r -= probs[i]
            if r <= 0 { return i }
        }
        return kept.last!
    }
}
