import Distributed
import Models
import Tensors

/// What `TrainingEngine` does differently on a pipeline stage (`pipeline` set). The flat buffers keep
/// the whole model's layout, so every offset, name and range stays the one-process one, but the stage
/// touches only its own layer groups' pages (and a tied embedding's replica on the first stage): weights
/// of other stages' groups are released after start and after every gather, gradients are written and
/// zeroed only in its own groups, and optimizer state is compact (`ShardLayout.ownedGroups`). The step
/// adds the first stage's tied-embedding gradient into the owner's (`TiedEmbeddingRows` below),
/// reduces the owned groups over the data-parallel group, sums the norm over the stages, and returns the
/// stepped tied weights to the replica.
extension TrainingEngine {
    /// The full-buffer ranges of the groups this rank holds (every group without a pipeline).
    var heldRanges: [Range<Int>] {
        var out: [Range<Int>] = []
        for g in shards.groups where shards.owns(group: g.group) && !g.range.isEmpty {
            if let last = out.last, last.upperBound == g.range.lowerBound {
                out[out.count - 1] = last.lowerBound..<g.range.upperBound
            } else {
                out.append(g.range)
            }
        }
        return out
    }

    var heldElements: Int { heldRanges.reduce(0) { $0 + $1.count } }

    /// Gives back the pages of the weights of other stages' groups, f32 and a 16-bit compute copy's
    /// (they are not read here until a gather for evaluation, export or a checkpoint brings them back).
    func releaseForeignParameters() {
        guard let p = pipeline else { return }
        for g in shards.groups where !p.residentGroups.contains(g.group) {
            trainableParams.release(g.range)
            if case .halfCopy(let words, _, _) = parameters.compute { words.release(g.range) }
        }
    }

    /// Zeroes the gradients this stage accumulates (the whole buffer would make every stage's pages of
    /// it resident): its own groups, and a tied replica's rows, whose pages go back.
    func zeroStageGradients() {
        guard let p = pipeline else { return }
        gradients.zero(heldRanges)
        if p.holdsTiedReplica { grads.release(trainableLayout.range(ofGroup: 0)) }
    }

    /// After the data-parallel gather: every group's f32 weights from the stage that holds it, so every
    /// rank has the whole model (for export, evaluation and samples; the whole model is resident on every
    /// rank until the next step releases the others' groups). A 16-bit compute copy follows the gathered
    /// groups, so an evaluation reads the same rounded weights as their own stage does.
    func gatherAcrossStages() throws {
        guard let p = pipeline else { return }
        for g in shards.groups where !g.range.isEmpty {
            let owner = p.ownerStage(ofGroup: g.group)
            try p.pipeline.broadcast(UnsafeMutableRawPointer(params + g.range.lowerBound), bytes: g.range.count * 4, root: owner)
            if !shards.owns(group: g.group), case .halfCopy(let words, let format, _) = parameters.compute {
                format.store(params + g.range.lowerBound, count: g.range.count,
                             into: words.raw.assumingMemoryBound(to: UInt16.self) + g.range.lowerBound)
            }
        }
    }

    /// A tied head on the last stage has added into group 0's gradients, which `embedBackward` (not run
    /// there) would have finished: finish them, so 16-bit accumulation takes them in.
    func finishTiedHeadGradients() throws {
        guard let p = pipeline, p.ownsTiedWeight else { return }
        try gradientsReady(group: 0)
    }

    /// A training state for one micro-batch in flight, with this engine's hooks.
    func makePipelineState(tokens: Int) -> TrainingState {
        let s = TrainingState(config: model.config, maxTokens: tokens, checkpointActivations: options.activationCheckpointing,
                              activationDType: options.precision.computeDType)
        if usesHooks { s.hooks = self }
        return s
    }
}

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
