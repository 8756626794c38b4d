import Distributed
import Kernels
import Models
import Tensors

/// Mixed precision (`engine.precision: bf16 | fp16`, ARCHITECTURE.md "Precision"). This CPU has no half
/// arithmetic, so kernels compute in f32 and the half formats are what is stored and sent:
///
/// - master weights and optimizer state are f32: `master` (stages 0-2; full for stage 0, this rank's
///   shards for 1 and 2) or `paramShards` (stage 3);
/// - compute weights are half: `computeWeights` holds them for stages 1 and 2 (updated by a 16-bit
///   all-gather after each step); stage 0 rounds master itself and stage 3 rounds its shards before a
///   16-bit gather. Either way `model.params` only ever holds the f32 widening of the group being used,
///   filled in `willUse` and released in `didUse`, as PyTorch's autocast casts a weight per use;
/// - saved activations are half (`TrainingState.activationDType`);
/// - gradients are computed in f32 per group, then rounded: accumulated into `halfGrads` (stages 0-1,
///   all-reduced in 16 bits before the step) or rounded into the 16-bit reduce-scatter (stages 2-3).
///   bf16 accumulation rounds once per micro-batch; DeepSpeed's BF16_Optimizer keeps an f32 accumulator
///   instead (4 bytes per parameter more).
/// - fp16 scales the loss by the `LossScaler`'s scale (the normalizer is divided by it), checks the
///   gradients for inf/NaN, agrees on the flag across ranks (MAX), and either skips the step (no optimizer
///   or scheduler step) or unscales and clips in one multiplication as DeepSpeed's FP16_Optimizer does.
extension TrainingEngine {
    var isMixed: Bool { computeFormat != nil }

    /// `model.params` holds full f32 weights on every rank (after the start broadcast or a checkpoint
    /// load): keep them as master (and compute) weights in this rank's storage, and release the full buffer.
    func adoptMixedParameters() {
        guard let format = computeFormat else { return }
        let full = params
        if let master {
            if stage == 0 {
                master.raw.assumingMemoryBound(to: Float.self).update(from: full, count: master.count)
            } else {
                copyOwnedSlices(from: full, into: master)
            }
        }
        if let computeWeights {
            format.store(full, count: computeWeights.count, into: computeWeights.raw.assumingMemoryBound(to: UInt16.self))
        }
        // Stage 3's shards were taken by the caller.
        releaseFullParameters()
    }

    /// Fills `model.params` with the f32 master weights of every group (export, checkpoints). Collective
    /// for stages 1-3.
    func gatherMixedMaster() throws {
        if let master {
            if stage == 0 {
                params.update(from: master.raw.assumingMemoryBound(to: Float.self), count: master.count)
            } else {
                for g in shards.groups { try collectives.allGather(group: g.group, local: master.raw.assumingMemoryBound(to: Float.self), into: params) }
            }
        } else if let paramShards {
            for g in shards.groups { try collectives.allGather(group: g.group, local: paramShards.raw.assumingMemoryBound(to: Float.self), into: params) }
        }
    }

    /// The compute weights of `group` (half values, widened) into `model.params`. Collective for stage 3.
    func materializeComputeWeights(group g: Int) throws {
        guard let format = computeFormat else { return }
        let range = shards.groups[g].range
        if let computeWeights {
            format.load(computeWeights.raw.assumingMemoryBound(to: UInt16.self) + range.lowerBound, count: range.count,
                        into: params + range.lowerBound)
        } else if let master {
            format.roundTrip(master.raw.assumingMemoryBound(to: Float.self) + range.lowerBound, count: range.count,
                             into: params + range.lowerBound)
        } else if let paramShards {
            try pageInParamShard(group: g)
            let full = params
            try collectives.allGatherHalf(group: g, local: paramShards.raw.assumingMemoryBound(to: Float.self), format: format) { start, words, count in
                format.load(words, count: count, into: full + start)
            }
        }
    }

    /// After backward of `group`: its f32 gradients (this micro-batch) into the half accumulator or the
    /// 16-bit reduce-scatter, then the f32 pages are released.
    func mixedGradientsReady(group g: Int) throws {
        guard let format = computeFormat else { return }
        let range = shards.groups[g].range
        let full = grads.raw.assumingMemoryBound(to: Float.self)
        if let halfGrads {
            format.accumulate(full + range.lowerBound, count: range.count,
                              into: halfGrads.raw.assumingMemoryBound(to: UInt16.self) + range.lowerBound)
        } else if let gradShards {
            try collectives.reduceScatterHalf(group: g, full: full, addInto: gradShards.raw.assumingMemoryBound(to: Float.self), format: format)
        }
        grads.release(range)
    }

