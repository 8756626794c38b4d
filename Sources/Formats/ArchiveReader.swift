import CArchive
import Foundation

public enum ArchiveError: Error, CustomStringConvertible {
    case open(path: String, reason: String)
    case read(path: String, entry: String?, reason: String)
    case write(path: String, entry: String?, reason: String)
    case memberNotFound(path: String, member: String, available: [String])

    public var description: String {
        switch self {
        case .open(let path, let reason): return "\(path): cannot open: \(reason)"
        case .read(let path, let entry, let reason): return "\(path)\(entry.map { ": \($0)" } ?? ""): read failed: \(reason)"
        case .write(let path, let entry, let reason): return "\(path)\(entry.map { ": \($0)" } ?? ""): write failed: \(reason)"
        case .memberNotFound(let path, let member, let available):
            let shown = available.prefix(10).joined(separator: ", ") + (available.count > 10 ? ", ..." : "")
            return "\(path): no member '\(member)'" + Suggestion.phrase(for: member, in: available) + " (members: \(shown))"
        }
    }
}

public struct ArchiveEntry: Equatable, Sendable {
    public enum Kind: Sendable { case file, directory, symlink, other }
    public var name: String
    /// Unknown for single compressed streams (the size is only known once decompressed).
    public var size: Int64?
    public var kind: Kind
}

/// Streams the entries of an archive (.tar, .tar.gz, .tar.zst, .tar.xz, .zip, ...) or the single
/// stream of a compressed file (.jsonl.gz, .jsonl.zst), which appears as one entry named after
/// the file without its compression suffix. Data is read in chunks; nothing is held whole unless
/// `readAll` is asked for.
public final class ArchiveReader: ByteSource {
    public enum Mode: Sendable {
        /// By file name: `.tar*`, `.tgz`, `.tzst`, `.zip`, ... are archives; `.gz`, `.zst`, `.xz`,
        /// `.bz2`, `.lz4` alone are single streams; anything else is tried as an archive first.
        case automatic
        case archive
        case singleStream
    }

    public let path: String
    public private(set) var currentEntry: ArchiveEntry?
    private let handle: OpaquePointer
    private let isSingleStream: Bool
    /// libarchive's gzip filter does not verify the trailer's CRC-32, so a flipped byte would pass as
    /// text; a single .gz stream is checked here as it is read (nil when not a .gz stream).
    private var gzipCheck: GzipTrailerCheck?

    public var sourceName: String { currentEntry.map { isSingleStream ? path : "\(path):\($0.name)" } ?? path }

    public init(path: String, mode: Mode = .automatic) throws {
        self.path = path
        guard let a = archive_read_new() else { throw ArchiveError.open(path: path, reason: "out of memory") }
        handle = a
        let kind = mode == .automatic ? Self.guessMode(path) : mode
        isSingleStream = kind == .singleStream
        archive_read_support_filter_all(a)
        if isSingleStream {
            archive_read_support_format_raw(a)
            archive_read_support_format_empty(a)
        } else {
            archive_read_support_format_all(a)
            if mode == .automatic && kind == .automatic { archive_read_support_format_raw(a) }
        }
        // From here on a throw runs deinit, which frees the handle.
        guard FileManager.default.fileExists(atPath: path) else {
            throw ArchiveError.open(path: path, reason: "no such file")
        }
        if archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK {
            throw ArchiveError.open(path: path, reason: Self.message(a))
        }
        if isSingleStream, path.lowercased().hasSuffix(".gz") { gzipCheck = GzipTrailerCheck(path: path) }
    }

    deinit { archive_read_free(handle) }

    static func guessMode(_ path: String) -> Mode {
        let name = (path as NSString).lastPathComponent.lowercased()
        let archiveSuffixes = [".tar", ".tgz", ".tbz2", ".txz", ".tzst", ".zip", ".7z", ".cpio"]
        if archiveSuffixes.contains(where: name.hasSuffix) { return .archive }
        for suffix in [".gz", ".zst", ".xz", ".bz2", ".lz4"] where name.hasSuffix(suffix) {
            return name.dropLast(suffix.count).hasSuffix(".tar") ? .archive : .singleStream
        }
        return .automatic
    }

    static func message(_ a: OpaquePointer) -> String {
        archive_error_string(a).map { String(cString: $0) } ?? "unknown libarchive error"
    }

