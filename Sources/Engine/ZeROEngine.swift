import Distributed
import Kernels
import Models
import Tensors

/// One piece of a parameter group this rank steps: its range in the full buffers and where it starts in
/// the optimizer-state (and, for stages 2/3, gradient and weight) shard buffers.
struct StepRange {
    var weightDecay: Double
    var full: Range<Int>
    var local: Int
    var localRange: Range<Int> { local..<local + full.count }
}

/// The data-parallel and ZeRO parts of `TrainingEngine`: partitioning at start, the per-group hooks
/// backward calls (what they do is `parameters.compute`'s and `gradients`' choice: stage 2's
/// reduce-scatter, stage 3's gather/release, mixed precision's widening and rounding), and the collective
/// optimizer step.
///
/// Memory, per stage, besides the model-state figures `modelStateBytes` reports:
/// - stage 2 keeps `grads` as an mmap-backed buffer; a group's pages hold gradients only from its
///   backward until its reduce-scatter (a tied embedding's from the head phase to the end of backward).
/// - stage 3 keeps `trainableParams` as an mmap-backed buffer whose pages are resident only while a group
///   is gathered (between `willUse` and `didUse`), plus partial pages at group edges, and one padded
///   block group of prefetch scratch (`ComputeWeights.gathered`, resident from the first prefetch on).
extension TrainingEngine: TrainingHooks {
    static func stepRanges(groups: ParameterGroups, shards: ShardLayout, partitioned: Bool, total: Int) -> [StepRange] {
        // Unpartitioned ranges are still cut at group boundaries, so the gradient norm's partial sums
        // (and so every bit of the step) are the same as one rank's under ZeRO.
        guard partitioned else {
            return shards.groups.flatMap { g in
                groups.segments(within: g.range).map {
                    StepRange(weightDecay: $0.weightDecay, full: $0.range, local: $0.range.lowerBound)
                }
            }
        }
        var out: [StepRange] = []
        for g in shards.groups {
            let owned = shards.ownedRange(group: g.group)
            for s in groups.segments(within: owned) {
                out.append(StepRange(weightDecay: s.weightDecay, full: s.range,
                                     local: g.localOffset + s.range.lowerBound - owned.lowerBound))
            }
        }
        return out
    }

    var stage: Int { partitionStage }

    /// Every rank starts from rank 0's weights (DeepSpeed broadcasts them too); stage 3 then keeps only
    /// its shards and releases the full buffer.
    func startPartitioning() throws {
        if communicator.worldSize > 1 {
            try communicator.broadcast(trainableParams.raw, bytes: trainableParams.byteCount, root: 0)
        }
        try adoptFullParameters()
    }

    /// Whether backward must call the hooks: compute weights that are not always in `trainableParams`, or
    /// gradients that leave `grads` group by group.
    var usesHooks: Bool {
        if frozenBase.needsHooks { return true }
        switch (parameters.compute, gradients) {
        case (.resident, .full): return false
        default: return true
        }
    }

    // MARK: Hooks

    /// The group's compute weights into `trainableParams`: gathered (f32 or 16-bit, stage 3), widened from
    /// the 16-bit copy, or rounded from the master. Collective at stage 3.
    public func willUse(group: Int, backward: Bool) throws {
        frozenBase.willUse(group: group, model: model)
        let range = shards.groups[group].range
        switch parameters.compute {
        case .resident:
            return
        case .gathered(let s, let scratch):
            try gather(group: group, backward: backward, from: s, prefetchScratch: scratch)
        case .rounded(let master, let format):
            format.roundTrip(master.raw.assumingMemoryBound(to: Float.self) + range.lowerBound, count: range.count,
                             into: params + range.lowerBound)
        case .halfCopy(let words, let format, _):
            format.load(words.raw.assumingMemoryBound(to: UInt16.self) + range.lowerBound, count: range.count,
                        into: params + range.lowerBound)
        case .halfGathered(let s, let format):
            try s.pageIn(shards.groups[group])
            let full = params
            try collectives.allGatherHalf(group: group, local: s.floats, format: format) { start, words, count in
                format.load(words, count: count, into: full + start)
            }
        }
    }

