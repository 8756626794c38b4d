import Distributed
import Models
import Tensors

/// A tied embedding across a pipeline: one logical weight, one optimizer state, on the last stage (its
/// owner, whose LM head writes the weight's dense gradient). The first stage holds a replica of the
/// compute weights only, to embed with. Per step:
///
/// 1. the first stage's gradient contribution goes to the owner, which adds it to its own: only the
///    elements its embedding backward can have written, the rows of the step's tokens (both stages read
///    the same micro-batches, so both know them without sending ids) and the rest of layer group 0
///    (learned position embeddings, say) whole. At the 135M shape that is at most 2 048 rows of 576,
///    4.7 MB, where summing the whole table moved 113 MB each way;
/// 2. the owner steps group 0 like any group it owns (clipping counts it once: no other stage has a
///    step range in it);
/// 3. the stepped compute weights (f32, or the 16-bit copy) go back to the first stage.
///
/// The replica's gradient stays in f32 across the step's micro-batches (its 16-bit accumulation would
/// round a table it does not step); the owner adds it once, into f32 or by one rounding into its 16-bit
/// accumulator, where one process rounds per micro-batch.
struct TiedEmbeddingRows {
    /// Full-buffer ranges of group 0 the first stage's backward writes in one step, ascending, disjoint.
    let ranges: [Range<Int>]
    var count: Int { ranges.reduce(0) { $0 + $1.count } }

    static let none = TiedEmbeddingRows(ranges: [])

    private init(ranges: [Range<Int>]) { self.ranges = ranges }

    /// The token embedding is group 0's `[vocab, hidden]` entry; a layout without one exchanges the
    /// whole group.
    init(layout: ParameterLayout, config: TransformerConfig, batches: [MicroBatch?]) {
        let group = layout.range(ofGroup: 0)
        let H = config.hiddenSize, V = config.vocabSize
        guard let table = layout.entries.first(where: { $0.group == 0 && $0.shape == [V, H] }) else {
            ranges = group.isEmpty ? [] : [group]
            return
        }
        var seen = [Bool](repeating: false, count: V)
        for case let b? in batches { for t in b.tokens where t >= 0 && Int(t) < V { seen[Int(t)] = true } }
        var out: [Range<Int>] = []
        func append(_ r: Range<Int>) {
            guard !r.isEmpty else { return }
            if let last = out.last, last.upperBound == r.lowerBound { out[out.count - 1] = last.lowerBound..<r.upperBound } else { out.append(r) }
        }
        append(group.lowerBound..<table.range.lowerBound)
        for t in 0..<V where seen[t] { append(table.range.lowerBound + t * H..<table.range.lowerBound + (t + 1) * H) }
        append(table.range.upperBound..<group.upperBound)
        ranges = out
    }
}

extension TrainingEngine {
    /// Before the step (first and last stage of a tied pipeline): the first stage sends its rows of
    /// group 0's gradients to the owner and drops them; the owner adds them into its gradient storage
    /// (not yet reduced over the data-parallel group, which then reduces the sum).
    func sumTiedGradients() throws {
        guard let p = pipeline, let tied = p.tied, p.holdsTiedReplica || p.ownsTiedWeight else { return }
        let rows = tiedRows
        let n = rows.count
        guard n > 0 else { return }
        let buffer = FlatBuffer(dtype: .f32, count: n)
        let packed = buffer.raw.assumingMemoryBound(to: Float.self)
        let g = grads.raw.assumingMemoryBound(to: Float.self)
        if p.holdsTiedReplica {
            var offset = 0
            for r in rows.ranges {
                (packed + offset).update(from: g + r.lowerBound, count: r.count)
                offset += r.count
            }
            try tied.startSend(UnsafeRawPointer(packed), bytes: n * 4, to: p.tiedOwnerRank, tag: 0).wait()
            grads.release(trainableLayout.range(ofGroup: 0))
            return
        }
        try tied.startReceive(UnsafeMutableRawPointer(packed), bytes: n * 4, from: 1 - p.tiedOwnerRank, tag: 0).wait()
        var offset = 0
        for r in rows.ranges {
            switch gradients {
            case .full:
                let dst = g + r.lowerBound
                for i in 0..<r.count { dst[i] += packed[offset + i] }
            case .accumulatedHalf(let words, let format, _):
                format.accumulate(packed + offset, count: r.count, into: words.raw.assumingMemoryBound(to: UInt16.self) + r.lowerBound)
            case .reduceScattered:
                throw PipelineError.unsupported("a tied embedding with reduce-scattered gradients (ZeRO-2/3 do not compose with a pipeline)")
            }
            offset += r.count
        }
    }

    /// After the step: the owner's stepped compute weights of group 0 to the first stage's replica.
    func publishTiedWeights() throws {
        guard let p = pipeline, let tied = p.tied, p.holdsTiedReplica || p.ownsTiedWeight else { return }
        let range = trainableLayout.range(ofGroup: 0)
        switch parameters.compute {
        case .halfCopy(let words, _, _):
            try tied.broadcast(UnsafeMutableRawPointer(words.raw.assumingMemoryBound(to: UInt16.self) + range.lowerBound),
                               bytes: range.count * 2, root: p.tiedOwnerRank)
        default:
            try tied.broadcast(UnsafeMutableRawPointer(params + range.lowerBound), bytes: range.count * 4, root: p.tiedOwnerRank)
        }
    }

    /// Bytes the first stage holds for a tied replica between steps: its compute weights, and the f32
    /// gradient rows of the last step's tokens (0 before the first step; elsewhere 0).
    var tiedReplicaBytes: Int {
        guard let p = pipeline, p.holdsTiedReplica else { return 0 }
        let weightBytes: Int
        if case .halfCopy = parameters.compute { weightBytes = 2 } else { weightBytes = 4 }
        return trainableLayout.range(ofGroup: 0).count * weightBytes + tiedRows.count * 4
    }
}
