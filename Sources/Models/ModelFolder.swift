import Foundation
import Formats
import SafeTensors
import Tensors

extension CheckpointReader: WeightSource {
    public var sourceName: String { indexPath ?? files.first?.path ?? "checkpoint" }
    public var tensorNames: [String] { names }
    public func tensorShape(_ name: String) -> [Int]? { info(name)?.shape }
    public func readTensor(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws {
        try readFloats(name, into: dst)
    }
}

public enum ModelFolderError: Error, CustomStringConvertible {
    case notAFolder(String)
    case missingFile(folder: String, file: String)

    public var description: String {
        switch self {
        case .notAFolder(let p): return "\(p): not a model folder (expected a directory with config.json and model.safetensors)"
        case .missingFile(let folder, let file): return "\(folder): no \(file)"
        }
    }
}

extension TransformerModel {
    /// Loads a Hugging Face model folder: config.json and model.safetensors (or shards + index), any of
    /// f32/bf16/f16, into f32 parameters.
    public static func load(directory: String) throws -> TransformerModel {
        let (model, fill) = try loadDeferred(directory: directory)
        try fill(0..<model.layout.totalCount)
        return model
    }

    /// The model of a folder with its weights not yet read: names and shapes are checked now (every
    /// fault at once), and `fill(range)` reads the tensors inside `range` of the layout into
    /// `model.params` (a layer group at a time, for a base stored in 16 bits: its f32 form is then never
    /// resident all at once).
    public static func loadDeferred(directory: String) throws -> (model: TransformerModel, fill: (Range<Int>) throws -> Void) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ModelFolderError.notAFolder(directory)
        }
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        // lstat: a broken or looping link is there, and reading it says what is wrong with it.
        var entry = stat()
        guard lstat(configPath, &entry) == 0 else {
            throw ModelFolderError.missingFile(folder: directory, file: "config.json")
        }
        let config = try ModelRegistry.config(path: configPath)
        try config.checkFitsInMemory(source: configPath)
        let model = TransformerModel(config: config)
        let reader = try CheckpointReader(path: directory)
        let plan = try WeightLoader.validate(layout: model.layout, config: config, from: reader)
        let fill = { (range: Range<Int>) throws in
            for (file, entry) in plan where range.contains(entry.offset) {
                let values = model.params.floats(entry.range)
                try reader.readFloats(file, into: values)
                try WeightLoader.checkFinite(values, source: directory, tensor: file)
            }
        }
        return (model, fill)
    }

    /// Writes a Hugging Face model folder: config.json in the transformers-4 layout and the weights in
    /// `dtype`, in state-dict order, sharded above `maxShardSize` bytes exactly as save_pretrained shards.
    /// Files are written atomically; a tied LM head is not saved.
    public func save(directory: String, dtype: DType = .f32, maxShardSize: Int = ShardSize.transformersDefault) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var writer = SafeTensorsWriter()
        let params = self.params
        for e in layout.entries {
            try writer.add(e.name, dtype: dtype, shape: e.shape, source: .floatProducer(count: e.count) { emit in
                try emit(UnsafeBufferPointer(params.floats(e.range)))
            })
        }
        try writer.writeCheckpoint(to: directory, maxShardSize: maxShardSize, totalParameters: parameterCount)
        try config.transformers4JSON(dtype: dtype).write(to: (directory as NSString).appendingPathComponent("config.json"))
    }
}
