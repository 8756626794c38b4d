import Foundation
import Formats
import Kernels
import SafeTensors
import Tensors

/// LoRA (PEFT's `LoraConfig`): which projections get an adapter and how it scales.
public struct LoRASettings: Sendable, Equatable {
    public enum Targets: Sendable, Equatable, CustomStringConvertible {
        /// Module names matched as PEFT matches them: the last path component, or a dotted suffix.
        case names([String])
        /// PEFT's "all-linear": every projection of the blocks (the LM head excluded).
        case allLinear

        /// A recipe's or adapter_config.json's list: ["all-linear"] alone means all-linear.
        public init(_ list: [String]) { self = list == ["all-linear"] ? .allLinear : .names(list) }

        /// As a recipe or adapter_config.json writes it.
        public var description: String {
            switch self {
            case .allLinear: return "all-linear"
            case .names(let n): return "[" + n.joined(separator: ", ") + "]"
            }
        }
    }
    public var r: Int
    public var alpha: Double
    public var dropout: Double
    public var rslora: Bool
    public var targets: Targets
    /// PEFT's `modules_to_save`: base modules (matched like targets) trained fully, as a copy the
    /// adapter holds and saves under the module's own name.
    public var modulesToSave: [String]

    public init(r: Int, alpha: Double, dropout: Double = 0, rslora: Bool = false, targets: Targets, modulesToSave: [String] = []) {
        self.r = r
        self.alpha = alpha
        self.dropout = dropout
        self.rslora = rslora
        self.targets = targets
        self.modulesToSave = modulesToSave
    }

    /// alpha / r, or alpha / √r with rsLoRA.
    public var scaling: Float { Float(rslora ? alpha / Double(r).squareRoot() : alpha / Double(r)) }

    func targets(_ module: String) -> Bool {
        switch targets {
        case .allLinear: return true
        case .names(let names): return names.contains { module == $0 || module.hasSuffix("." + $0) }
        }
    }
}

public enum AdapterError: Error, CustomStringConvertible {
    case noTargets(settings: String, modules: [String])
    case badSettings(String)
    case noSavedModule(name: String, modules: [String])
    case tiedSavedModule(name: String)
    case config(file: String, key: String, message: String)

    /// The setting a settings error is about (PEFT's key) and what is wrong with it; nil for `.config`,
    /// which already names its file. A recipe reports it under `lora.`, an adapter folder under its
    /// adapter_config.json (`inFile`).
    public var problem: (key: String, message: String)? {
        switch self {
        case .noTargets(let s, let modules):
            return ("target_modules", "\(s) matches no projection of this model; its projections are named \(modules.joined(separator: ", "))")
        case .badSettings(let m): return ("", m)
        case .noSavedModule(let name, let modules):
            return ("modules_to_save", "'\(name)' matches no module of this model; its modules with weights include \(modules.joined(separator: ", "))")
        case .tiedSavedModule(let name):
            return ("modules_to_save", "'\(name)' shares its weight with the tied LM head; PEFT would train a copy the head does not read. Untie the model or leave it out")
        case .config: return nil
        }
    }

    /// The same problem seen from an adapter folder's config file.
    func inFile(_ file: String) -> AdapterError {
        guard let p = problem else { return self }
        return .config(file: file, key: p.key.isEmpty ? "adapter" : p.key, message: p.message)
    }

    public var description: String {
        if case .config(let file, let key, let message) = self { return "\(file): \(key): \(message)" }
        let p = problem!
        return p.key.isEmpty ? "lora: \(p.message)" : "lora.\(p.key): \(p.message)"
    }
}

/// One adapted module: A [r, in] and B [out, r] in the adapter buffer (PEFT's lora_A / lora_B weights).
struct LoRAModule {
    /// The module's place among the adapter's: its dropout stream.
    var index: Int
    var a: Int
    var b: Int
    var r: Int
    var inFeatures: Int
    var outFeatures: Int
}

/// A base tensor that `modules_to_save` replaces: its range in the model's buffer and where the
/// trained copy starts in the adapter's.
struct SavedTensor {
    var base: Range<Int>
    var copy: Int
}

/// What the block pieces see of an attached adapter: its weights and (training) gradients, by module.
public struct AdapterContext {
    let weights: UnsafeMutablePointer<Float>
    let grads: UnsafeMutablePointer<Float>?
    let modules: [String: LoRAModule]
    let scaling: Float
    let saved: [SavedTensor]
    /// Training with dropout: the rate and the micro-step's key (`LoRADropout`); nil in inference.
    var dropout: LoRADropout? = nil

    func module(_ name: String) -> AttachedLoRA? { modules[name].map { AttachedLoRA(m: $0, context: self) } }