    /// Stage 3 in f32: the group's weights from the prefetch when one is in flight for it, else by a
    /// blocking gather; then, with `prefetch`, the next block group's gather starts. Only block groups
    /// 1...L are prefetched (the embedding and head groups are used once per direction), one at a time,
    /// into the scratch, never into `trainableParams`: so a prefetch of l-1 cannot touch group l while
    /// backward (or its activation-checkpointing recompute) reads it.
    private func gather(group: Int, backward: Bool, from s: ParameterShards, prefetchScratch: FlatBuffer?) throws {
        try s.pageIn(shards.groups[group])
        if let f = inFlight, f.group == group, let scratch = prefetchScratch {
            inFlight = nil
            try f.pending.wait()
            collectives.finishGather(group: group, scratch: scratch.raw.assumingMemoryBound(to: Float.self), into: params)
        } else {
            try finishPrefetch()
            try collectives.allGather(group: group, local: s.floats, into: params)
        }
        let blocks = 1...model.config.numLayers
        let next = backward ? group - 1 : group + 1
        if prefetch, let scratch = prefetchScratch, blocks.contains(group), blocks.contains(next) {
            let pending = try collectives.startGather(group: next, local: s.floats,
                                                      scratch: scratch.raw.assumingMemoryBound(to: Float.self))
            inFlight = (next, pending)
        }
    }

    public func didUse(group: Int, backward: Bool) throws {
        frozenBase.didUse(group: group, model: model)
        let g = shards.groups[group]
        switch parameters.compute {
        case .resident:
            return
        case .gathered(let s, _):
            s.release(g)
            // Open MPI advances a non-blocking collective mostly inside MPI calls: give it one here.
            try inFlight?.pending.progress()
        case .halfGathered(let s, _):
            s.release(g)
        case .rounded, .halfCopy:
            break
        }
        trainableParams.release(g.range)
    }

    /// Completes and discards a prefetch nobody consumed, so the shards it reads may change and the
    /// scratch may be reused. Every rank reaches the same state, so all wait together.
    func finishPrefetch() throws {
        guard let f = inFlight else { return }
        inFlight = nil
        try f.pending.wait()
    }

    public func gradientsReady(group: Int) throws {
        // A tied replica's rows stay f32 until the owner adds them (PipelineEngine.swift).
        if group == 0, pipeline?.holdsTiedReplica == true { return }
        try gradients.groupReady(shards.groups[group], grads: grads, collectives: collectives)
    }

    // MARK: Optimizer step

    /// Reduce, norm, then (clipped, or unscaled and clipped) AdamW/SGD chunk by chunk over this rank's
    /// step ranges, the compute weights following each stepped chunk; ranks that stepped only their
    /// shards of full compute weights then exchange them.
    func distributedStep(lr: Double, maxGradNorm: Double?) throws -> OptimizerStepResult {
        // The step rewrites the shards a prefetch would read.
        try finishPrefetch()
        try sumTiedGradients()
        try gradients.reduceAcrossRanks(communicator, ranges: pipeline.map { _ in heldRanges })
        var sum = 0.0
        gradients.forEachRangeChunk(stepRanges) { g, n in
            sum += GradientClipping.partialSumOfSquares(UnsafeBufferPointer(start: g, count: n), ranges: [0..<n])
        }
        // Stage 0 ranks hold every (identical) gradient; partitioned ranks hold disjoint pieces.
        if stage > 0 && communicator.worldSize > 1 { sum = try communicator.allReduce(sum, op: .sum) }
        // Pipeline stages hold disjoint groups: the global norm sums over them too.
        if let pipeline { sum = try pipeline.pipeline.allReduce(sum, op: .sum) }
        let factor: Float?, norm: Double, chunk: Int
        switch options.precision {
        case .f32:
            let n = GradientClipping.finish(sumOfSquares: sum)
            // PyTorch multiplies by the clip coefficient whenever clipping is on, even when it is 1.
            factor = maxGradNorm.flatMap { $0 > 0 ? GradientClipping.coefficient(norm: n, maxNorm: $0) : nil }
            norm = Double(n)
            chunk = Int.max
        case .bf16, .fp16:
            guard let unscale = try mixedUnscaleAndClip(sumOfSquares: sum, maxGradNorm: maxGradNorm) else {
                return OptimizerStepResult(gradNorm: nil, skipped: true)
            }
            factor = unscale.factor
            norm = unscale.norm
            chunk = GradientStorage.halfChunk
        }
        stepsTaken += 1
        let step = stepsTaken
        try forEachStateChunk(chunk: chunk) { c in
            let g = gradients.chunk(stepRanges[c.index], offset: c.offset, count: c.count)
            if let factor { GradientClipping.scale(g, count: c.count, by: factor) }
            applyOptimizer(c, grads: g, lr: lr, step: step)
            refreshComputeWeights(c)
        }
        try publishSteppedWeights()
        try publishTiedWeights()
        return OptimizerStepResult(gradNorm: norm, skipped: false)
    }
}
