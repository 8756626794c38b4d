import Formats
import Tensors

/// Where a tensor's bytes come from when the file is written. Producers let multi-GB checkpoints be
/// streamed from memory the caller owns (a flat parameter buffer, a map) without a second copy.
public enum TensorSource {
    /// Little-endian bytes exactly as stored.
    case bytes([UInt8])
    /// f32 values, converted to the entry's dtype (F32, BF16 or F16) while writing.
    case floats([Float])
    /// Calls `emit` with consecutive pieces of the bytes; their total must be `byteCount`.
    case rawProducer(byteCount: Int, produce: (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)
    /// Calls `emit` with consecutive f32 pieces (converted like `.floats`); their total must be `count`.
    case floatProducer(count: Int, produce: (_ emit: (UnsafeBufferPointer<Float>) throws -> Void) throws -> Void)
}

/// One tensor queued for writing.
public struct TensorEntry {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let source: TensorSource
    public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
}

/// Builds safetensors files byte-identical to `safetensors.torch.save_file(tensors, path,
/// metadata={"format": "pt", ...})` (what transformers' `save_pretrained` calls): compact serde-style
/// header JSON, `__metadata__` first, tensors ordered by dtype (descending Rust enum order) then by
/// name (bytewise), header padded with spaces to a multiple of 8. Written atomically and streamed, so
/// the file is never built in memory.
///
/// One difference cannot be removed: safetensors writes user metadata keys in Rust HashMap order,
/// which changes from run to run. This writer fixes it as "format" first, then the other keys sorted.
public struct SafeTensorsWriter {
    /// Tensors in the order they were added (the state-dict order, which sharding follows).
    public private(set) var entries: [TensorEntry] = []
    /// User metadata; `format: pt` is always written and may not be set to anything else.
    public var metadata: [String: String]
    private var namesSeen = Set<String>()

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    public mutating func add(_ name: String, dtype: DType, shape: [Int], source: TensorSource) throws {
        func fail(_ problem: String) -> SafeTensorsError { .invalidTensor(name: name, problem: problem) }
        guard name != "__metadata__" else { throw fail("the name __metadata__ is reserved") }
        guard !namesSeen.contains(name) else { throw fail("added twice") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("negative dimension in shape \(shape)") }
        let elements = shape.reduce(1, *)
        switch source {
        case .bytes(let b):
            guard b.count == elements * dtype.byteSize else {
                throw fail("\(dtype.rawValue) \(shape) needs \(elements * dtype.byteSize) bytes, got \(b.count)")
            }
        case .rawProducer(let count, _):
            guard count == elements * dtype.byteSize else {
                throw fail("\(dtype.rawValue) \(shape) needs \(elements * dtype.byteSize) bytes, producer declares \(count)")
            }
        case .floats(let f):
            guard dtype == .f32 || dtype == .bf16 || dtype == .f16 else { throw fail("f32 data can only be stored as F32, BF16 or F16, not \(dtype.rawValue)") }
            guard f.count == elements else { throw fail("shape \(shape) has \(elements) elements, got \(f.count) values") }
        case .floatProducer(let count, _):
            guard dtype == .f32 || dtype == .bf16 || dtype == .f16 else { throw fail("f32 data can only be stored as F32, BF16 or F16, not \(dtype.rawValue)") }
            guard count == elements else { throw fail("shape \(shape) has \(elements) elements, producer declares \(count)") }
        }
        namesSeen.insert(name)
        entries.append(TensorEntry(name: name, dtype: dtype, shape: shape, source: source))
    }

    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: [UInt8]) throws {
        try add(name, dtype: dtype, shape: shape, source: .bytes(bytes))
    }

    /// Stores f32 values as `dtype` (F32, or BF16/F16 rounded exactly as PyTorch rounds).
    public mutating func add(_ name: String, shape: [Int], floats: [Float], as dtype: DType = .f32) throws {
        try add(name, dtype: dtype, shape: shape, source: .floats(floats))
    }

    /// Total size of the tensor data in bytes.
    public var dataSize: Int { entries.reduce(0) { $0 + $1.byteCount } }