    /// Where a base weight offset lands in the adapter's copy, when `modules_to_save` replaced it.
    @inline(__always) func savedOffset(_ offset: Int) -> Int? {
        for t in saved where t.base.contains(offset) { return t.copy + offset - t.base.lowerBound }
        return nil
    }
}

/// PEFT's `lora_dropout` on the adapter input, nn.Dropout's semantics: each element zeroed with
/// probability p, the rest scaled by 1/(1-p). The mask comes from the counter RNG keyed by the
/// micro-step (`key`) and the module's index, so backward regenerates it instead of storing it, every
/// piece of a fused projection sees the same mask, and a resumed run draws what an uninterrupted one would.
public struct LoRADropout: Sendable, Equatable {
    public var p: Float
    public var key: UInt64
    public init(p: Float, key: UInt64) {
        self.p = p
        self.key = key
    }

    /// The mask for module `index` over `count` inputs: 0 or 1/(1-p).
    func mask(module index: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        var rng = CounterRNG(seed: key, purpose: .dropout, step: index)
        let keep = 1 / (1 - p)
        for i in 0..<count { out[i] = rng.nextFloat() < p ? 0 : keep }
    }

    /// dropped[i] = x[i] · mask[i].
    func apply(module index: Int, _ x: UnsafePointer<Float>, count: Int, into dropped: UnsafeMutablePointer<Float>) {
        mask(module: index, count: count, into: dropped)
        for i in 0..<count { dropped[i] *= x[i] }
    }
}

/// The LoRA term of one `Linear` piece: out += s · (dropout(x)·Aᵀ)·B_pieceᵀ, where B_piece is the
/// piece's rows of B (a fused projection's q, k or v part).
struct AttachedLoRA {
    let m: LoRAModule
    let context: AdapterContext

    func forward(_ ctx: BlockContext, piece: Linear, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>) {
        let (N, r, K, O) = (ctx.N, m.r, piece.inFeatures, piece.outFeatures)
        let t = UnsafeMutablePointer<Float>.allocate(capacity: max(N * r, 1))
        defer { t.deallocate() }
        var dropped: UnsafeMutablePointer<Float>?
        defer { dropped?.deallocate() }
        var x = inp
        if let d = context.dropout {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(N * K, 1))
            d.apply(module: m.index, inp, count: N * K, into: buffer)
            dropped = buffer
            x = UnsafePointer(buffer)
        }
        let a = context.weights + m.a, b = context.weights + m.b + piece.outputOffset * r
        Matmul.gemm(transA: false, transB: true, M: N, N: r, K: K, A: x, lda: K, B: a, ldb: K, C: t, ldc: r)
        Matmul.gemm(transA: false, transB: true, M: N, N: O, K: r, alpha: context.scaling, A: t, lda: r, B: b, ldb: r,
                    beta: 1, C: out, ldc: O)
    }

    /// With x̃ = dropout(x) = mask ⊙ x: dinp += mask ⊙ s·(dout·B)·A; dA += s·(dout·B)ᵀ·x̃ and
    /// dB += s·doutᵀ·(x̃·Aᵀ) into the adapter's gradients. The mask is regenerated from its key.
    func backward(_ ctx: BlockContext, piece: Linear, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                  inp: UnsafePointer<Float>) {
        let (N, r, K, O, s) = (ctx.N, m.r, piece.inFeatures, piece.outFeatures, context.scaling)
        let u = UnsafeMutablePointer<Float>.allocate(capacity: max(2 * N * r, 1))
        defer { u.deallocate() }
        let t = u + N * r
        let a = context.weights + m.a, b = context.weights + m.b + piece.outputOffset * r
        Matmul.gemm(transA: false, transB: false, M: N, N: r, K: O, A: dout, lda: O, B: b, ldb: r, C: u, ldc: r)
        var x = inp
        var dropped: UnsafeMutablePointer<Float>?
        defer { dropped?.deallocate() }
        if let d = context.dropout {
            // [N, K] twice: the mask, then the masked input; the gradient through the mask in between.
            let mask = UnsafeMutablePointer<Float>.allocate(capacity: max(2 * N * K, 1))
            dropped = mask
            let partial = mask + N * K
            d.mask(module: m.index, count: N * K, into: mask)
            Matmul.gemm(transA: false, transB: false, M: N, N: K, K: r, alpha: s, A: u, lda: r, B: a, ldb: K, C: partial, ldc: K)
            for i in 0..<N * K { dinp[i] += mask[i] * partial[i] }
            for i in 0..<N * K { partial[i] = mask[i] * inp[i] }
            x = UnsafePointer(partial)
        } else {
            Matmul.gemm(transA: false, transB: false, M: N, N: K, K: r, alpha: s, A: u, lda: r, B: a, ldb: K, beta: 1, C: dinp, ldc: K)
        }
        guard let g = context.grads else { return }
        Matmul.gemm(transA: false, transB: true, M: N, N: r, K: K, A: x, lda: K, B: a, ldb: K, C: t, ldc: r)
        Matmul.gemm(transA: true, transB: false, M: O, N: r, K: N, alpha: s, A: dout, lda: O, B: t, ldb: r, beta: 1,
                    C: g + m.b + piece.outputOffset * r, ldc: r)
        Matmul.gemm(transA: true, transB: false, M: r, N: K, K: N, alpha: s, A: u, lda: r, B: x, ldb: K, beta: 1,
                    C: g + m.a, ldc: K)
    }
}

