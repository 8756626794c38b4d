import Distributed
import Models
import Tensors

/// What `TrainingEngine` does differently on a pipeline stage (`pipeline` set). The flat buffers keep
/// the whole model's layout, so every offset, name and range stays the one-process one, but the stage
/// touches only its own layer groups' pages (and a tied embedding's replica on the first stage): weights
/// of other stages' groups are released after start and after every gather, gradients are written and
/// zeroed only in its own groups, and optimizer state is compact (`ShardLayout.ownedGroups`). The step
/// adds the first stage's tied-embedding gradient into the owner's (PipelineTiedEmbedding.swift),
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
