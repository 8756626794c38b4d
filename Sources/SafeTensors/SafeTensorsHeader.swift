import Formats
import Tensors

/// Where one tensor lies in a safetensors file and what it holds.
public struct TensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// The header's `data_offsets`: relative to the start of the data buffer, end exclusive.
    public let dataOffsets: Range<Int>
    /// The same bytes as absolute offsets in the file (`8 + N + dataOffsets`).
    public let fileRange: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>, dataStart: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
        self.fileRange = (dataStart + dataOffsets.lowerBound)..<(dataStart + dataOffsets.upperBound)
    }

    /// Product of the shape; 1 for a 0-dim tensor, 0 for an empty one.
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { dataOffsets.count }
}

/// The parsed and validated header of a safetensors file. Validation is as strict as the Rust reader
/// (tensors tile the buffer exactly, lengths agree with dtype × shape, the file ends with the last
/// tensor) and stricter where it is silent: duplicate names and malformed metadata are errors.
struct SafeTensorsHeader {
    static let maxHeaderLength: UInt64 = 100_000_000

    let headerLength: Int
    /// In data-offset order, which is the order the bytes lie in the file.
    let tensors: [TensorInfo]
    let metadata: [String: String]
    /// Metadata keys in header order (for summaries and faithful copies).
    let metadataKeys: [String]

    static func parse(file bytes: UnsafeRawBufferPointer, path: String) throws -> SafeTensorsHeader {
        let fileSize = bytes.count
        guard fileSize >= 8 else { throw SafeTensorsError.truncated(path: path, fileSize: fileSize) }
        let n = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard n <= maxHeaderLength else { throw SafeTensorsError.headerTooLarge(path: path, length: n) }
        guard 8 + Int(n) <= fileSize else {
            throw SafeTensorsError.headerBeyondFile(path: path, length: n, fileSize: fileSize)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + Int(n))])
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw SafeTensorsError.headerNotUTF8(path: path)
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes: headerBytes, source: path)
        } catch let error as JSONError {
            if case .parse(_, let message) = error { throw SafeTensorsError.headerNotJSON(path: path, message: message) }
            throw error
        }
        guard case .object(let object) = json else {
            throw SafeTensorsError.headerNotObject(path: path, found: json.kindName)
        }
        // json-c keeps the last of duplicated keys without a word, so count the keys in the text.
        if let duplicate = try TopLevelKeys.firstDuplicate(in: headerBytes, path: path) {
            throw SafeTensorsError.duplicateTensor(path: path, name: duplicate)
        }

        var metadata: [String: String] = [:]
        var metadataKeys: [String] = []
        let dataStart = 8 + Int(n)
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(object.count)
        for (name, value) in object {
            if name == "__metadata__" {
                (metadata, metadataKeys) = try parseMetadata(value, path: path)
            } else {
                tensors.append(try parseEntry(name: name, value, dataStart: dataStart, path: path))
            }
        }
        tensors.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
        try checkLayout(tensors, dataSize: fileSize - dataStart, fileSize: fileSize, path: path)
        return SafeTensorsHeader(headerLength: Int(n), tensors: tensors, metadata: metadata, metadataKeys: metadataKeys)
    }

    private static func parseMetadata(_ value: JSONValue, path: String) throws -> ([String: String], [String]) {
        if value.isNull { return ([:], []) }  // serde reads `null` as "no metadata"
        guard case .object(let object) = value else {
            throw SafeTensorsError.invalidMetadata(path: path, problem: "must be an object of strings, found \(value.kindName)")
        }
        var result: [String: String] = [:]
        for (key, v) in object {
            guard let s = v.stringValue else {
                throw SafeTensorsError.invalidMetadata(path: path, problem: "value of '\(key)' must be a string, found \(v.kindName)")
            }
            result[key] = s
        }
        return (result, object.keys)
    }

    private static func parseEntry(name: String, _ value: JSONValue, dataStart: Int, path: String) throws -> TensorInfo {
        func fail(_ problem: String) -> SafeTensorsError { .invalidEntry(path: path, tensor: name, problem: problem) }
        guard case .object(let entry) = value else { throw fail("entry must be an object, found \(value.kindName)") }
        guard let dtypeValue = entry["dtype"] else { throw fail("missing \"dtype\"") }
        guard let dtypeName = dtypeValue.stringValue else { throw fail("\"dtype\" must be a string, found \(dtypeValue.kindName)") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafeTensorsError.unknownDType(path: path, tensor: name, dtype: dtypeName)
        }
        guard let shapeValue = entry["shape"] else { throw fail("missing \"shape\"") }
        guard let dims = shapeValue.arrayValue else { throw fail("\"shape\" must be an array, found \(shapeValue.kindName)") }
        var shape: [Int] = []
        for (i, d) in dims.enumerated() {
            guard case .int(let v) = d else { throw fail("shape[\(i)] must be a non-negative integer, found \(d.kindName)") }
            guard v >= 0 else { throw fail("shape[\(i)] is negative (\(v))") }
            shape.append(Int(v))
        }
        guard let offsetsValue = entry["data_offsets"] else { throw fail("missing \"data_offsets\"") }
        guard let pair = offsetsValue.arrayValue, pair.count == 2 else {
            throw fail("\"data_offsets\" must be an array of two integers, found \(offsetsValue.kindName)")
        }
        guard case .int(let b64) = pair[0], case .int(let e64) = pair[1] else {
            throw fail("\"data_offsets\" must hold two integers, found \(pair[0].kindName) and \(pair[1].kindName)")
        }
        let (b, e) = (Int(b64), Int(e64))
        guard b >= 0, e >= 0 else {
            throw SafeTensorsError.invalidOffsets(path: path, tensor: name, begin: b, end: e, problem: "are out of range (negative)")
        }
        guard b <= e else {
            throw SafeTensorsError.invalidOffsets(path: path, tensor: name, begin: b, end: e, problem: "begin after end")
        }
        var elements = 1
        for d in shape {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("shape \(shape) has more elements than fit in 64 bits") }
            elements = p
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, bytes == e - b else {
            throw SafeTensorsError.byteLengthMismatch(path: path, tensor: name, dtype: dtype, shape: shape,
                                                      expected: overflow ? Int.max : bytes, actual: e - b)
        }
        let (_, past) = dataStart.addingReportingOverflow(e)
        guard !past else {
            throw SafeTensorsError.invalidOffsets(path: path, tensor: name, begin: b, end: e, problem: "are out of range")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: b..<e, dataStart: dataStart)
    }

    /// Tensors sorted by offset must start at 0, follow each other without gaps or overlaps, and the
    /// last must end exactly where the file does.
    private static func checkLayout(_ tensors: [TensorInfo], dataSize: Int, fileSize: Int, path: String) throws {
        var end = 0
        var previous: String?
        for t in tensors {
            let b = t.dataOffsets.lowerBound
            if b > end {
                let after = previous.map { "after '\($0)'" } ?? "at the start of the data buffer"
                throw SafeTensorsError.layout(path: path, problem: "hole of \(b - end) bytes \(after), before '\(t.name)'")
            }
            if b < end {
                throw SafeTensorsError.layout(path: path, problem: "'\(t.name)' [\(b), \(t.dataOffsets.upperBound)) overlaps '\(previous!)' which ends at \(end)")
            }
            end = t.dataOffsets.upperBound
            previous = t.name
            if end > dataSize {
                throw SafeTensorsError.invalidOffsets(path: path, tensor: t.name, begin: b, end: end,
                                                      problem: "extend past the \(dataSize)-byte data buffer: the file is truncated")
            }
        }
        let expected = fileSize - dataSize + end
        guard expected == fileSize else {
            throw SafeTensorsError.dataSizeMismatch(path: path, expectedFileSize: expected, fileSize: fileSize)
        }
    }
}