    /// Elements converted per chunk when the step reads 16-bit gradients.
    static var mixedStepChunk: Int { 1 << 18 }

    /// Calls `body(rangeIndex, offset within the range, f32 gradients, count)` over this rank's gradients
    /// of every step range, widening 16-bit gradients chunk by chunk into `stepScratch`; f32 gradient
    /// shards are handed out in place (and may be modified).
    func forEachGradientChunk(_ body: (Int, Int, UnsafeMutablePointer<Float>, Int) -> Void) {
        if let halfGrads, let format = computeFormat, let stepScratch {
            let words = halfGrads.raw.assumingMemoryBound(to: UInt16.self)
            let scratch = stepScratch.raw.assumingMemoryBound(to: Float.self)
            for (i, s) in stepRanges.enumerated() {
                var offset = 0
                while offset < s.full.count {
                    let n = Swift.min(Self.mixedStepChunk, s.full.count - offset)
                    format.load(words + s.full.lowerBound + offset, count: n, into: scratch)
                    body(i, offset, scratch, n)
                    offset += n
                }
            }
        } else if let gradShards {
            let base = gradShards.raw.assumingMemoryBound(to: Float.self)
            for (i, s) in stepRanges.enumerated() where !s.full.isEmpty { body(i, 0, base + s.local, s.full.count) }
        }
    }

    func mixedStep(lr: Double, maxGradNorm: Double?) throws -> OptimizerStepResult {
        guard let format = computeFormat else { preconditionFailure("mixedStep without a half format") }
        if let halfGrads, communicator.worldSize > 1 {
            try communicator.allReduce(halves: halfGrads.raw.assumingMemoryBound(to: UInt16.self), count: halfGrads.count, format: format)
        }
        var sum = 0.0
        forEachGradientChunk { _, _, g, n in sum += GradientClipping.partialSumOfSquares(UnsafeBufferPointer(start: g, count: n), ranges: [0..<n]) }
        // Stage 0 and 1 ranks hold the whole (identical) reduced gradient but step disjoint pieces only
        // from stage 1 on; stage 0 steps everything, so its sum is already global.
        if stage > 0 && communicator.worldSize > 1 { sum = try communicator.allReduce(sum, op: .sum) }
        var overflow = !sum.isFinite
        if communicator.worldSize > 1 { overflow = try communicator.any(overflow) }
        let scale = lossScaler?.scale ?? 1
        if lossScaler != nil {
            if try lossScaler!.update(overflow: overflow) { return OptimizerStepResult(gradNorm: nil, skipped: true) }
        }
        // DeepSpeed's FP16_Optimizer.unscale_and_clip_grads: one factor that unscales and clips.
        let scaledNorm = sum.squareRoot()
        let norm = scaledNorm / scale
        var combined = scale
        if let maxNorm = maxGradNorm, maxNorm > 0 {
            let clip = (norm + 1e-6) / maxNorm
            if clip > 1 { combined = clip * scale }
        }
        let factor = Float(1 / combined)
        stepsTaken += 1
        let step = stepsTaken
        let words = computeWeights?.raw.assumingMemoryBound(to: UInt16.self)
        let gradWords = halfGrads?.raw.assumingMemoryBound(to: UInt16.self)
        let scratch = stepScratch?.raw.assumingMemoryBound(to: Float.self)
        let shardBase = gradShards?.raw.assumingMemoryBound(to: Float.self)
        try forEachStateChunk(chunk: Self.mixedStepChunk) { c in
            let s = stepRanges[c.index]
            let g: UnsafeMutablePointer<Float>
            if let gradWords, let scratch {
                format.load(gradWords + s.full.lowerBound + c.offset, count: c.count, into: scratch)
                g = scratch
            } else {
                g = shardBase! + s.local + c.offset
            }
            if factor != 1 { GradientClipping.scale(g, count: c.count, by: factor) }
            applyOptimizer(c, grads: g, lr: lr, step: step)
            // The stepped master chunk, rounded, is this rank's part of the compute weights.
            if let words { format.store(c.weights, count: c.count, into: words + s.full.lowerBound + c.offset) }
        }
        // Stages 1 and 2: every rank's freshly rounded shard goes to everyone.
        if let computeWeights, stage == 1 || stage == 2, communicator.worldSize > 1 {
            for g in shards.groups { try collectives.allGatherHalfInPlace(group: g.group, words: computeWeights.raw.assumingMemoryBound(to: UInt16.self)) }
        }
        return OptimizerStepResult(gradNorm: norm, skipped: false)
    }
}
