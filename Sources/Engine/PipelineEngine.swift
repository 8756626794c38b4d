import Distributed
import Models
import Tensors

/// What `TrainingEngine` does differently on a pipeline stage (`pipeline` set). The flat buffers keep
/// the whole model's layout, so every offset, name and range stays the one-process one, but the stage
/// touches only its own layer groups' pages: weights of other stages' groups are released after start
/// and after every gather, gradients are written only by its own blocks, and optimizer state is compact
/// (`ShardLayout.ownedGroups`). The step reduces only those groups over the data-parallel group, sums a
/// tied embedding's gradient between the first and last stage, and sums the norm over the stages.
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

    /// Gives back the pages of the weights of other stages' groups (they are not read here until a
    /// gather for evaluation, export or a checkpoint brings them back).
    func releaseForeignParameters() {
        guard pipeline != nil else { return }
        for g in shards.groups where !shards.owns(group: g.group) { trainableParams.release(g.range) }
    }

    /// Tied embeddings: group 0's gradients summed between the first and last stage (DeepSpeed's
    /// `_exec_reduce_tied_grads`), before the data-parallel reduction; both then step the same values.
    func sumTiedGradients() throws {
        guard let p = pipeline, let tied = p.tied, p.isFirst || p.isLast else { return }
        try gradients.sum(trainableLayout.range(ofGroup: 0), over: tied)
    }

    /// After the data-parallel gather: every group's f32 weights from the stage that holds it, so every
    /// rank has the whole model (for export, evaluation and samples; the whole model is resident on every
    /// rank until the next step releases the others' groups). A 16-bit compute copy follows the gathered
    /// groups, so an evaluation reads the same rounded weights as their own stage does.
    func gatherAcrossStages() throws {
        guard let p = pipeline else { return }
        for g in shards.groups where !g.range.isEmpty {
            let owner = p.partition.stage(ofGroup: g.group)
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
        guard let p = pipeline, p.holdsTiedCopy else { return }
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
