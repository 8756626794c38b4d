import Distributed
import Tensors

/// How this rank holds its parameters: where the f32 `master` weights live and how `compute` weights
/// reach `trainableParams`, chosen once in `TrainingEngine.init` from (stage, precision, offload). The
/// engine's hooks, step, checkpoints and memory figures switch on these two values.
///
/// | stage | precision | offload             | master                         | compute                            |
/// |-------|-----------|---------------------|--------------------------------|------------------------------------|
/// | 0     | f32       | none / optimizer    | `trainableParams`                 | resident                           |
/// | 1–2   | f32       | none / optimizer    | `trainableParams`                 | resident, f32 all-gather after step |
/// | 3     | f32       | none / optimizer    | shards (memory)                | gathered per group, prefetched     |
/// | 3     | f32       | + param             | shards (disk)                  | gathered per group, read from disk |
/// | 0     | 16-bit    | none                | f32 copy, full (memory)        | rounded per use                    |
/// | 0     | 16-bit    | optimizer           | f32 copy, full (disk)          | 16-bit copy                        |
/// | 1–2   | 16-bit    | none / optimizer    | f32 copy, shards (memory/disk) | 16-bit copy, 16-bit all-gather after step |
/// | 3     | 16-bit    | none / optimizer    | shards (memory)                | 16-bit gather per group            |
/// | 3     | 16-bit    | + param             | shards (disk)                  | 16-bit gather per group, read from disk |
///
/// With f32 compute the master weights never go to disk: they are the weights forward reads. The
/// optimizer moments follow the master's layout (full at stage 0, shards from 1 on) and live on disk
/// whenever any offload is on (`OffloadTier`); gradients are `GradientStorage`'s.
struct ParameterStorage {
    let master: MasterWeights
    let compute: ComputeWeights

    /// With offload on, the store's name for the weight array that lives there too, if any: mixed
    /// precision's master copy (stages 0–2), or stage 3's shards with `offload_param`.
    static func offloadedWeights(stage: Int, mixed: Bool, offloadParam: Bool) -> String? {
        if stage == 3 { return offloadParam ? "param" : nil }
        return mixed ? "master" : nil
    }

    /// `weightsHome` is where the array `offloadedWeights` names lives (memory when none is offloaded);
    /// `prefetchCount` the prefetch scratch ZeRO-3 in f32 uses, 0 for none.
    init(model params: FlatBuffer, stage: Int, format: HalfFormat?, shards: ShardLayout, weightsHome: Residence, prefetchCount: Int) {
        switch (format, stage) {
        case (nil, 0...2):
            master = .modelParams(params)
            compute = .resident(allGatherAfterStep: stage > 0)
        case (nil, _):
            let s = ParameterShards(buffer: FlatBuffer(dtype: .f32, count: shards.localCount), residence: weightsHome)
            master = .shards(s)
            // Shards on disk arrive one group at a time, right before their gather: nothing to prefetch from.
            var prefetch: FlatBuffer?
            if prefetchCount > 0, case .memory = weightsHome { prefetch = FlatBuffer(dtype: .f32, count: prefetchCount) }
            compute = .gathered(s, prefetch: prefetch)
        case (let f?, 3):
            let s = ParameterShards(buffer: FlatBuffer(dtype: .f32, count: shards.localCount), residence: weightsHome)
            master = .shards(s)
            compute = .halfGathered(s, f)
        case (let f?, _):
            let copy = FlatBuffer(dtype: .f32, count: stage == 0 ? params.count : shards.localCount)
            master = .copy(copy, weightsHome)
            if stage == 0, case .memory = weightsHome {
                compute = .rounded(master: copy, f)
            } else {
                compute = .halfCopy(FlatBuffer(dtype: f.dtype, count: params.count), f, allGatherAfterStep: stage > 0)
            }
        }
    }

    /// Bytes of parameters this rank keeps between steps (in memory or on disk).
    var byteCount: Int { master.buffer.byteCount + compute.byteCount }
}

