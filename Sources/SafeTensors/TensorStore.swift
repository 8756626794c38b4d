import Formats
import Foundation
import Tensors

/// Lookup of tensors by name, shared by a single safetensors file and a (possibly sharded) checkpoint,
/// so model loading does not care how the weights were split.
public protocol TensorStore: AnyObject {
    var names: [String] { get }
    func info(_ name: String) -> TensorInfo?
    /// Zero-copy view of the tensor's bytes; valid while the store lives.
    func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer
    /// The file holding `name`, for error messages.
    func source(of name: String) -> String
    /// The tensor's bytes were read and are not needed again soon: a mapped store lets their pages go
    /// from the resident set.
    func evictPages(_ name: String)
}

extension TensorStore {
    /// The tensor converted to f32 (from F32, BF16 or F16; bf16/f16 widen exactly).
    public func floats(_ name: String) throws -> [Float] {
        guard let info = info(name) else { throw SafeTensorsError.tensorNotFound(source: source(of: name), name: name) }
        return try [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, count in
            try readFloats(name, into: buffer)
            count = info.elementCount
        }
    }

    /// Converts the tensor to f32 into `destination`, whose count must equal the element count.
    public func readFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard let info = info(name) else { throw SafeTensorsError.tensorNotFound(source: source(of: name), name: name) }
        let n = info.elementCount
        guard destination.count == n else {
            throw SafeTensorsError.elementCountMismatch(source: source(of: name), tensor: name, expected: n, given: destination.count)
        }
        guard n > 0 else { return }
        let raw = try rawBytes(name)
        switch info.dtype {
        case .f32:
            // memcpy: the data buffer need not be 4-byte aligned in files other writers produced.
            UnsafeMutableRawPointer(destination.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: n * 4)
        case .bf16, .f16:
            try withHalfWords(raw, count: n) { words in
                if info.dtype == .bf16 { HalfConversion.fromBF16(words, destination) } else { HalfConversion.fromF16(words, destination) }
            }
        default:
            throw SafeTensorsError.unsupportedConversion(source: source(of: name), tensor: name, dtype: info.dtype, wanted: "f32 (needs F32, BF16 or F16)")
        }
        evictPages(name)
    }

    /// Integer tensors (I64, I32, I16, I8, U64, U32, U16, U8, BOOL) widened to Int64.
    public func int64s(_ name: String) throws -> [Int64] {
        guard let info = info(name) else { throw SafeTensorsError.tensorNotFound(source: source(of: name), name: name) }
        let raw = try rawBytes(name)
        let n = info.elementCount
        func load<T: FixedWidthInteger>(_: T.Type) -> [Int64] {
            (0..<n).map { Int64(T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
        }
        switch info.dtype {
        case .i64: return load(Int64.self)
        case .i32: return load(Int32.self)
        case .i16: return load(Int16.self)
        case .i8: return load(Int8.self)
        case .u32: return load(UInt32.self)
        case .u16: return load(UInt16.self)
        case .u8, .bool: return load(UInt8.self)
        case .u64:
            return try (0..<n).map { i in
                let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                guard let s = Int64(exactly: v) else {
                    throw SafeTensorsError.valueOutOfRange(source: source(of: name), tensor: name, index: i)
                }
                return s
            }
        default:
            throw SafeTensorsError.unsupportedConversion(source: source(of: name), tensor: name, dtype: info.dtype, wanted: "Int64 (needs an integer or BOOL dtype)")
        }
    }

    /// Sum of element counts over all tensors.
    public var parameterCount: Int { names.reduce(0) { $0 + (info($1)?.elementCount ?? 0) } }

    /// A human-readable listing: one line per tensor (dtype, shape, name) and the totals.
    public func summary(title: String) -> String {
        let infos = names.compactMap { info($0) }
        var byDType: [DType: Int] = [:]
        for t in infos { byDType[t.dtype, default: 0] += t.elementCount }
        let dataBytes = infos.reduce(0) { $0 + $1.byteCount }
        var lines = ["\(title): \(infos.count) tensors, \(groupedDigits(parameterCount)) parameters, \(groupedDigits(dataBytes)) bytes of data"]
        let mix = byDType.sorted { $0.key.safetensorsRank > $1.key.safetensorsRank }
            .map { "\($0.key.rawValue) \(groupedDigits($0.value))" }
        if !mix.isEmpty { lines.append("parameters by dtype: " + mix.joined(separator: ", ")) }
        let shapes = infos.map { "[" + $0.shape.map(String.init).joined(separator: ", ") + "]" }
        let shapeWidth = shapes.map(\.count).max() ?? 0
        for (t, shape) in zip(infos, shapes) {
            let dtype = t.dtype.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
            lines.append("  \(dtype) \(shape.padding(toLength: shapeWidth, withPad: " ", startingAt: 0))  \(t.name)")
        }
        return lines.joined(separator: "\n")
    }
}

/// Views `count` 16-bit words; copies only when the bytes are not 2-byte aligned (possible in files
/// written by other tools), since typed access needs alignment.
func withHalfWords<R>(_ raw: UnsafeRawBufferPointer, count: Int, _ body: (UnsafeBufferPointer<UInt16>) throws -> R) throws -> R {
    if Int(bitPattern: raw.baseAddress) % 2 == 0 {
        return try body(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt16.self), count: count))
    }
    var copy = [UInt16](repeating: 0, count: count)
    copy.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<(count * 2)])) }
    return try copy.withUnsafeBufferPointer(body)
}
