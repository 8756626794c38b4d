/// Where one tensor lies in a GGUF file and what it holds.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    public let type: GGMLType
    /// ggml's order: `dims[0]` is the innermost (contiguous) dimension.
    public let dims: [Int]
    /// Offset from the start of the data section, as stored.
    public let offset: Int
    /// The tensor's bytes as absolute offsets in the file.
    public let fileRange: Range<Int>

    /// PyTorch's order (the reverse of `dims`): what the gguf package and transformers call the shape.
    public var shape: [Int] { dims.reversed() }
    public var elementCount: Int { dims.reduce(1, *) }
    public var byteCount: Int { fileRange.count }
}

/// The parsed and validated start of a GGUF file: version, metadata and tensor infos. Every length and
/// count is checked against the bytes that remain before it is used, so a corrupt or hostile file gets
/// an error naming what was being read, never a crash or a huge allocation. Validation follows the gguf
/// package's reader (versions 2 and 3, unique keys and tensor names, power-of-two u32 alignment) and adds
/// what llama.cpp's loader checks (at most 4 dims, aligned offsets, tensors inside the file, no overlap).
struct GGUFHeader {
    static let magic: [UInt8] = Array("GGUF".utf8)
    static let defaultAlignment = 32
    static let maxNesting = 4

    let version: UInt32
    /// In file order.
    let metadata: [(key: String, value: GGUFValue)]
    /// In file order (the order of the tensor infos, which is how writers lay out the data).
    let tensors: [GGUFTensorInfo]
    let alignment: Int
    /// Absolute offset of the data section.
    let dataOffset: Int

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> GGUFHeader {
        var r = ByteReader(bytes: bytes, path: path)
        guard bytes.count >= 4, Array(bytes[0..<4]) == magic else {
            throw GGUFError.badMagic(path: path, found: Array(bytes.prefix(4)))
        }
        r.offset = 4
        let version = try r.u32("the version")
        // A big-endian file reads as a version whose low 16 bits are 0 (the gguf package's test).
        if version & 0xFFFF == 0 && version != 0 { throw GGUFError.bigEndian(path: path) }
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(path: path, version: version) }
        let tensorCount = try r.u64("the tensor count")
        let kvCount = try r.u64("the metadata count")
        // Smallest possible entries: a key/value is an empty key (8), a type (4) and a 1-byte value; a
        // tensor info is an empty name (8), n_dims (4), type (4) and offset (8).
        try r.checkCount(kvCount, minimumBytes: 13, what: "the metadata count")
        try r.checkCount(tensorCount, minimumBytes: 24, what: "the tensor count")

        var metadata: [(key: String, value: GGUFValue)] = []
        metadata.reserveCapacity(Int(kvCount))
        var seen = Set<String>()
        for _ in 0..<kvCount {
            let key = try r.string("a metadata key")
            guard seen.insert(key).inserted else { throw GGUFError.duplicateKey(path: path, key: key) }
            let type = try r.u32("the type of '\(key)'")
            metadata.append((key, try r.value(type: type, key: key, depth: 0)))
        }

        var alignment = defaultAlignment
        if let a = metadata.first(where: { $0.key == "general.alignment" })?.value {
            guard case .uint32(let v) = a else { throw GGUFError.invalidAlignment(path: path, problem: "must be a u32, found \(a.summary)") }
            guard v != 0 && v & (v - 1) == 0 else { throw GGUFError.invalidAlignment(path: path, problem: "must be a non-zero power of two, found \(v)") }
            alignment = Int(v)
        }

