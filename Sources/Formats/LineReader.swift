import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Anything that hands out bytes in chunks: a plain file, an archive entry, a decompressed stream.
public protocol ByteSource: AnyObject {
    /// Fills the front of `buffer`; returns the count, 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

public enum LineReaderError: Error, CustomStringConvertible, Equatable {
    case invalidUTF8(source: String, line: Int, byteOffset: Int)
    case lineTooLong(source: String, line: Int, limit: Int)
    case io(source: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .invalidUTF8(let source, let line, let offset):
            return "\(source):\(line): invalid UTF-8 at byte \(offset + 1) of the line"
        case .lineTooLong(let source, let line, let limit):
            return "\(source):\(line): line is longer than \(limit) bytes"
        case .io(let source, let line, let reason):
            return "\(source): read failed after line \(line): \(reason)"
        }
    }
}

/// A plain file read with read(2) in chunks.
public final class FileByteSource: ByteSource {
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveError.open(path: path, reason: String(cString: strerror(errno))) }
    }

    deinit { close(fd) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw ArchiveError.read(path: path, entry: nil, reason: String(cString: strerror(errno)))
        }
    }
}

/// Lines of a byte stream with 1-based numbers. Handles `\n` and `\r\n`, a last line without a
/// newline, a UTF-8 byte-order mark on line 1, and lines far longer than a chunk. Every line is
/// validated as UTF-8, and errors name the source and line.
public final class LineReader {
    public struct Line: Equatable, Sendable {
        public let number: Int
        public let text: String
    }

    public static let defaultMaxLineBytes = 1 << 30
    public let name: String
    public let maxLineBytes: Int
    private let source: ByteSource
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0, scanned = 0
    private var finished = false
    public private(set) var lineNumber = 0

    public init(source: ByteSource, name: String, chunkSize: Int = 1 << 16, maxLineBytes: Int = defaultMaxLineBytes) {
        self.source = source
        self.name = name
        self.maxLineBytes = maxLineBytes
        buffer = .allocate(byteCount: max(chunkSize, 16), alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// A plain file, or a single compressed stream (.gz, .zst, .xz, .bz2, .lz4) recognised by name.
    public static func open(path: String, maxLineBytes: Int = defaultMaxLineBytes) throws -> LineReader {
        if ArchiveReader.guessMode(path) == .singleStream {
            let reader = try ArchiveReader(path: path, mode: .singleStream)
            guard try reader.nextEntry() != nil else {
                return LineReader(source: EmptySource(), name: path, maxLineBytes: maxLineBytes)
            }
            return reader.lines(maxLineBytes: maxLineBytes)
        }
        return LineReader(source: try FileByteSource(path: path), name: path, maxLineBytes: maxLineBytes)
    }

    /// The lines of one member of an archive (`data.tar.zst`, `train.jsonl`).
    public static func open(archive: String, member: String, maxLineBytes: Int = defaultMaxLineBytes) throws -> LineReader {
        let reader = try ArchiveReader(path: archive, mode: .archive)
        _ = try reader.seek(to: member)
        return reader.lines(maxLineBytes: maxLineBytes)
    }

    /// The next line, or nil at the end of the stream.
    public func next() throws -> Line? {
        while true {
            if let nl = findNewline() {
                let line = try makeLine(from: start, to: nl)
                start = nl + 1
                scanned = start
                return line
            }
            if finished {
                guard start < end else { return nil }
                let line = try makeLine(from: start, to: end)
                start = end
                return line
            }
            try fill()
        }
    }

    public func forEach(_ body: (Line) throws -> Void) throws {
        while let line = try next() { try body(line) }
    }

    public func readAll() throws -> [Line] {
        var lines: [Line] = []
        try forEach { lines.append($0) }
        return lines
    }

    private func findNewline() -> Int? {
        guard scanned < end, let base = buffer.baseAddress else { return nil }
        if let hit = memchr(base + scanned, 0x0A, end - scanned) {
            return base.distance(to: UnsafeMutableRawPointer(hit))
        }
        scanned = end
        return nil
    }

    private func fill() throws {
        if start > 0 {
            let pending = end - start
            if pending > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + start, pending) }
            scanned -= start
            end = pending
            start = 0
        }
        if end == buffer.count {
            guard end <= maxLineBytes else { throw LineReaderError.lineTooLong(source: name, line: lineNumber + 1, limit: maxLineBytes) }
            let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 16)
            bigger.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[..<end]))
            buffer.deallocate()
            buffer = bigger
        }
        do {
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            if n == 0 { finished = true }
            end += n
        } catch let e as LineReaderError {
            throw e
        } catch {
            throw LineReaderError.io(source: name, line: lineNumber, reason: "\(error)")
        }
    }

    private func makeLine(from: Int, to: Int) throws -> Line {
        lineNumber += 1
        var lo = from, hi = to
        if hi - lo > maxLineBytes { throw LineReaderError.lineTooLong(source: name, line: lineNumber, limit: maxLineBytes) }
        let bytes = UnsafeRawBufferPointer(buffer)
        if hi > lo, bytes[hi - 1] == 0x0D { hi -= 1 }
        if lineNumber == 1, hi - lo >= 3, bytes[lo] == 0xEF, bytes[lo + 1] == 0xBB, bytes[lo + 2] == 0xBF { lo += 3 }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[lo..<hi]).bindMemory(to: UInt8.self)
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw LineReaderError.invalidUTF8(source: name, line: lineNumber, byteOffset: Self.firstInvalidByte(slice) + (lo - from))
        }
        return Line(number: lineNumber, text: text)
    }

    private static func firstInvalidByte(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let s): offset += s.count
            case .emptyInput: return offset
            case .error: return offset
            }
        }
    }
}

private final class EmptySource: ByteSource {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { 0 }
}
