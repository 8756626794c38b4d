import Foundation

// TensorBoard event files, written without TensorFlow: TFRecord framing (length, masked CRC-32C of the
// length, data, masked CRC-32C of the data) around `Event` protobufs, which this file encodes by hand.
// Only the fields scalars need are written (tensorflow/core/util/event.proto, summary.proto):
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecord uses.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// TFRecord stores CRCs masked, so that a CRC of data that itself holds CRCs stays well distributed.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

/// The protobuf wire format, as far as event files need it: varints, 64- and 32-bit fixed fields and
/// length-delimited fields (strings and nested messages).
public struct ProtobufWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func key(_ field: Int, wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// int64 fields: negative values are ten-byte two's-complement varints, as protobuf writes them.
    public mutating func int64(_ field: Int, _ value: Int64) {
        key(field, wireType: 0)
        varint(UInt64(bitPattern: value))
    }

    public mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    public mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    public mutating func lengthDelimited(_ field: Int, _ payload: [UInt8]) {
        key(field, wireType: 2)
        varint(UInt64(payload.count))
        bytes += payload
    }

    public mutating func string(_ field: Int, _ value: String) { lengthDelimited(field, Array(value.utf8)) }
}

/// One TensorBoard event: the file header (`file_version`) or a step's scalars.
public enum TensorBoardEvent {
    case fileVersion(wallTime: Double)
    case scalars(wallTime: Double, step: Int64, [(tag: String, value: Float)])

    public var encoded: [UInt8] {
        var event = ProtobufWriter()
        switch self {
        case .fileVersion(let wallTime):
            event.double(1, wallTime)
            event.string(3, "brain.Event:2")
        case .scalars(let wallTime, let step, let values):
            event.double(1, wallTime)
            event.int64(2, step)
            var summary = ProtobufWriter()
            for (tag, value) in values {
                var v = ProtobufWriter()
                v.string(1, tag)
                v.float(2, value)
                summary.lengthDelimited(1, v.bytes)
            }
            event.lengthDelimited(5, summary.bytes)
        }
        return event.bytes
    }

    /// The record as it lies in the file: little-endian uint64 length, masked CRC of those 8 bytes,
    /// the data, masked CRC of the data.
    public static func tfRecord(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        out += length
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(length)).littleEndian) { out += $0 }
        out += data
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(data)).littleEndian) { out += $0 }
        return out
    }
}

public enum TensorBoardWriterError: Error, CustomStringConvertible {
    case cannotCreate(path: String, reason: String)
    public var description: String {
        switch self { case .cannotCreate(let p, let r): return "\(p): cannot create the TensorBoard event file: \(r)" }
    }
}

/// An event file `events.out.tfevents.{unix time}.{host name}` in `directory` (created), as TensorFlow's
/// and PyTorch's SummaryWriter name them; each run (and each resume) starts a file of its own, and
/// TensorBoard reads every file of the folder. Records are flushed as they are written, so a crashed
/// run keeps what it logged.
public final class TensorBoardEventWriter {
    public let path: String
    private let handle: FileHandle

    public init(directory: String, now: Date = Date()) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TensorBoardWriterError.cannotCreate(path: directory, reason: "\(error.localizedDescription)")
        }
        let seconds = Int(now.timeIntervalSince1970)
        var name = "events.out.tfevents.\(seconds).\(ProcessInfo.processInfo.hostName)"
        // Two writers in one second (a quick resume) must not append to each other's file.
        var n = 1
        while FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(name)) {
            name = "events.out.tfevents.\(seconds).\(ProcessInfo.processInfo.hostName).\(n)"
            n += 1
        }
        path = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw TensorBoardWriterError.cannotCreate(path: path, reason: "permission denied or not a folder")
        }
        handle = h
        write(.fileVersion(wallTime: now.timeIntervalSince1970))
    }

    deinit { try? handle.close() }

    public func write(_ event: TensorBoardEvent) {
        handle.write(Data(TensorBoardEvent.tfRecord(event.encoded)))
    }

    public func scalars(step: Int, _ values: [(tag: String, value: Float)], wallTime: Double = Date().timeIntervalSince1970) {
        guard !values.isEmpty else { return }
        write(.scalars(wallTime: wallTime, step: Int64(step), values))
    }
}