    /// Advances to the next entry; nil after the last. Unread data of the current entry is skipped.
    public func nextEntry() throws -> ArchiveEntry? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(handle, &entry)
        if status == ARCHIVE_EOF { currentEntry = nil; return nil }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
            throw ArchiveError.read(path: path, entry: currentEntry?.name, reason: Self.message(handle))
        }
        var name = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
        if isSingleStream || name == "data" && archive_format(handle) == ARCHIVE_FORMAT_RAW {
            name = Self.streamName(path)
        }
        let type = archive_entry_filetype(entry) & 0o170000
        let kind: ArchiveEntry.Kind = type == 0o100000 ? .file : type == 0o040000 ? .directory : type == 0o120000 ? .symlink : .other
        let size: Int64? = archive_entry_size_is_set(entry) != 0 ? archive_entry_size(entry) : nil
        currentEntry = ArchiveEntry(name: name, size: size, kind: isSingleStream ? .file : kind)
        return currentEntry
    }

    /// "train.jsonl" for "data/train.jsonl.zst".
    static func streamName(_ path: String) -> String {
        let name = (path as NSString).lastPathComponent
        for suffix in [".gz", ".zst", ".xz", ".bz2", ".lz4"] where name.lowercased().hasSuffix(suffix) {
            return String(name.dropLast(suffix.count))
        }
        return name
    }

    /// Reads the next bytes of the current entry; 0 at its end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard currentEntry != nil, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = archive_read_data(handle, base, buffer.count)
            if n > 0 { gzipCheck?.update(UnsafeRawBufferPointer(start: base, count: n)) }
            if n == 0, let reason = gzipCheck?.finish() {
                throw ArchiveError.read(path: path, entry: currentEntry?.name, reason: reason)
            }
            if n >= 0 { return n }
            if n == Int(ARCHIVE_RETRY) { continue }
            throw ArchiveError.read(path: path, entry: currentEntry?.name, reason: Self.message(handle))
        }
    }

    /// The whole current entry. `limit` guards against decompressing something huge by mistake.
    public func readAll(limit: Int = 1 << 31) throws -> Data {
        var result = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return result }
            result.append(contentsOf: chunk[..<n])
            if result.count > limit {
                throw ArchiveError.read(path: path, entry: currentEntry?.name, reason: "entry is larger than \(limit) bytes")
            }
        }
    }

    /// Lines of the current entry.
    public func lines(maxLineBytes: Int = LineReader.defaultMaxLineBytes) -> LineReader {
        LineReader(source: self, name: sourceName, maxLineBytes: maxLineBytes)
    }

    /// Advances to the entry named `member` (paths compared without a leading "./").
    public func seek(to member: String) throws -> ArchiveEntry {
        func clean(_ s: String) -> String { s.hasPrefix("./") ? String(s.dropFirst(2)) : s }
        var seen: [String] = []
        while let e = try nextEntry() {
            if clean(e.name) == clean(member) { return e }
            seen.append(e.name)
        }
        throw ArchiveError.memberNotFound(path: path, member: member, available: seen)
    }

    /// Every entry's name and data, for small archives and tests.
    public static func readEntries(path: String) throws -> [(entry: ArchiveEntry, data: Data)] {
        let reader = try ArchiveReader(path: path)
        var out: [(ArchiveEntry, Data)] = []
        while let e = try reader.nextEntry() { out.append((e, e.kind == .file ? try reader.readAll() : Data())) }
        return out
    }
}

/// CRC-32 (the gzip polynomial) of the decompressed bytes, compared with the stream's trailer at the end.
/// A file of several gzip members carries one trailer per member; only a single-member file (its
/// trailer's length field equals the bytes read) is checked, which is what gzip itself writes.
struct GzipTrailerCheck {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
    private let trailer: (crc: UInt32, size: UInt32)?
    private var crc: UInt32 = 0xFFFF_FFFF
    private var size: UInt64 = 0
    private var done = false

    init(path: String) {
        guard let h = FileHandle(forReadingAtPath: path), let end = try? h.seekToEnd(), end >= 18,
              (try? h.seek(toOffset: end - 8)) != nil, let d = try? h.read(upToCount: 8), d.count == 8 else { trailer = nil; return }
        let b = [UInt8](d)
        func le(_ i: Int) -> UInt32 { UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24 }
        trailer = (le(0), le(4))
        try? h.close()
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var c = crc
        for byte in bytes { c = Self.table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        crc = c
        size += UInt64(bytes.count)
    }

    /// What is wrong at the end of the stream, once; nil when the checksum matches or cannot be told.
    mutating func finish() -> String? {
        guard !done, let trailer else { return nil }
        done = true
        let actual = crc ^ 0xFFFF_FFFF
        guard UInt32(truncatingIfNeeded: size) == trailer.size, actual != trailer.crc else { return nil }
        return String(format: "gzip checksum mismatch: the decompressed data has CRC-32 %08x, the file records %08x (the file is corrupt)",
                      actual, trailer.crc)
    }
}
