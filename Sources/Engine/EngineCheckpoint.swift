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

/// The engine's share of a checkpoint: each rank writes `zero_rank{R}_optim_states.safetensors` with the
/// f32 master weights and optimizer moments it owns, by Hugging Face name and element range, without any
/// gather (ARCHITECTURE.md, decision 8). A tensor the rank owns whole is `<name>.<kind>` with the
/// parameter's shape; a piece is `<name>.<kind>@<start>-<end>`, 1-D, over the flattened parameter. Kinds:
/// `master`, `exp_avg`, `exp_avg_sq`. Data parallel (stage 0) ranks hold identical state: rank 0 writes
/// it whole and the others write files with no tensors. A resume reads every rank's file, on any world
/// size and stage, and keeps its own slices.
extension TrainingEngine {
    public static func optimizerStateFileName(rank: Int) -> String { "zero_rank\(rank)_optim_states.safetensors" }

    /// The rank and size that name state files: the whole job's (a pipeline's world), not the data group's.
    var checkpointRank: Int { pipeline?.worldRank ?? communicator.rank }
    var checkpointWorldSize: Int { pipeline?.worldSize ?? communicator.worldSize }

    /// This rank's state, per kind: the buffer and whether it is compact (shard coordinates) or full.
    func stateKinds() -> [(kind: String, buffer: FlatBuffer, compact: Bool)] {
        let master: (String, FlatBuffer, Bool)
        switch parameters.master {
        case .modelParams(let b): master = ("master", b, false)
        case .copy(let b, _): master = ("master", b, stage > 0)
        case .shards(let s): master = ("master", s.buffer, true)
        }
        return [master] + moments.map { ($0.name, $0.buffer, stage > 0) }
    }

    /// The pieces of each layout entry this rank writes: (entry, range within the entry's elements, the
    /// full-buffer range, the offset in compact buffers).
    func ownedPieces() -> [(entry: ParameterLayout.Entry, within: Range<Int>, compactOffset: Int)] {
        var out: [(ParameterLayout.Entry, Range<Int>, Int)] = []
        if stage == 0 {
            guard communicator.rank == 0 else { return [] }
            return trainableLayout.entries.map { ($0, 0..<$0.count, $0.range.lowerBound) }
        }
        // A pipeline stage writes the groups it steps (a tied embedding is the last stage's to write).
        for g in shards.groups where pipeline?.ownedGroups.contains(g.group) ?? true {
            let owned = shards.ownedRange(group: g.group)
            for e in trainableLayout.entries where e.range.overlaps(owned) {
                let lo = Swift.max(e.range.lowerBound, owned.lowerBound), hi = Swift.min(e.range.upperBound, owned.upperBound)
                out.append((e, (lo - e.range.lowerBound)..<(hi - e.range.lowerBound), g.localOffset + lo - owned.lowerBound))
            }
        }
        return out
    }

    /// Writes this rank's state file into `directory` (every rank calls it; no collectives).
    public func saveState(to directory: String) throws {
        try pageInOffloaded()
        defer { dropOffloadedPages() }
        var writer = SafeTensorsWriter(metadata: ["steps_taken": String(stepsTaken), "optimizer": "\(optimizer)",
                                                  "zero_stage": String(options.zeroStage), "rank": String(checkpointRank),
                                                  "world_size": String(checkpointWorldSize)])
        let kinds = stateKinds()
        for (entry, within, compactOffset) in ownedPieces() {
            let whole = within.count == entry.count
            for (kind, buffer, compact) in kinds {
                let start = compact ? compactOffset : entry.range.lowerBound + within.lowerBound
                let name = whole ? "\(entry.name).\(kind)" : "\(entry.name).\(kind)@\(within.lowerBound)-\(within.upperBound)"
                try writer.add(name, dtype: .f32, shape: whole ? entry.shape : [within.count], source: .floatProducer(count: within.count) { emit in
                    try emit(UnsafeBufferPointer(buffer.floats(start..<start + within.count)))
                })
            }
        }
        try writer.write(to: (directory as NSString).appendingPathComponent(Self.optimizerStateFileName(rank: checkpointRank)))
    }

