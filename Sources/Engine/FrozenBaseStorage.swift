import Distributed
import Models
import Tensors

/// Where the frozen base weights of adapter training live, chosen once in `TrainingEngine.init`.
///
/// LoRA trains the adapter (`TransformerModel.trainableLayout`); the base gets no gradients, no
/// optimizer state and no master copy. Its weights are read, never written, so a 16-bit copy loses
/// nothing beyond the rounding the checkpoint already had (a bf16 checkpoint stored in bf16 is exact).
/// The kernels compute in f32, so with a 16-bit base `model.params` only ever holds the f32 widening
/// of the layer group being used: filled in `willUse`, released in `didUse` (the buffer is
/// mmap-backed, so its pages go back to the system), as mixed precision does for compute weights.
enum FrozenBaseStorage {
    /// Full fine-tuning: the model's weights are the trainable ones (ParameterStorage's business).
    case none
    /// Adapter training with the base in f32, resident in `model.params` at all times.
    case resident
    /// Adapter training with the base as 16-bit words; `ranges` are the model's layer groups.
    case half(words: FlatBuffer, format: HalfFormat, ranges: [Range<Int>])

    /// `dtype` is what the base is stored in: f32, or bf16/f16 (the model's f32 weights are rounded
    /// once here and `model.params` released). `fill`, when given, writes the base's f32 weights of a
    /// range into `model.params` (a deferred load, `TransformerModel.loadDeferred`): it is called one
    /// layer group at a time, so a 16-bit base never has all of its f32 form resident.
    init(model: TransformerModel, dtype: DType, fill: ((Range<Int>) throws -> Void)? = nil) throws {
        guard let adapter = model.adapter else {
            try fill?(0..<model.params.count)
            self = .none
            return
        }
        guard dtype != .f32 else {
            try fill?(0..<model.params.count)
            adapter.baseLoaded(0..<model.params.count, from: model)
            self = .resident
            return
        }
        let format = try HalfFormat(dtype)
        let words = FlatBuffer(dtype: dtype, count: model.params.count)
        let ranges = (0..<model.layout.groupCount).map { model.layout.range(ofGroup: $0) }
        let src = model.params.raw.assumingMemoryBound(to: Float.self), dst = words.raw.assumingMemoryBound(to: UInt16.self)
        for r in ranges {
            try fill?(r)
            adapter.baseLoaded(r, from: model)
            format.store(src + r.lowerBound, count: r.count, into: dst + r.lowerBound)
            model.params.release(r)
        }
        self = .half(words: words, format: format, ranges: ranges)
    }

    /// Whether the schedule must call the hooks for the base's sake.
    var needsHooks: Bool {
        if case .half = self { return true }
        return false
    }

    /// Bytes the base takes between steps (what memory shows of it): the 16-bit copy, or the f32 buffer.
    func byteCount(model: TransformerModel) -> Int {
        switch self {
        case .none: return 0
        case .resident: return model.params.byteCount
        case .half(let words, _, _): return words.byteCount
        }
    }

    /// Group `g`'s base weights into `model.params` as f32.
    func willUse(group g: Int, model: TransformerModel) {
        guard case .half(let words, let format, let ranges) = self, g < ranges.count else { return }
        let r = ranges[g]
        format.load(words.raw.assumingMemoryBound(to: UInt16.self) + r.lowerBound, count: r.count,
                    into: model.params.raw.assumingMemoryBound(to: Float.self) + r.lowerBound)
    }

    func didUse(group g: Int, model: TransformerModel) {
        guard case .half(_, _, let ranges) = self, g < ranges.count else { return }
        model.params.release(ranges[g])
    }

    /// What the inference forward (generation, evaluation) asks for one group at a time; nil when the
    /// base is always resident.
    func residency(model: TransformerModel) -> WeightResidency? {
        guard case .half = self else { return nil }
        return FrozenBaseResidency(storage: self, model: model)
    }
}

/// The 16-bit frozen base seen by the inference forward: a group widened before use, released after.
final class FrozenBaseResidency: WeightResidency {
    let storage: FrozenBaseStorage
    unowned let model: TransformerModel
    init(storage: FrozenBaseStorage, model: TransformerModel) {
        self.storage = storage
        self.model = model
    }
    func willUse(group: Int) { storage.willUse(group: group, model: model) }
    func didUse(group: Int) { storage.didUse(group: group, model: model) }
}
