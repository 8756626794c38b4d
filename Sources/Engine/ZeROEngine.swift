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
/// backward calls (stage 2 reduce-scatter, stage 3 gather/release), and the collective optimizer step.
///
/// Memory, per stage, besides the model-state figures `modelStateBytes` reports:
/// - stage 2 keeps `grads` as an mmap-backed buffer; a group's pages hold gradients only from its
///   backward until its reduce-scatter (a tied embedding's from the head phase to the end of backward).
/// - stage 3 keeps `model.params` as an mmap-backed buffer whose pages are resident only while a group
///   is gathered (between `willUse` and `didUse`), plus partial pages at group edges, and one padded
///   block group of prefetch scratch (`prefetchScratch`, resident from the first prefetch on).
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

    var stage: Int { options.zeroStage }
    var params: UnsafeMutablePointer<Float> { model.params.raw.assumingMemoryBound(to: Float.self) }
    private var fullGrads: UnsafeMutablePointer<Float> { grads.raw.assumingMemoryBound(to: Float.self) }

    /// Every rank starts from rank 0's weights (DeepSpeed broadcasts them too); stage 3 then keeps only
    /// its shards and releases the full buffer.
    func startPartitioning() throws {
        if communicator.worldSize > 1 {
            try communicator.broadcast(model.params.raw, bytes: model.params.byteCount, root: 0)
        }
        try adoptFullParameters()
    }

    /// `model.params` holds full f32 weights on every rank: keep what this rank's storage holds (stage 3
    /// and mixed precision then release the full buffer).
    func adoptFullParameters() throws {
        if let paramShards {
            copyOwnedSlices(from: params, into: paramShards)
            releaseFullParameters()
        }
        adoptMixedParameters()
        try pageOutOffloaded()
    }

    /// This rank's owned slices of a full-size buffer into a compact shard buffer.
    func copyOwnedSlices(from full: UnsafePointer<Float>, into local: FlatBuffer) {
        let dst = local.raw.assumingMemoryBound(to: Float.self)
        for g in shards.groups {
            let owned = shards.ownedRange(group: g.group)
            (dst + g.localOffset).update(from: full + owned.lowerBound, count: owned.count)
        }
    }

    /// Stage 3: every group's full weights into `model.params` (for export, evaluation or inspection).
    /// Collective. They stay resident until the next training micro-step releases them group by group.
    public func gatherFullParameters() throws {
        try pageInWeights()
        defer { dropOffloadedWeights() }
        if isMixed { return try gatherMixedMaster() }
        guard let paramShards else { return }
        try finishPrefetch()
        for g in shards.groups { try collectives.allGather(group: g.group, local: paramShards.raw.assumingMemoryBound(to: Float.self), into: params) }
    }

    func releaseFullParameters() {
        for g in shards.groups { model.params.release(g.range) }
    }

    // MARK: Hooks (stages 2 and 3)

    /// Stage 3: the group's weights into `model.params`, from the prefetch when one is in flight for
    /// it, else by a blocking gather; then, with `prefetch`, the next block group's gather starts. Only
    /// block groups 1...L are prefetched (the embedding and head groups are used once per direction), one
    /// at a time, into `prefetchScratch`, never into `model.params`: so a prefetch of l-1 cannot touch
    /// group l while backward (or its activation-checkpointing recompute) reads it.
    public func willUse(group: Int, backward: Bool) throws {
        if isMixed { return try materializeComputeWeights(group: group) }
        guard let paramShards else { return }
        try pageInParamShard(group: group)
        let local = paramShards.raw.assumingMemoryBound(to: Float.self)
        if let f = inFlight, f.group == group, let scratch = prefetchScratch {
            inFlight = nil
            try f.pending.wait()
            collectives.finishGather(group: group, scratch: scratch.raw.assumingMemoryBound(to: Float.self), into: params)
        } else {
            try finishPrefetch()
            try collectives.allGather(group: group, local: local, into: params)
        }
        let blocks = 1...model.config.numLayers
        let next = backward ? group - 1 : group + 1
        if prefetch, let scratch = prefetchScratch, blocks.contains(group), blocks.contains(next) {
            let pending = try collectives.startGather(group: next, local: local,
                                                      scratch: scratch.raw.assumingMemoryBound(to: Float.self))
            inFlight = (next, pending)
        }
    }

    public func didUse(group: Int, backward: Bool) throws {
        releaseParamShard(group: group)
        if isMixed { return model.params.release(shards.groups[group].range) }
        guard stage == 3 else { return }
        // Open MPI advances a non-blocking collective mostly inside MPI calls: give it one here.
        try inFlight?.pending.progress()
        model.params.release(shards.groups[group].range)
    }

    /// Completes and discards a prefetch nobody consumed, so the shards it reads may change and the
    /// scratch may be reused. Every rank reaches the same state, so all wait together.
    func finishPrefetch() throws {
        guard let f = inFlight else { return }
        inFlight = nil
        try f.pending.wait()
    }

    public func gradientsReady(group: Int) throws {
        if isMixed { return try mixedGradientsReady(group: group) }
        guard let gradShards else { return }
        try collectives.reduceScatter(group: group, full: fullGrads, addInto: gradShards.raw.assumingMemoryBound(to: Float.self))
        grads.release(shards.groups[group].range)
    }

    /// A rank without tokens in a ZeRO-2/3 micro-step still takes part in every collective the others
    /// run, in the order `lossAndGradients` runs them, contributing zero gradients.
    func emptyMicroStep() throws -> (lossSum: Double, labelTokens: Int) {
        let L = model.config.numLayers
        let tied = model.layout["lm_head.weight"] == nil
        for g in 0...L { try willUse(group: g, backward: false); try didUse(group: g, backward: false) }
        let head = tied ? [L + 1, 0] : [L + 1]
        for g in head { try willUse(group: g, backward: false) }
        for g in head { try didUse(group: g, backward: false) }
        try gradientsReady(group: L + 1)
        for g in stride(from: L, through: 1, by: -1) {
            try willUse(group: g, backward: true); try didUse(group: g, backward: true); try gradientsReady(group: g)
        }
        try gradientsReady(group: 0)
        return (0, 0)
    }

    // MARK: Optimizer step

    func distributedStep(lr: Double, maxGradNorm: Double?) throws -> OptimizerStepResult {
        // The step rewrites the shards a prefetch would read.
        try finishPrefetch()
        if isMixed { return try mixedStep(lr: lr, maxGradNorm: maxGradNorm) }
        if communicator.worldSize > 1 && stage <= 1 {
            try communicator.allReduce(fullGrads, count: grads.count, op: .sum)
        }
        // Where this rank's gradients of each step range live.
        let (gradBase, ranges): (UnsafeMutablePointer<Float>, [Range<Int>]) = gradShards.map {
            ($0.raw.assumingMemoryBound(to: Float.self), stepRanges.map(\.localRange))
        } ?? (fullGrads, stepRanges.map(\.full))
        let gradBuffer = UnsafeMutableBufferPointer(start: gradBase, count: gradShards?.count ?? grads.count)
        var sum = GradientClipping.partialSumOfSquares(UnsafeBufferPointer(gradBuffer), ranges: ranges)
        // Stage 0 ranks hold every (identical) gradient; partitioned ranks hold disjoint pieces.
        if stage > 0 && communicator.worldSize > 1 { sum = try communicator.allReduce(sum, op: .sum) }
        let norm = GradientClipping.finish(sumOfSquares: sum)
        if let maxNorm = maxGradNorm, maxNorm > 0 {
            let c = GradientClipping.coefficient(norm: norm, maxNorm: maxNorm)
            for r in ranges { GradientClipping.scale(gradBase + r.lowerBound, count: r.count, by: c) }
        }
        stepsTaken += 1
        let step = stepsTaken
        try forEachStateChunk(chunk: Int.max) { c in
            let s = stepRanges[c.index]
            applyOptimizer(c, grads: gradBase + (gradShards != nil ? s.local : s.full.lowerBound) + c.offset, lr: lr, step: step)
        }
        // Stages 1 and 2 hold full weights: every rank's freshly stepped shards go to everyone.
        if stage == 1 || stage == 2, communicator.worldSize > 1 {
            for g in shards.groups { try collectives.allGatherInPlace(group: g.group, full: params) }
        }
        return OptimizerStepResult(gradNorm: Double(norm), skipped: false)
    }
}
