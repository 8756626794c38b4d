import Foundation
import Formats
import SafeTensors
import Tensors

public enum EngineCheckpointError: Error, CustomStringConvertible {
    case layoutMismatch(path: String, detail: String)
    case missing(path: String, what: String)

    public var description: String {
        switch self {
        case .layoutMismatch(let p, let d): return "\(p): the checkpoint does not belong to this model: \(d)"
        case .missing(let p, let w): return "\(p): \(w) is missing"
        }
    }
}

/// The engine's share of a checkpoint: fp32 master weights and optimizer state of every parameter, by
/// Hugging Face name, in `zero_rank0_optim_states.safetensors`. Under ZeRO the shards are gathered and
/// rank 0 writes them consolidated (metadata `ranges: full`), so a run resumes on any number of ranks and
/// any stage by slicing again; per-rank shard files (no gather) are a later optimisation.
extension TrainingEngine {
    public static func optimizerStateFileName(rank: Int) -> String { "zero_rank\(rank)_optim_states.safetensors" }

    /// Full-size views of each kind of state, gathering shards when this rank holds only its own.
    /// Collective under ZeRO.
    func fullState() throws -> [(suffix: String, buffer: FlatBuffer)] {
        try gatherFullParameters()
        // The caller drops the pages again (`dropOffloadedPages`) once it has read them.
        try pageInOffloaded()
        var kinds: [(String, FlatBuffer)] = [("master", model.params)]
        var moments: [(String, FlatBuffer)] = [("exp_avg", firstMoment)]
        if let v = secondMoment { moments.append(("exp_avg_sq", v)) }
        for (suffix, buffer) in moments {
            if options.zeroStage == 0 {
                kinds.append((suffix, buffer))
            } else {
                let full = FlatBuffer(dtype: .f32, count: model.layout.totalCount)
                for g in shards.groups {
                    try collectives.allGather(group: g.group, local: buffer.raw.assumingMemoryBound(to: Float.self),
                                              into: full.raw.assumingMemoryBound(to: Float.self))
                }
                kinds.append((suffix, full))
            }
        }
        return kinds
    }

    /// Writes the state (collective: every rank calls it; rank 0 writes the file).
    public func saveState(to directory: String) throws {
        let kinds = try fullState()
        defer {
            if paramShards != nil || isMixed { releaseFullParameters() }
            dropOffloadedPages()
        }
        guard communicator.rank == 0 else { return }
        var writer = SafeTensorsWriter(metadata: ["steps_taken": String(stepsTaken), "optimizer": "\(optimizer)",
                                                  "ranges": "full", "zero_stage": String(options.zeroStage),
                                                  "world_size": String(communicator.worldSize)])
        for entry in model.layout.entries {
            for (suffix, buffer) in kinds {
                try writer.add("\(entry.name).\(suffix)", dtype: .f32, shape: entry.shape, source: .floatProducer(count: entry.count) { emit in
                    try emit(UnsafeBufferPointer(buffer.floats(entry.range)))
                })
            }
        }
        try writer.write(to: (directory as NSString).appendingPathComponent(Self.optimizerStateFileName(rank: 0)))
    }

    /// Restores master weights and optimizer state, whatever stage and world size wrote them: every rank
    /// reads the consolidated file and keeps its own slices.
    public func loadState(from directory: String) throws {
        let path = (directory as NSString).appendingPathComponent(Self.optimizerStateFileName(rank: 0))
        guard FileManager.default.fileExists(atPath: path) else { throw EngineCheckpointError.missing(path: directory, what: Self.optimizerStateFileName(rank: 0)) }
        let file = try SafeTensorsFile(path: path)
        func read(_ suffix: String, into full: FlatBuffer) throws {
            for entry in model.layout.entries {
                let name = "\(entry.name).\(suffix)"
                guard let info = file.info(name) else { throw EngineCheckpointError.missing(path: path, what: "tensor \(name)") }
                guard info.shape == entry.shape else {
                    throw EngineCheckpointError.layoutMismatch(path: path, detail: "\(name) has shape \(info.shape), the model \(entry.shape)")
                }
                try file.readFloats(name, into: full.floats(entry.range))
            }
        }
        /// Copies this rank's slices of a full buffer into a compact shard buffer.
        func keepOwned(_ full: FlatBuffer, into local: FlatBuffer) {
            let src = full.raw.assumingMemoryBound(to: Float.self), dst = local.raw.assumingMemoryBound(to: Float.self)
            for g in shards.groups {
                let owned = shards.ownedRange(group: g.group)
                (dst + g.localOffset).update(from: src + owned.lowerBound, count: owned.count)
            }
        }
        try read("master", into: model.params)
        try adoptFullParameters()
        var moments: [(String, FlatBuffer)] = [("exp_avg", firstMoment)]
        if let v = secondMoment { moments.append(("exp_avg_sq", v)) }
        for (suffix, buffer) in moments {
            if options.zeroStage == 0 {
                try read(suffix, into: buffer)
            } else {
                let full = FlatBuffer(dtype: .f32, count: model.layout.totalCount)
                try read(suffix, into: full)
                keepOwned(full, into: buffer)
            }
        }
        // The moments were read into their in-memory views: offload sends them home.
        try pageOutOffloaded()
        guard let steps = file.metadata["steps_taken"].flatMap(Int.init) else {
            throw EngineCheckpointError.missing(path: path, what: "metadata steps_taken")
        }
        stepsTaken = steps
    }
}
