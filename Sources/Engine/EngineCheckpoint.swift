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

/// The engine's share of a checkpoint: fp32 master weights and optimizer state of every parameter this
/// rank holds, stored by Hugging Face name and element range (`zero_rank{R}_optim_states.safetensors`),
/// so a run can resume on another number of ranks or another ZeRO stage.
extension TrainingEngine {
    public static func optimizerStateFileName(rank: Int) -> String { "zero_rank\(rank)_optim_states.safetensors" }

    /// The kinds of per-parameter state this engine keeps, in file order.
    var stateKinds: [(suffix: String, buffer: FlatBuffer)] {
        var kinds: [(String, FlatBuffer)] = [("master", model.params), ("exp_avg", firstMoment)]
        if let v = secondMoment { kinds.append(("exp_avg_sq", v)) }
        return kinds
    }

    /// Writes this rank's state. Tensor names: `<hf name>.<kind>`; metadata records each tensor's element
    /// range within the full parameter (all of it in one process), the step and the optimizer.
    public func saveState(to directory: String, rank: Int = 0) throws {
        var writer = SafeTensorsWriter(metadata: ["steps_taken": String(stepsTaken), "optimizer": "\(optimizer)",
                                                  "ranges": "full"])
        for entry in model.layout.entries {
            for (suffix, buffer) in stateKinds {
                try writer.add("\(entry.name).\(suffix)", dtype: .f32, shape: entry.shape, source: .floatProducer(count: entry.count) { emit in
                    try emit(UnsafeBufferPointer(buffer.floats(entry.range)))
                })
            }
        }
        try writer.write(to: (directory as NSString).appendingPathComponent(Self.optimizerStateFileName(rank: rank)))
    }

    /// Restores master weights and optimizer state from the rank files of `directory`.
    public func loadState(from directory: String, rank: Int = 0) throws {
        let path = (directory as NSString).appendingPathComponent(Self.optimizerStateFileName(rank: rank))
        guard FileManager.default.fileExists(atPath: path) else { throw EngineCheckpointError.missing(path: directory, what: Self.optimizerStateFileName(rank: rank)) }
        let file = try SafeTensorsFile(path: path)
        for entry in model.layout.entries {
            for (suffix, buffer) in stateKinds {
                let name = "\(entry.name).\(suffix)"
                guard let info = file.info(name) else { throw EngineCheckpointError.missing(path: path, what: "tensor \(name)") }
                guard info.shape == entry.shape else {
                    throw EngineCheckpointError.layoutMismatch(path: path, detail: "\(name) has shape \(info.shape), the model \(entry.shape)")
                }
                try file.readFloats(name, into: buffer.floats(entry.range))
            }
        }
        guard let steps = file.metadata["steps_taken"].flatMap(Int.init) else {
            throw EngineCheckpointError.missing(path: path, what: "metadata steps_taken")
        }
        stepsTaken = steps
    }
}