/// A LoRA adapter for one model: its own parameter layout (PEFT's tensor names, each module in the
/// layer group of the block it adapts, so ZeRO shards and hooks work on it as on a model) and f32
/// buffer. Attached to a model, every targeted `Linear` piece adds its term; the base stays untouched.
public final class LoRAAdapter {
    public private(set) var settings: LoRASettings
    /// Dropout of the adapter input in training: a training knob, not part of the adapter's identity,
    /// so a run may continue an adapter with another rate.
    public var dropout: Double {
        get { settings.dropout }
        set { settings.dropout = newValue }
    }
    public let layout: ParameterLayout
    public let params: FlatBuffer
    let modules: [String: LoRAModule]
    let saved: [SavedTensor]

    public static let prefix = "base_model.model."

    /// The module paths of `model` that `targets` selects (what an adapter with them would adapt).
    public static func modules(of model: TransformerModel, matching targets: LoRASettings.Targets) -> Set<String> {
        let probe = LoRASettings(r: 1, alpha: 1, targets: targets)
        return Set(model.binding.projections.map(\.piece.module).filter { probe.targets($0) })
    }

    /// The module paths this adapter adapts.
    public var adaptedModules: Set<String> { Set(modules.keys) }

    public init(model: TransformerModel, settings: LoRASettings) throws {
        guard settings.r > 0 else { throw AdapterError.badSettings("r must be positive, got \(settings.r)") }
        guard settings.alpha.isFinite, settings.alpha > 0 else { throw AdapterError.badSettings("alpha must be positive, got \(settings.alpha)") }
        guard (0..<1).contains(settings.dropout) else { throw AdapterError.badSettings("dropout must be in [0, 1), got \(settings.dropout)") }
        self.settings = settings
        // One module may be several pieces (fused projections): its in/out sizes from all of them.
        var order: [(module: String, group: Int)] = []
        var sizes: [String: (inFeatures: Int, outFeatures: Int)] = [:]
        for (group, piece) in model.binding.projections {
            let extent = piece.outputOffset + piece.outFeatures
            if let s = sizes[piece.module] {
                sizes[piece.module] = (s.inFeatures, max(s.outFeatures, extent))
            } else {
                sizes[piece.module] = (piece.inFeatures, extent)
                order.append((piece.module, group))
            }
        }
        let chosen = order.filter { settings.targets($0.module) }
        guard !chosen.isEmpty else {
            throw AdapterError.noTargets(settings: settings.targets.description, modules: Array(Set(order.map { String($0.module.split(separator: ".").last!) })).sorted())
        }
        let savedEntries = try Self.savedEntries(model: model, names: settings.modulesToSave)
        // Layer groups must be appended in order: each block's LoRA tensors and saved tensors together.
        var items: [(group: Int, module: String?, entry: ParameterLayout.Entry?)] = chosen.map { ($0.group, $0.module, nil) }
        items += savedEntries.map { ($0.group, nil, $0) }
        items = items.enumerated().sorted { ($0.element.group, $0.offset) < ($1.element.group, $1.offset) }.map(\.element)
        var l = ParameterLayout(groupCount: model.layout.groupCount), modules: [String: LoRAModule] = [:]
        var saved: [SavedTensor] = []
        for item in items {
            if let e = item.entry {
                l.append(Self.prefix + e.name, shape: e.shape, group: e.group)
                saved.append(SavedTensor(base: e.range, copy: l[Self.prefix + e.name]!.offset))
                continue
            }
            let module = item.module!, s = sizes[module]!
            l.append(Self.prefix + module + ".lora_A.weight", shape: [settings.r, s.inFeatures], group: item.group)
            l.append(Self.prefix + module + ".lora_B.weight", shape: [s.outFeatures, settings.r], group: item.group)
            modules[module] = LoRAModule(index: modules.count, a: l[Self.prefix + module + ".lora_A.weight"]!.offset,
                                         b: l[Self.prefix + module + ".lora_B.weight"]!.offset,
                                         r: settings.r, inFeatures: s.inFeatures, outFeatures: s.outFeatures)
        }
        layout = l
        self.modules = modules
        self.saved = saved
        params = FlatBuffer(dtype: .f32, count: l.totalCount)
        // The trained copies start as the base's weights (PEFT deep-copies the module); a base loaded
        // later (deferred) hands them over in `baseLoaded`.
        baseLoaded(0..<model.params.count, from: model)
    }