    /// The entries in file order: dtype descending by Rust enum rank, then name compared bytewise.
    public var fileOrder: [TensorEntry] {
        entries.sorted { a, b in
            if a.dtype.safetensorsRank != b.dtype.safetensorsRank { return a.dtype.safetensorsRank > b.dtype.safetensorsRank }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// The header JSON padded with spaces to a multiple of 8 (the N bytes after the length prefix).
    public func headerBytes() throws -> [UInt8] {
        if let format = metadata["format"], format != "pt" {
            throw SafeTensorsError.invalidTensor(name: "__metadata__", problem: "format must be \"pt\" (transformers refuses other values), got \"\(format)\"")
        }
        var meta = JSONObject()
        meta["format"] = .string("pt")
        for key in metadata.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) where key != "format" {
            meta[key] = .string(metadata[key]!)
        }
        var root = JSONObject()
        root["__metadata__"] = .object(meta)
        var offset = 0
        for e in fileOrder {
            let end = offset + e.byteCount
            root[e.name] = .object(JSONObject([
                ("dtype", .string(e.dtype.rawValue)),
                ("shape", .array(e.shape.map { .int(Int64($0)) })),
                ("data_offsets", .array([.int(Int64(offset)), .int(Int64(end))])),
            ]))
            offset = end
        }
        var bytes = Array(JSONWriter.compact.string(.object(root)).utf8)
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8))
        return bytes
    }

    /// Writes the file atomically: a temporary file beside `path`, fsynced, then renamed over it.
    public func write(to path: String) throws {
        let header = try headerBytes()
        let out = try StreamingFileWriter(destination: path)
        do {
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try out.write($0) }
            try header.withUnsafeBytes { try out.write($0) }
            for e in fileOrder { try Self.writeData(of: e, to: out) }
            try out.commit()
        } catch {
            out.abandon()
            throw error
        }
    }

    private static func writeData(of e: TensorEntry, to out: StreamingFileWriter) throws {
        switch e.source {
        case .bytes(let b):
            try b.withUnsafeBytes { try out.write($0) }
        case .floats(let f):
            try f.withUnsafeBufferPointer { try writeFloats($0, as: e.dtype, to: out) }
        case .rawProducer(let count, let produce):
            var written = 0
            try produce { piece in
                written += piece.count
                guard written <= count else { throw SafeTensorsError.invalidTensor(name: e.name, problem: "producer gave more than the declared \(count) bytes") }
                try out.write(piece)
            }
            guard written == count else { throw SafeTensorsError.invalidTensor(name: e.name, problem: "producer gave \(written) of the declared \(count) bytes") }
        case .floatProducer(let count, let produce):
            var written = 0
            try produce { piece in
                written += piece.count
                guard written <= count else { throw SafeTensorsError.invalidTensor(name: e.name, problem: "producer gave more than the declared \(count) values") }
                try writeFloats(piece, as: e.dtype, to: out)
            }
            guard written == count else { throw SafeTensorsError.invalidTensor(name: e.name, problem: "producer gave \(written) of the declared \(count) values") }
        }
    }

    /// Converts in bounded chunks so a large f32 tensor stored as bf16 needs no full-size copy.
    private static func writeFloats(_ values: UnsafeBufferPointer<Float>, as dtype: DType, to out: StreamingFileWriter) throws {
        if dtype == .f32 {
            try out.write(UnsafeRawBufferPointer(values))
            return
        }
        let chunk = 1 << 16
        var scratch = [UInt16](repeating: 0, count: min(chunk, values.count))
        var start = 0
        while start < values.count {
            let end = min(start + chunk, values.count)
            let src = UnsafeBufferPointer(rebasing: values[start..<end])
            try scratch.withUnsafeMutableBufferPointer { dst in
                let d = UnsafeMutableBufferPointer(rebasing: dst[0..<src.count])
                if dtype == .bf16 { HalfConversion.toBF16(src, d) } else { HalfConversion.toF16(src, d) }
                try out.write(UnsafeRawBufferPointer(d))
            }
            start = end
        }
    }
}