/// The f32 weights the optimizer updates.
enum MasterWeights {
    /// f32 compute, stages 0–2: `trainableParams` itself, full size on every rank; stages 1–2 step only
    /// their shards of it (full-buffer coordinates).
    case modelParams(FlatBuffer)
    /// Mixed precision, stages 0–2: a separate f32 copy laid out like the optimizer moments: full size
    /// at stage 0, this rank's shards from stage 1 on (compact coordinates, equal to full ones at 0).
    case copy(FlatBuffer, Residence)
    /// Stage 3: the parameter shards themselves.
    case shards(ParameterShards)

    var buffer: FlatBuffer {
        switch self {
        case .modelParams(let b), .copy(let b, _): return b
        case .shards(let s): return s.buffer
        }
    }

    var residence: Residence {
        switch self {
        case .modelParams: return .memory
        case .copy(_, let r): return r
        case .shards(let s): return s.residence
        }
    }

    /// Where step range `s` starts in `buffer`.
    func weights(_ s: StepRange) -> UnsafeMutablePointer<Float> {
        let base = buffer.raw.assumingMemoryBound(to: Float.self)
        switch self {
        case .modelParams: return base + s.full.lowerBound
        case .copy, .shards: return base + s.local
        }
    }
}

/// How `trainableParams` gets the weights a group's forward and backward read.
enum ComputeWeights {
    /// f32, stages 0–2: `trainableParams` holds every weight at all times. At stages 1–2 each rank steps
    /// its shards of it and all-gathers them after the step.
    case resident(allGatherAfterStep: Bool)
    /// f32, stage 3: the group's shards all-gathered into `trainableParams` before each use and released
    /// after. With `prefetch` scratch (two blocks or more, shards in memory) the next block group's
    /// gather starts while the current one computes.
    case gathered(ParameterShards, prefetch: FlatBuffer?)
    /// Mixed precision, stage 0 with the master in memory: the master rounded to 16 bits into
    /// `trainableParams` per use, as autocast casts a weight per op, so no copy is kept.
    case rounded(master: FlatBuffer, HalfFormat)
    /// Mixed precision, stages 1–2, and stage 0 with the master on disk (rounding it per use would read
    /// the disk per group): a full 16-bit copy, widened per use and rewritten from each stepped master
    /// chunk; at stages 1–2 every rank's freshly rounded shard is then all-gathered in 16 bits.
    case halfCopy(FlatBuffer, HalfFormat, allGatherAfterStep: Bool)
    /// Mixed precision, stage 3: the shards rounded and all-gathered in 16 bits per use (blocking: no
    /// prefetch).
    case halfGathered(ParameterShards, HalfFormat)

    /// Bytes this policy keeps between uses besides the master weights.
    var byteCount: Int {
        if case .halfCopy(let words, _, _) = self { return words.byteCount }
        return 0
    }
}

/// Where an f32 array the optimizer updates keeps its values between whole-array uses.
enum Residence {
    case memory
    /// Array `name` of the offload store is its home; the in-memory FlatBuffer is address space only
    /// (mmap, released), paged in around whole-array uses and streamed chunk by chunk by the step.
    case offloaded(OffloadStore, name: String)
}

/// ZeRO-3's parameter shards (f32 at every precision, compact): both the master weights the optimizer
/// steps and what each group's gather reads.
struct ParameterShards {
    let buffer: FlatBuffer
    let residence: Residence

    var floats: UnsafeMutablePointer<Float> { buffer.raw.assumingMemoryBound(to: Float.self) }

    /// `offload_param`: the group's shard from its file, right before it is gathered.
    func pageIn(_ s: ShardLayout.GroupShards) throws {
        guard case .offloaded(let store, let name) = residence else { return }
        try store.read(name, into: floats + s.localOffset, range: s.localOffset..<s.localOffset + s.shardSize)
    }

    /// `offload_param`: the group's shard leaves memory again once its gather is done with it.
    func release(_ s: ShardLayout.GroupShards) {
        guard case .offloaded = residence else { return }
        buffer.release(s.localOffset..<s.localOffset + s.shardSize)
    }
}