    /// Whether the saved modules' copies still follow the base (a fresh adapter), rather than holding
    /// trained values (read from an adapter file or a checkpoint).
    public internal(set) var savedCopiesFollowBase = true

    /// The base's weights in `range` are now in `model.params`: fresh saved-module copies take theirs.
    public func baseLoaded(_ range: Range<Int>, from model: TransformerModel) {
        guard savedCopiesFollowBase else { return }
        let base = model.params.raw.assumingMemoryBound(to: Float.self), p = params.raw.assumingMemoryBound(to: Float.self)
        for t in saved where range.contains(t.base.lowerBound) { (p + t.copy).update(from: base + t.base.lowerBound, count: t.base.count) }
    }

    /// The base tensors `modules_to_save` names: every layout entry whose module path is the name or
    /// ends with "." + name (PEFT's suffix match). A tensor the tied head shares is refused.
    static func savedEntries(model: TransformerModel, names: [String]) throws -> [ParameterLayout.Entry] {
        var out: [ParameterLayout.Entry] = []
        for name in names {
            let matches = model.layout.entries.filter { e in
                let module = e.name.split(separator: ".").dropLast().joined(separator: ".")
                return module == name || module.hasSuffix("." + name)
            }
            guard !matches.isEmpty else {
                let modules = Set(model.layout.entries.map { String($0.name.split(separator: ".").dropLast().last ?? "") })
                throw AdapterError.noSavedModule(name: name, modules: modules.sorted())
            }
            if model.isHeadTied, matches.contains(where: { $0.offset == model.binding.headWeight }) {
                throw AdapterError.tiedSavedModule(name: name)
            }
            out += matches.filter { m in !out.contains { $0.name == m.name } }
        }
        return out
    }

    /// PEFT's fresh adapter: A ~ Kaiming-uniform(a = √5), i.e. U(−1/√in, 1/√in), and B = 0, from the
    /// seeded counter RNG.
    public func initializeFresh(seed: UInt64) {
        var rng = CounterRNG(seed: seed, purpose: .initialization)
        let p = params.floats
        for m in modules.values.sorted(by: { $0.a < $1.a }) {
            let bound = 1 / Float(m.inFeatures).squareRoot()
            for i in m.a..<m.a + m.r * m.inFeatures { p[i] = (rng.nextFloat() * 2 - 1) * bound }
            for i in m.b..<m.b + m.outFeatures * m.r { p[i] = 0 }
        }
    }

    /// The context the block pieces read, with `grads` (laid out like `layout`) in training, and the
    /// micro-step's dropout key when training with dropout.
    public func context(grads: FlatBuffer? = nil, dropoutKey: UInt64? = nil) -> AdapterContext {
        var c = AdapterContext(weights: params.raw.assumingMemoryBound(to: Float.self),
                               grads: grads.map { $0.raw.assumingMemoryBound(to: Float.self) }, modules: modules,
                               scaling: settings.scaling, saved: saved)
        if let dropoutKey, settings.dropout > 0 { c.dropout = LoRADropout(p: Float(settings.dropout), key: dropoutKey) }
        return c
    }

    /// The model's weights with the adapter folded in: W += s·B·A per module (nn.Linear [out, in]; a
    /// Conv1D [in, out] weight gets the transpose), computed in f32 as PEFT's merge_and_unload does for
    /// f32 weights.
    public func merge(into model: TransformerModel) {
        let base = model.weightBase, w = params.raw.assumingMemoryBound(to: Float.self), s = settings.scaling
        // merge_and_unload puts the trained copy of a saved module where the original was.
        for t in saved { (base + t.base.lowerBound).update(from: w + t.copy, count: t.base.count) }
        var done = Set<String>()
        for (_, piece) in model.binding.projections where !done.contains(piece.module) {
            guard let m = modules[piece.module] else { continue }
            done.insert(piece.module)
            // The module's whole weight starts where its first piece's rows (or columns) start.
            let weight = base + piece.weight - (piece.layout == .outIn ? piece.outputOffset * piece.inFeatures : piece.outputOffset)
            if piece.layout == .outIn {
                Matmul.gemm(transA: false, transB: false, M: m.outFeatures, N: m.inFeatures, K: m.r, alpha: s, A: w + m.b, lda: m.r,
                            B: w + m.a, ldb: m.inFeatures, beta: 1, C: weight, ldc: m.inFeatures)
            } else {
                Matmul.gemm(transA: true, transB: true, M: m.inFeatures, N: m.outFeatures, K: m.r, alpha: s, A: w + m.a, lda: m.inFeatures,
                            B: w + m.b, ldb: m.r, beta: 1, C: weight, ldc: m.outFeatures)
            }
        }
    }
}
