import SafeTensors

/// Writes a GGUF v3 file: header, metadata in the order added, tensor infos, then each tensor's data at
/// the next multiple of the alignment (32, llama.cpp's default, so no `general.alignment` key is needed),
/// the last one padded too, as the gguf package's GGUFWriter lays it out. Streamed to a temporary file
/// beside the destination and renamed into place, so a crash never leaves half a file under the name.
public struct GGUFWriter {
    public static let alignment = 32

    /// One tensor to write: its PyTorch shape (stored innermost first), its type, and a closure that fills
    /// exactly `type.byteCount(elements:)` bytes when the data section reaches it.
    public struct Tensor {
        public let name: String
        public let type: GGMLType
        public let shape: [Int]
        public let fill: (UnsafeMutableRawBufferPointer) throws -> Void

        public var elementCount: Int { shape.reduce(1, *) }
        public var byteCount: Int { type.byteCount(elements: elementCount) }
    }

    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    public private(set) var tensors: [Tensor] = []

    public init() {}

    public mutating func add(_ key: String, _ value: GGUFValue) {
        precondition(!metadata.contains { $0.key == key }, "metadata key '\(key)' added twice")
        metadata.append((key, value))
    }

    public mutating func addTensor(_ name: String, type: GGMLType, shape: [Int], fill: @escaping (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        guard !tensors.contains(where: { $0.name == name }) else { throw GGUFError.invalidTensorData(tensor: name, problem: "added twice") }
        let count = shape.reduce(1, *)
        guard let inner = shape.last, count % type.blockSize == 0, inner % type.blockSize == 0 else {
            throw GGUFError.invalidTensorData(tensor: name, problem: "shape \(shape) is not whole \(type.name) blocks of \(type.blockSize) along its rows")
        }
        tensors.append(Tensor(name: name, type: type, shape: shape, fill: fill))
    }

    /// Header, metadata and tensor infos, unpadded.
    public func headerBytes() -> [UInt8] {
        var b = ByteBuffer()
        b.bytes += Array("GGUF".utf8)
        b.u32(3)
        b.u64(UInt64(tensors.count))
        b.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            b.string(key)
            b.u32(value.type.rawValue)
            b.value(value)
        }
        var offset = 0
        for t in tensors {
            b.string(t.name)
            b.u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { b.u64(UInt64(d)) }
            b.u32(t.type.rawValue)
            b.u64(UInt64(offset))
            offset = Self.padded(offset + t.byteCount)
        }
        return b.bytes
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    public func write(to path: String) throws {
        let out: StreamingFileWriter
        do { out = try StreamingFileWriter(destination: path) } catch let e as SafeTensorsError {
            throw GGUFError(e, path: path)
        }
        do {
            let zeros = [UInt8](repeating: 0, count: Self.alignment)
            func pad(_ n: Int) throws {
                let extra = Self.padded(n) - n
                if extra > 0 { try zeros.withUnsafeBytes { try out.write(UnsafeRawBufferPointer(rebasing: $0[0..<extra])) } }
            }
            let header = headerBytes()
            try header.withUnsafeBytes { try out.write($0) }
            try pad(header.count)
            for t in tensors {
                let data = UnsafeMutableRawBufferPointer.allocate(byteCount: t.byteCount, alignment: 16)
                defer { data.deallocate() }
                try t.fill(data)
                try out.write(UnsafeRawBufferPointer(data))
                try pad(t.byteCount)
            }
            try out.commit()
        } catch let e as SafeTensorsError {
            out.abandon()
            throw GGUFError(e, path: path)
        } catch {
            out.abandon()
            throw error
        }
    }
}

extension GGUFError {
    /// The streaming writer's I/O errors, restated as GGUF ones for the file being written.
    init(_ e: SafeTensorsError, path: String) {
        if case .io(_, let operation, let code) = e { self = .io(path: path, operation: operation, errno: code) }
        else { self = .invalidTensorData(tensor: path, problem: "\(e)") }
    }
}

/// Little-endian encoding of GGUF's fields.
struct ByteBuffer {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }

    /// A value without its type code (arrays carry their element type once, then bare elements).
    mutating func value(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): u8(x)
        case .int8(let x): u8(UInt8(bitPattern: x))
        case .uint16(let x): u16(x)
        case .int16(let x): u16(UInt16(bitPattern: x))
        case .uint32(let x): u32(x)
        case .int32(let x): u32(UInt32(bitPattern: x))
        case .float32(let x): u32(x.bitPattern)
        case .bool(let x): u8(x ? 1 : 0)
        case .string(let s): string(s)
        case .uint64(let x): u64(x)
        case .int64(let x): u64(UInt64(bitPattern: x))
        case .float64(let x): u64(x.bitPattern)
        case .array(let type, let values):
            u32(type.rawValue)
            u64(UInt64(values.count))
            for e in values { value(e) }
        }
    }
}