extension TrainingEngine {
    var params: UnsafeMutablePointer<Float> { trainableParams.raw.assumingMemoryBound(to: Float.self) }

    /// `trainableParams` holds full f32 weights on every rank (after the start broadcast or a checkpoint
    /// load): keep what this rank's storage holds; unless compute weights are resident, release the full
    /// buffer, and send offloaded arrays home.
    func adoptFullParameters() throws {
        switch parameters.master {
        case .modelParams: break
        case .copy(let b, _): keepOwnedState(from: params, into: b)
        case .shards(let s): copyOwnedSlices(from: params, into: s.buffer)
        }
        switch parameters.compute {
        case .resident: break
        case .halfCopy(let words, let format, _):
            format.store(params, count: words.count, into: words.raw.assumingMemoryBound(to: UInt16.self))
            releaseFullParameters()
        case .gathered, .rounded, .halfGathered:
            releaseFullParameters()
        }
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

    /// A full-size buffer into optimizer-side state (master copy, moments): all of it at stage 0, this
    /// rank's shards from stage 1 on.
    func keepOwnedState(from full: UnsafePointer<Float>, into local: FlatBuffer) {
        if stage == 0 {
            local.raw.assumingMemoryBound(to: Float.self).update(from: full, count: local.count)
        } else {
            copyOwnedSlices(from: full, into: local)
        }
    }

    /// Every group's f32 master weights into `trainableParams` (for export, evaluation, checkpoints or
    /// inspection). Collective unless the master is full on every rank. Where compute weights are not
    /// resident they stay until the next micro-step releases them group by group.
    public func gatherFullParameters() throws {
        try pageInWeights()
        defer { dropOffloadedWeights() }
        switch parameters.master {
        case .modelParams:
            break
        case .copy(let b, _) where stage == 0:
            params.update(from: b.raw.assumingMemoryBound(to: Float.self), count: b.count)
        case .copy(let b, _):
            for g in shards.groups { try collectives.allGather(group: g.group, local: b.raw.assumingMemoryBound(to: Float.self), into: params) }
        case .shards(let s):
            // The gather reuses the collectives a prefetch may still be running.
            try finishPrefetch()
            for g in shards.groups { try collectives.allGather(group: g.group, local: s.floats, into: params) }
        }
        try gatherAcrossStages()
    }

    func releaseFullParameters() {
        for g in shards.groups { trainableParams.release(g.range) }
    }

    /// Every group's compute weights into `trainableParams` for an evaluation; returns whether they must
    /// be released after it. Collective at stage 3.
    func materializeForEvaluation() throws -> Bool {
        switch parameters.compute {
        case .resident:
            return false
        case .gathered:
            try gatherFullParameters()
        case .rounded, .halfCopy:
            for g in shards.groups { try willUse(group: g.group, backward: false) }
        case .halfGathered(let s, _):
            for g in shards.groups {
                try willUse(group: g.group, backward: false)
                s.release(g)
            }
        }
        return true
    }

    /// The compute weights' part of one stepped master chunk: the rounded chunk into the 16-bit copy.
    func refreshComputeWeights(_ c: StateChunk) {
        guard case .halfCopy(let words, let format, _) = parameters.compute else { return }
        let s = stepRanges[c.index]
        format.store(c.weights, count: c.count, into: words.raw.assumingMemoryBound(to: UInt16.self) + s.full.lowerBound + c.offset)
    }

    /// After the step, where every rank holds full compute weights but stepped only its shards: each
    /// rank's shard goes to everyone (f32, or the 16-bit copy).
    func publishSteppedWeights() throws {
        guard communicator.worldSize > 1 else { return }
        switch parameters.compute {
        case .resident(allGatherAfterStep: true):
            for g in shards.groups { try collectives.allGatherInPlace(group: g.group, full: params) }
        case .halfCopy(let words, _, allGatherAfterStep: true):
            let w = words.raw.assumingMemoryBound(to: UInt16.self)
            for g in shards.groups { try collectives.allGatherHalfInPlace(group: g.group, words: w) }
        default:
            break
        }
    }
}