/// Finds the keys of the outermost JSON object by scanning the text, so that duplicates json-c
/// silently merged can be reported. The text is already known to be valid JSON.
enum TopLevelKeys {
    static func firstDuplicate(in text: UnsafeRawBufferPointer, path: String) throws -> String? {
        var seen = Set<String>()
        var depth = 0
        var expectKey = false
        var i = 0
        let n = text.count
        while i < n {
            let c = text[i]
            switch c {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectKey = depth == 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                if depth == 1 { expectKey = true }
            case UInt8(ascii: "\""):
                let start = i
                var escaped = false
                i += 1
                while i < n {
                    let s = text[i]
                    if s == UInt8(ascii: "\"") && !escaped { break }
                    escaped = s == UInt8(ascii: "\\") && !escaped
                    i += 1
                }
                if depth == 1 && expectKey {
                    expectKey = false
                    let key = try decodeKey(UnsafeRawBufferPointer(rebasing: text[start...i]), path: path)
                    if !seen.insert(key).inserted { return key }
                }
            default:
                break
            }
            i += 1
        }
        return nil
    }

    /// Keys without escapes are their bytes; others go through the JSON parser to undo `\uXXXX` etc.
    private static func decodeKey(_ quoted: UnsafeRawBufferPointer, path: String) throws -> String {
        let inner = UnsafeRawBufferPointer(rebasing: quoted.dropFirst().dropLast())
        if !inner.contains(UInt8(ascii: "\\")) { return String(decoding: inner, as: UTF8.self) }
        return try JSONValue.parse(bytes: quoted, source: path).stringValue ?? ""
    }
}
