import Formats
import Tensors

/// A safetensors file, memory-mapped and validated on open. Tensor bytes are views into the map and
/// stay valid as long as this object lives; nothing but the header is read until a tensor is touched.
public final class SafeTensorsFile: TensorStore, @unchecked Sendable {
    public let path: String
    /// Tensor names in the order their bytes lie in the file (ascending data offset). Files written by
    /// safetensors (and by `SafeTensorsWriter`) are laid out by dtype, largest Rust enum first, then name.
    public let names: [String]
    /// `__metadata__`, empty when absent. Files written by transformers hold at least `format: pt`.
    public let metadata: [String: String]
    /// `__metadata__` keys in header order.
    public let metadataKeys: [String]
    /// N, the header length in bytes (without the 8-byte length prefix).
    public let headerLength: Int
    /// Every tensor in the order of `names`.
    public let tensors: [TensorInfo]

    private let map: MappedFile
    private let index: [String: Int]

    public init(path: String) throws {
        map = try MappedFile(path: path)
        self.path = path
        let header = try SafeTensorsHeader.parse(file: map.bytes, path: path)
        headerLength = header.headerLength
        tensors = header.tensors
        metadata = header.metadata
        metadataKeys = header.metadataKeys
        names = header.tensors.map(\.name)
        var index: [String: Int] = [:]
        index.reserveCapacity(names.count)
        for (i, name) in names.enumerated() { index[name] = i }
        self.index = index
    }

    public var fileSize: Int { map.size }

    public func info(_ name: String) -> TensorInfo? {
        index[name].map { tensors[$0] }
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The tensor's bytes inside the map (little-endian, row-major). No copy is made.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let i = index[name] else { throw SafeTensorsError.tensorNotFound(source: path, name: name) }
        return map.slice(tensors[i].fileRange)
    }

    public func source(of name: String) -> String { path }

    public func evictPages(_ name: String) {
        guard let i = index[name] else { return }
        map.evict(tensors[i].fileRange)
    }
}

extension SafeTensorsFile {
    /// What `swift-finetune inspect FILE` prints: totals, metadata, then one line per tensor.
    public func summary() -> String {
        var text = summary(title: path)
        if !metadataKeys.isEmpty {
            let meta = metadataKeys.map { "\($0)=\(metadata[$0]!)" }.joined(separator: ", ")
            text = text.replacingOccurrences(of: "\n", with: "\nmetadata: \(meta)\n", options: [], range: text.range(of: "\n"))
        }
        return text
    }
}
