import Foundation
import Formats

/// The weights of a Hugging Face model folder, whether stored as one `model.safetensors` or as shards
/// listed in `model.safetensors.index.json`, behind one lookup by tensor name.
///
/// Accepts a folder (model.safetensors wins over an index when both exist, as in transformers), an
/// index file, or a single .safetensors file. Every shard is mapped and validated on open, and every
/// tensor of the weight map must be found in the shard it names.
public final class CheckpointReader: TensorStore, @unchecked Sendable {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// The index file, when the checkpoint is sharded.
    public let indexPath: String?
    /// The shard files (or the single file), in file-name order.
    public let files: [SafeTensorsFile]
    /// The index's "metadata" object (total_size, total_parameters), empty for a single file.
    public let indexMetadata: JSONObject
    /// Tensor names, file by file, each file in data-offset order.
    public let names: [String]
    private let location: [String: Int]

    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SafeTensorsError.io(path: path, operation: "open", errno: ENOENT)
        }
        var indexPath: String?
        var singlePath: String?
        if isDirectory.boolValue {
            let single = (path as NSString).appendingPathComponent(Self.singleFileName)
            let index = (path as NSString).appendingPathComponent(Self.indexFileName)
            if FileManager.default.fileExists(atPath: single) {
                singlePath = single
            } else if FileManager.default.fileExists(atPath: index) {
                indexPath = index
            } else {
                throw SafeTensorsError.noCheckpoint(folder: path)
            }
        } else if path.hasSuffix(".json") {
            indexPath = path
        } else {
            singlePath = path
        }

        if let singlePath {
            let file = try SafeTensorsFile(path: singlePath)
            self.indexPath = nil
            files = [file]
            indexMetadata = JSONObject()
            names = file.names
            location = Dictionary(uniqueKeysWithValues: file.names.map { ($0, 0) })
            return
        }

        let index = indexPath!
        let (metadata, weightMap) = try Self.readIndex(index)
        let folder = (index as NSString).deletingLastPathComponent
        let shardNames = Set(weightMap.map(\.shard)).sorted()
        var opened: [String: Int] = [:]
        var files: [SafeTensorsFile] = []
        for shard in shardNames {
            let shardPath = (folder as NSString).appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: shardPath) else {
                let tensor = weightMap.first { $0.shard == shard }!.tensor
                throw SafeTensorsError.missingShard(index: index, shard: shard, tensor: tensor)
            }
            opened[shard] = files.count
            files.append(try SafeTensorsFile(path: shardPath))
        }
        var location: [String: Int] = [:]
        for (tensor, shard) in weightMap {
            let i = opened[shard]!
            guard files[i].contains(tensor) else {
                throw SafeTensorsError.tensorMissingFromShard(index: index, shard: shard, tensor: tensor)
            }
            location[tensor] = i
        }
        self.indexPath = index
        self.files = files
        self.indexMetadata = metadata
        self.location = location
        // Tensors a shard holds but the weight map does not list are not part of the model.
        names = files.enumerated().flatMap { i, f in f.names.filter { location[$0] == i } }
    }

    private static func readIndex(_ index: String) throws -> (JSONObject, [(tensor: String, shard: String)]) {
        let json: JSONValue
        do {
            json = try JSONValue.read(path: index)
        } catch let error as JSONError {
            throw SafeTensorsError.invalidIndex(path: index, problem: error.description)
        }
        guard case .object(let root) = json else {
            throw SafeTensorsError.invalidIndex(path: index, problem: "must be a JSON object, found \(json.kindName)")
        }
        guard let mapValue = root["weight_map"] else {
            throw SafeTensorsError.invalidIndex(path: index, problem: "missing \"weight_map\"")
        }
        guard case .object(let map) = mapValue else {
            throw SafeTensorsError.invalidIndex(path: index, problem: "\"weight_map\" must be an object, found \(mapValue.kindName)")
        }
        var entries: [(tensor: String, shard: String)] = []
        for (tensor, value) in map {
            guard let shard = value.stringValue else {
                throw SafeTensorsError.invalidIndex(path: index, problem: "weight_map['\(tensor)'] must be a file name, found \(value.kindName)")
            }
            guard !shard.isEmpty, !shard.contains("/"), shard != "..", shard != "." else {
                throw SafeTensorsError.invalidIndex(path: index, problem: "weight_map['\(tensor)'] = '\(shard)' is not a file name in the checkpoint folder")
            }
            entries.append((tensor, shard))
        }
        return (root["metadata"]?.objectValue ?? JSONObject(), entries)
    }

    /// The file holding `name`.
    public func file(containing name: String) -> SafeTensorsFile? {
        location[name].map { files[$0] }
    }

    public func info(_ name: String) -> TensorInfo? {
        file(containing: name)?.info(name)
    }

    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let file = file(containing: name) else {
            throw SafeTensorsError.tensorNotFound(source: indexPath ?? files[0].path, name: name)
        }
        return try file.rawBytes(name)
    }

    public func source(of name: String) -> String {
        file(containing: name)?.path ?? indexPath ?? files[0].path
    }

    public func evictPages(_ name: String) { file(containing: name)?.evictPages(name) }

    /// The first file's `__metadata__` (transformers writes the same into every shard).
    public var metadata: [String: String] { files[0].metadata }

    /// What `swift-finetune inspect` prints for a model folder.
    public func summary() -> String {
        let title = indexPath.map { "\($0) (\(files.count) shards)" } ?? files[0].path
        return summary(title: title)
    }
}
