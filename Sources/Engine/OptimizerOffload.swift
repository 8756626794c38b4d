import Distributed
import Kernels
import Tensors

/// NVMe offload (`engine.offload_optimizer: {device: nvme, path}`, and ZeRO-3's `offload_param`): the
/// optimizer moments, mixed precision's f32 master weights, and with `offload_param` stage 3's weight
/// shards have their home in an `OffloadStore` under `path/rank<R>`. Their in-memory FlatBuffers stay
/// allocated as address space only (mmap, released): the optimizer step streams the arrays through the
/// store's bounded buffer chunk by chunk (reads ahead and writes behind on its I/O thread), and the rare
/// whole-array uses (start, checkpoints, export) page them in and out around themselves.
///
/// With f32 compute the master weights are `model.params` itself and are not offloaded; with mixed
/// precision the compute weights that forward reads stay in memory (`ComputeWeights.halfCopy`),
/// refreshed from each streamed master chunk. ZeRO-3 with `offload_param` reads a group's shard from
/// the store right before gathering it and drops it after use (no prefetch). Which arrays go where is
/// `ParameterStorage`'s table; this tier, chosen once in `TrainingEngine.init`, lists them.
enum OffloadTier {
    case inMemory
    /// The arrays whose home is `store`, in the store's order, with their in-memory views.
    case nvme(OffloadStore, arrays: [(name: String, buffer: FlatBuffer)])
}

extension TrainingEngine {
    /// NVMe offload's store, nil when everything is in memory.
    public var offloadStore: OffloadStore? {
        if case .nvme(let store, _) = offload { return store }
        return nil
    }

    /// This rank's store under the offload path, `names` arrays of `count` elements, streamed through a
    /// bounded buffer of the configured size: 3 slots (computing, reading ahead, writing behind) per array.
    static func openOffloadStore(options: EngineOptions, rank: Int, names: [String], count: Int) throws -> OffloadStore {
        let optimizerOffload = options.offloadOptimizer.device == .nvme
        let root = options.offloadOptimizer.path ?? options.offloadParam.path!
        let bufferBytes = optimizerOffload ? options.offloadOptimizer.bufferSize : options.offloadParam.bufferSize
        let chunk = Swift.max(4096, bufferBytes / (4 * 3 * names.count))
        return try OffloadStore(directory: root + "/rank\(rank)", names: names, count: count, chunkElements: chunk)
    }

    /// The arrays offload keeps in the store, with their in-memory views, in the store's order.
    var offloadedArrays: [(name: String, buffer: FlatBuffer)] {
        if case .nvme(_, let arrays) = offload { return arrays }
        return []
    }

    /// Copies every offloaded array from the store into its in-memory view (before a whole-array use).
    func pageInOffloaded() throws {
        guard case .nvme(let store, let arrays) = offload else { return }
        for (name, buffer) in arrays {
            try store.read(name, into: buffer.raw.assumingMemoryBound(to: Float.self), range: 0..<buffer.count)
        }
    }

    /// Writes every offloaded array's in-memory view to the store and releases its pages.
    func pageOutOffloaded() throws {
        guard case .nvme(let store, let arrays) = offload else { return }
        for (name, buffer) in arrays {
            try store.write(name, from: buffer.raw.assumingMemoryBound(to: Float.self), range: 0..<buffer.count)
            buffer.release(0..<buffer.count)
        }
    }

    /// Drops the in-memory copies without writing them back (they were only read).
    func dropOffloadedPages() {
        for (_, buffer) in offloadedArrays { buffer.release(0..<buffer.count) }
    }

    /// Only the offloaded weight array (master copy or ZeRO-3 shards) in, for gathering full parameters.
    func pageInWeights() throws {
        guard case .offloaded(let store, let name) = parameters.master.residence else { return }
        let buffer = parameters.master.buffer
        try store.read(name, into: buffer.raw.assumingMemoryBound(to: Float.self), range: 0..<buffer.count)
    }

    func dropOffloadedWeights() {
        guard case .offloaded = parameters.master.residence else { return }
        parameters.master.buffer.release(0..<parameters.master.buffer.count)
    }

    /// One chunk of the optimizer step: step range `index`, `offset` elements into it, `count` long,
    /// with the weights and moments to update (in memory, or in the store's buffer when offloaded).
    struct StateChunk {
        var index: Int
        var offset: Int
        var count: Int
        var weights: UnsafeMutablePointer<Float>
        var expAvg: UnsafeMutablePointer<Float>
        var expAvgSq: UnsafeMutablePointer<Float>?
    }

    /// Calls `body` for every chunk of every step range in order: from the store's stream when state is
    /// offloaded, else from memory in chunks of `chunk` elements (chunking changes no result: the
    /// optimizer is elementwise).
    func forEachStateChunk(chunk: Int, _ body: (StateChunk) throws -> Void) throws {
        let master = parameters.master
        let m = firstMoment.raw.assumingMemoryBound(to: Float.self)
        let v = secondMoment?.raw.assumingMemoryBound(to: Float.self)
        switch offload {
        case .inMemory:
            for (i, s) in stepRanges.enumerated() {
                var offset = 0
                while offset < s.full.count {
                    let n = Swift.min(chunk, s.full.count - offset)
                    try body(StateChunk(index: i, offset: offset, count: n, weights: master.weights(s) + offset,
                                        expAvg: m + s.local + offset, expAvgSq: v.map { $0 + s.local + offset }))
                    offset += n
                }
            }
        case .nvme(let store, _):
            let names = store.names
            let mIndex = names.firstIndex(of: "exp_avg")!, vIndex = names.firstIndex(of: "exp_avg_sq")
            var wIndex: Int?
            if case .offloaded(_, let name) = master.residence { wIndex = names.firstIndex(of: name) }
            let ranges = stepRanges.map(\.localRange).filter { !$0.isEmpty }
            var i = 0
            try store.stream(ranges) { r, arrays in
                while !stepRanges[i].localRange.contains(r.lowerBound) { i += 1 }
                let s = stepRanges[i], offset = r.lowerBound - s.local
                try body(StateChunk(index: i, offset: offset, count: r.count,
                                    weights: wIndex.map { arrays[$0] } ?? master.weights(s) + offset,
                                    expAvg: arrays[mIndex], expAvgSq: vIndex.map { arrays[$0] }))
            }
        }
    }

    /// The optimizer update of one chunk, with its gradients `g` (already unscaled and clipped).
    func applyOptimizer(_ c: StateChunk, grads g: UnsafeMutablePointer<Float>, lr: Double, step: Int) {
        let s = stepRanges[c.index]
        switch optimizer {
        case .adamw(let b1, let b2, let eps, _):
            let k = AdamWCoefficients(lr: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: s.weightDecay, step: step)
            AdamW.step(AdamWRange(params: c.weights, grads: g, expAvg: c.expAvg, expAvgSq: c.expAvgSq!, count: c.count), k)
        case .sgd(let momentum, let dampening, _, let nesterov):
            let k = SGDCoefficients(lr: lr, momentum: momentum, dampening: dampening, weightDecay: s.weightDecay, nesterov: nesterov)
            SGD.step(SGDRange(params: c.weights, grads: g, momentumBuffer: momentum != 0 ? c.expAvg : nil, count: c.count), k,
                     isFirstStep: step == 1)
        }
    }
}