    /// Reads every rank's state file of a checkpoint into full-size f32 buffers, one per kind asked for
    /// (all elements of every parameter must be found). Returns the saving run's steps taken.
    @discardableResult
    public static func readState(directory: String, layout: ParameterLayout, into buffers: [String: FlatBuffer]) throws -> Int {
        let first = (directory as NSString).appendingPathComponent(optimizerStateFileName(rank: 0))
        guard FileManager.default.fileExists(atPath: first) else { throw EngineCheckpointError.missing(path: directory, what: optimizerStateFileName(rank: 0)) }
        let rank0 = try SafeTensorsFile(path: first)
        guard let worldSize = rank0.metadata["world_size"].flatMap(Int.init), worldSize > 0,
              let steps = rank0.metadata["steps_taken"].flatMap(Int.init) else {
            throw EngineCheckpointError.missing(path: first, what: "metadata world_size and steps_taken")
        }
        var filled = buffers.mapValues { _ in 0 }
        for r in 0..<worldSize {
            let path = (directory as NSString).appendingPathComponent(optimizerStateFileName(rank: r))
            guard FileManager.default.fileExists(atPath: path) else {
                throw EngineCheckpointError.missing(path: directory, what: "\(optimizerStateFileName(rank: r)) (written by \(worldSize) ranks)")
            }
            let file = r == 0 ? rank0 : try SafeTensorsFile(path: path)
            for tensor in file.names {
                let (base, piece) = tensor.split(separator: "@", maxSplits: 1).map(String.init).splitFirst()
                guard let dot = base.lastIndex(of: ".") else { throw EngineCheckpointError.layoutMismatch(path: path, detail: "tensor \(tensor) names no state kind") }
                let name = String(base[..<dot]), kind = String(base[base.index(after: dot)...])
                guard let buffer = buffers[kind] else { continue }
                guard let entry = layout[name] else { throw EngineCheckpointError.layoutMismatch(path: path, detail: "the model has no parameter \(name)") }
                let info = file.info(tensor)!
                var within = 0..<entry.count
                if let piece {
                    let bounds = piece.split(separator: "-").compactMap { Int($0) }
                    guard bounds.count == 2, bounds[0] < bounds[1], bounds[1] <= entry.count, info.shape == [bounds[1] - bounds[0]] else {
                        throw EngineCheckpointError.layoutMismatch(path: path, detail: "\(tensor) has shape \(info.shape), not a piece of \(name) \(entry.shape)")
                    }
                    within = bounds[0]..<bounds[1]
                } else if info.shape != entry.shape {
                    throw EngineCheckpointError.layoutMismatch(path: path, detail: "\(tensor) has shape \(info.shape), the model \(entry.shape)")
                }
                let start = entry.range.lowerBound + within.lowerBound
                try file.readFloats(tensor, into: buffer.floats(start..<start + within.count))
                filled[kind]! += within.count
            }
        }
        for (kind, count) in filled where count != layout.totalCount {
            throw EngineCheckpointError.missing(path: directory, what: "\(layout.totalCount - count) of \(layout.totalCount) \(kind) values in the \(worldSize) state files")
        }
        return steps
    }

    /// Restores master weights and optimizer state, whatever stage and world size wrote them: every rank
    /// reads all state files and keeps its own slices.
    public func loadState(from directory: String) throws {
        let n = trainableLayout.totalCount
        var kinds = ["master": trainableParams]
        for (name, _) in moments { kinds[name] = FlatBuffer(dtype: .f32, count: n) }
        let steps = try Self.readState(directory: directory, layout: trainableLayout, into: kinds)
        try adoptFullParameters()
        for (name, buffer) in moments { keepOwnedState(from: kinds[name]!.raw.assumingMemoryBound(to: Float.self), into: buffer) }
        // The moments were read into their in-memory views: offload sends them home.
        try pageOutOffloaded()
        releaseForeignParameters()
        stepsTaken = steps
    }

    /// The engine's entries of a checkpoint's `engine_state.json` (the Trainer adds its own beside them):
    /// the steps taken, the saving run's world size and ZeRO stage, and fp16's loss scaler with
    /// DeepSpeed's attribute names.
    public func checkpointState() -> JSONObject {
        var o = JSONObject()
        o["steps_taken"] = .int(Int64(stepsTaken))
        o["world_size"] = .int(Int64(checkpointWorldSize))
        if let p = pipeline { o["pipeline_stages"] = .int(Int64(p.stages)) }
        o["zero_stage"] = .int(Int64(options.zeroStage))
        if let scaler = lossScaler, let json = try? JSONValue.parse(String(decoding: JSONEncoder().encode(scaler), as: UTF8.self)) {
            o["loss_scaler"] = json
        }
        return o
    }

    /// Restores the engine's part of the checkpoint in `directory`: master weights and optimizer state
    /// from every rank's state file (`loadState`), and the loss scaler from `state`, the parsed
    /// `engine_state.json` at `statePath`. A checkpoint without one (saved in f32 or bf16) leaves the
    /// fresh scaler; one saved with a scaler resumed without fp16 drops it.
    public func restore(from directory: String, state: JSONValue, statePath: String) throws {
        try loadState(from: directory)
        guard options.precision == .fp16, let saved = state["loss_scaler"] else { return }
        do {
            lossScaler = try JSONDecoder().decode(LossScaler.self, from: Data(JSONWriter.compact.string(saved).utf8))
        } catch {
            throw EngineCheckpointError.missing(path: statePath, what: "a readable loss_scaler (\(error))")
        }
    }
}

private extension Array where Element == String {
    /// ("base", "piece") from a split at "@"; the piece is nil when there was none.
    func splitFirst() -> (String, String?) { (self[0], count > 1 ? self[1] : nil) }
}