        var raw: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = []
        raw.reserveCapacity(Int(tensorCount))
        for _ in 0..<tensorCount {
            let name = try r.string("a tensor name")
            let n = try r.u32("the dimension count of '\(name)'")
            guard n <= 4 else { throw GGUFError.tooManyDimensions(path: path, tensor: name, dims: n) }
            var dims: [UInt64] = []
            for i in 0..<n { dims.append(try r.u64("dimension \(i) of '\(name)'")) }
            let type = try r.u32("the type of '\(name)'")
            let offset = try r.u64("the data offset of '\(name)'")
            raw.append((name, dims, type, offset))
        }
        let dataOffset = (r.offset + alignment - 1) / alignment * alignment
        let dataSize = max(0, bytes.count - dataOffset)
        var tensors: [GGUFTensorInfo] = []
        var names = Set<String>()
        for t in raw {
            guard names.insert(t.name).inserted else { throw GGUFError.duplicateTensor(path: path, tensor: t.name) }
            tensors.append(try info(t, dataOffset: dataOffset, dataSize: dataSize, alignment: alignment, path: path))
        }
        let byOffset = tensors.sorted { ($0.offset, $0.byteCount) < ($1.offset, $1.byteCount) }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.fileRange.upperBound > b.fileRange.lowerBound && b.byteCount > 0 {
            throw GGUFError.overlappingTensors(path: path, first: a.name, second: b.name)
        }
        return GGUFHeader(version: version, metadata: metadata, tensors: tensors, alignment: alignment, dataOffset: dataOffset)
    }

    private static func info(_ t: (name: String, dims: [UInt64], type: UInt32, offset: UInt64), dataOffset: Int,
                             dataSize: Int, alignment: Int, path: String) throws -> GGUFTensorInfo {
        guard let type = GGMLType(rawValue: t.type) else {
            if let known = GGMLType.otherNames[t.type] {
                throw GGUFError.unsupportedTensorType(path: path, tensor: t.name, type: known)
            }
            throw GGUFError.unknownTensorType(path: path, tensor: t.name, type: t.type)
        }
        var elements = 1
        var dims: [Int] = []
        for d in t.dims {
            guard let v = Int(exactly: d) else {
                throw GGUFError.invalidShape(path: path, tensor: t.name, dims: t.dims, problem: "hold a dimension beyond 2^63")
            }
            let (p, overflow) = elements.multipliedReportingOverflow(by: v)
            guard !overflow else { throw GGUFError.invalidShape(path: path, tensor: t.name, dims: t.dims, problem: "have more elements than fit in 64 bits") }
            elements = p
            dims.append(v)
        }
        if let inner = dims.first, inner % type.blockSize != 0 {
            throw GGUFError.invalidShape(path: path, tensor: t.name, dims: t.dims,
                                         problem: "start with \(inner), not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        let (bytes, overflow) = (elements / type.blockSize).multipliedReportingOverflow(by: type.blockBytes)
        guard !overflow else { throw GGUFError.invalidShape(path: path, tensor: t.name, dims: t.dims, problem: "need more bytes than fit in 64 bits") }
        guard t.offset % UInt64(alignment) == 0 else {
            throw GGUFError.misalignedTensor(path: path, tensor: t.name, offset: t.offset, alignment: alignment)
        }
        guard t.offset <= UInt64(dataSize), bytes <= dataSize - Int(t.offset) else {
            throw GGUFError.tensorOutOfRange(path: path, tensor: t.name, begin: t.offset, byteCount: bytes, dataSize: dataSize)
        }
        let begin = dataOffset + Int(t.offset)
        return GGUFTensorInfo(name: t.name, type: type, dims: dims, offset: Int(t.offset), fileRange: begin..<(begin + bytes))
    }
}

/// Little-endian reads that check the remaining length first and say what was being read when it is short.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    var remaining: Int { bytes.count - offset }

    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws -> Int {
        guard n <= remaining else { throw GGUFError.truncated(path: path, offset: offset, needed: n, what: what()) }
        defer { offset += n }
        return offset
    }

    mutating func u8(_ what: @autoclosure () -> String) throws -> UInt8 { bytes[try take(1, what())] }
    mutating func u16(_ what: @autoclosure () -> String) throws -> UInt16 {
        UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(2, what()), as: UInt16.self))
    }
    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4, what()), as: UInt32.self))
    }
    mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8, what()), as: UInt64.self))
    }

    /// A count of items each at least `minimumBytes` long must fit in what is left of the file.
    func checkCount(_ count: UInt64, minimumBytes: Int, what: String) throws {
        let limit = UInt64(remaining / minimumBytes)
        if count > limit { throw GGUFError.absurdCount(path: path, what: what, count: count, limit: limit) }
    }

    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let start = offset
        let length = try u64("the length of \(what())")
        guard length <= UInt64(remaining) else {
            throw GGUFError.stringTooLong(path: path, offset: start, length: length, remaining: remaining, what: what())
        }
        let at = try take(Int(length), what())
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + Int(length))]), as: UTF8.self) else {
            throw GGUFError.invalidUTF8(path: path, offset: start, what: what())
        }
        return s
    }

    mutating func value(type raw: UInt32, key: String, depth: Int) throws -> GGUFValue {
        guard let type = GGUFValueType(rawValue: raw) else { throw GGUFError.unknownValueType(path: path, key: key, type: raw) }
        switch type {
        case .uint8: return .uint8(try u8(key))
        case .int8: return .int8(Int8(bitPattern: try u8(key)))
        case .uint16: return .uint16(try u16(key))
        case .int16: return .int16(Int16(bitPattern: try u16(key)))
        case .uint32: return .uint32(try u32(key))
        case .int32: return .int32(Int32(bitPattern: try u32(key)))
        case .float32: return .float32(Float(bitPattern: try u32(key)))
        case .uint64: return .uint64(try u64(key))
        case .int64: return .int64(Int64(bitPattern: try u64(key)))
        case .float64: return .float64(Double(bitPattern: try u64(key)))
        case .bool:
            let b = try u8(key)
            guard b <= 1 else { throw GGUFError.invalidBool(path: path, key: key, byte: b) }
            return .bool(b == 1)
        case .string: return .string(try string("the value of '\(key)'"))
        case .array:
            guard depth < GGUFHeader.maxNesting else { throw GGUFError.nestingTooDeep(path: path, key: key) }
            let elementRaw = try u32("the element type of '\(key)'")
            guard let element = GGUFValueType(rawValue: elementRaw) else {
                throw GGUFError.unknownValueType(path: path, key: key, type: elementRaw)
            }
            let count = try u64("the length of '\(key)'")
            // Strings take at least their 8-byte length, nested arrays a type and a count.
            let minimum = element.scalarSize ?? (element == .string ? 8 : 12)
            guard count <= UInt64(remaining / minimum) else {
                throw GGUFError.arrayTooLong(path: path, key: key, count: count, remaining: remaining)
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<count { values.append(try value(type: elementRaw, key: key, depth: depth + 1)) }
            return .array(elementType: element, values: values)
        }
    }
}
