import Foundation
import Formats
import SafeTensors

/// A GGUF file (versions 2 and 3), memory-mapped and validated on open. Tensor bytes are views into the
/// map, valid while this object lives; nothing past the header is read until a tensor is asked for.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int

    private let map: MappedFile
    private let valueIndex: [String: Int]
    private let tensorIndex: [String: Int]

    public init(path: String) throws {
        do {
            map = try MappedFile(path: path)
        } catch let e as SafeTensorsError {
            switch e {
            case .io(_, let operation, let code): throw GGUFError.io(path: path, operation: operation, errno: code)
            case .notARegularFile: throw GGUFError.notARegularFile(path: path)
            default: throw e
            }
        }
        self.path = path
        let header = try GGUFHeader.parse(map.bytes, path: path)
        version = header.version
        metadata = header.metadata
        tensors = header.tensors
        alignment = header.alignment
        dataOffset = header.dataOffset
        valueIndex = Dictionary(uniqueKeysWithValues: header.metadata.enumerated().map { ($1.key, $0) })
        tensorIndex = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    public var fileSize: Int { map.size }

    // MARK: metadata

    public subscript(key: String) -> GGUFValue? { valueIndex[key].map { metadata[$0].value } }

    /// `general.architecture`, which every GGUF model file states.
    public func architecture() throws -> String { try string("general.architecture", expected: "the model architecture, e.g. llama") }

    public func string(_ key: String, expected: String) throws -> String {
        guard let v = self[key] else { throw GGUFError.missingKey(path: path, key: key, expected: expected) }
        guard let s = v.string else { throw GGUFError.wrongValueType(path: path, key: key, expected: "a string", found: v.summary) }
        return s
    }

    /// An integer of any width; nil when absent.
    public func optionalInt(_ key: String) throws -> Int? {
        guard let v = self[key] else { return nil }
        guard let i = v.int else { throw GGUFError.wrongValueType(path: path, key: key, expected: "an integer", found: v.summary) }
        return i
    }

    public func int(_ key: String, expected: String) throws -> Int {
        guard let i = try optionalInt(key) else { throw GGUFError.missingKey(path: path, key: key, expected: expected) }
        return i
    }

    public func optionalDouble(_ key: String) throws -> Double? {
        guard let v = self[key] else { return nil }
        guard let d = v.double else { throw GGUFError.wrongValueType(path: path, key: key, expected: "a float", found: v.summary) }
        return d
    }

    public func optionalBool(_ key: String) throws -> Bool? {
        guard let v = self[key] else { return nil }
        guard let b = v.bool else { throw GGUFError.wrongValueType(path: path, key: key, expected: "a bool", found: v.summary) }
        return b
    }

    /// An array whose elements all satisfy `convert`; nil when absent.
    public func optionalArray<T>(_ key: String, of what: String, _ convert: (GGUFValue) -> T?) throws -> [T]? {
        guard let v = self[key] else { return nil }
        guard case .array(_, let values) = v else { throw GGUFError.wrongValueType(path: path, key: key, expected: "an array of \(what)", found: v.summary) }
        var out: [T] = []
        out.reserveCapacity(values.count)
        for (i, e) in values.enumerated() {
            guard let t = convert(e) else {
                throw GGUFError.wrongValueType(path: path, key: "\(key)[\(i)]", expected: what, found: e.summary)
            }
            out.append(t)
        }
        return out
    }

    // MARK: tensors

    public func info(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The tensor's bytes inside the map. No copy is made.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let t = info(name) else { throw GGUFError.tensorNotFound(path: path, tensor: name) }
        return map.slice(t.fileRange)
    }

    /// The tensor dequantized to f32 into `destination` (exactly its element count), bit-identical to
    /// `gguf.quants.dequantize`. Values are in ggml order, which is PyTorch's row-major order of `shape`.
    public func readFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard let t = info(name) else { throw GGUFError.tensorNotFound(path: path, tensor: name) }
        guard destination.count == t.elementCount else {
            throw GGUFError.invalidTensorData(tensor: name, problem: "has \(t.elementCount) elements, the destination holds \(destination.count)")
        }
        Dequantize.dequantize(t.type, map.slice(t.fileRange), into: destination)
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let t = info(name) else { throw GGUFError.tensorNotFound(path: path, tensor: name) }
        return try [Float](unsafeUninitializedCapacity: t.elementCount) { buffer, count in
            try readFloats(name, into: buffer)
            count = t.elementCount
        }
    }
}

extension GGUFFile {
    /// What `swift-finetune inspect FILE.gguf` prints: version, metadata (long arrays and strings shortened),
    /// parameters by ggml type, then one line per tensor in PyTorch order.
    public func summary() -> String {
        let parameters = tensors.reduce(0) { $0 + $1.elementCount }
        var lines = ["\(path): GGUF v\(version), \(tensors.count) tensors, \(groupedDigits(parameters)) parameters, \(groupedDigits(fileSize)) bytes, alignment \(alignment)"]
        for (key, value) in metadata { lines.append("  \(key) = \(value.summary)") }
        var byType: [GGMLType: Int] = [:]
        for t in tensors { byType[t.type, default: 0] += t.elementCount }
        lines.append("parameters by type: " + byType.sorted { $0.key.rawValue < $1.key.rawValue }
            .map { "\($0.key.name) \(groupedDigits($0.value))" }.joined(separator: ", "))
        let shapes = tensors.map { "[" + $0.shape.map(String.init).joined(separator: ", ") + "]" }
        let width = shapes.map(\.count).max() ?? 0
        for (t, shape) in zip(tensors, shapes) {
            lines.append("  \(t.type.name.padding(toLength: 5, withPad: " ", startingAt: 0)) \(shape.padding(toLength: width, withPad: " ", startingAt: 0))  \(t.name)")
        }
        return lines.joined(separator: "\n")
    }
}
