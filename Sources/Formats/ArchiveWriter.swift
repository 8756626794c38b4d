import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes an archive (`swift-finetune export --archive` writes .tar.zst). Output goes to a
/// temporary file that is fsynced and renamed into place by `finish()`, so an interrupted export
/// never leaves a truncated archive under the final name. With a fixed modification time (the
/// default), the same inputs give byte-identical archives: owners, permissions and times are
/// normalised and `addDirectory` adds files in sorted order.
public final class ArchiveWriter {
    public enum Format: Sendable {
        case tar, tarGzip, tarZstd, tarXz, zip
        /// One compressed file, no archive structure (.jsonl.gz / .jsonl.zst); exactly one entry.
        case gzip, zstd

        /// The format a file name asks for (`out.tar.zst` → `.tarZstd`).
        public static func from(path: String) -> Format? {
            let name = path.lowercased()
            let table: [(String, Format)] = [(".tar.zst", .tarZstd), (".tzst", .tarZstd), (".tar.gz", .tarGzip), (".tgz", .tarGzip),
                                             (".tar.xz", .tarXz), (".tar", .tar), (".zip", .zip), (".gz", .gzip), (".zst", .zstd)]
            return table.first { name.hasSuffix($0.0) }?.1
        }

        var isSingleStream: Bool { self == .gzip || self == .zstd }
    }

    public let path: String
    public let format: Format
    /// Seconds since 1970 given to every entry; nil keeps each file's own time.
    public let modificationTime: Int64?
    private var handle: OpaquePointer?
    private let tmpPath: String
    private let fd: Int32
    private var entries = 0

    /// `compressionLevel` is passed to the zstd/gzip/xz filter (zstd 1–19, default 3).
    public init(path: String, format: Format? = nil, modificationTime: Int64? = 0, compressionLevel: Int? = nil) throws {
        guard let format = format ?? Format.from(path: path) else {
            throw ArchiveError.write(path: path, entry: nil, reason: "cannot tell the archive format from the name; use .tar, .tar.gz, .tar.zst, .tar.xz, .zip, .gz or .zst")
        }
        self.path = path
        self.format = format
        self.modificationTime = modificationTime
        tmpPath = path + ".tmp-\(getpid())"
        fd = open(tmpPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ArchiveError.write(path: path, entry: nil, reason: String(cString: strerror(errno))) }
        guard let a = archive_write_new() else {
            close(fd)
            unlink(tmpPath)
            throw ArchiveError.write(path: path, entry: nil, reason: "out of memory")
        }
        handle = a
        do {
            try configure(a, compressionLevel: compressionLevel)
            try check(archive_write_open_fd(a, fd), entry: nil)
        } catch {
            abandon()
            throw error
        }
    }

    deinit { abandon() }

    private func configure(_ a: OpaquePointer, compressionLevel: Int?) throws {
        switch format {
        case .tar, .tarGzip, .tarZstd, .tarXz: try check(archive_write_set_format_pax_restricted(a), entry: nil)
        case .zip: try check(archive_write_set_format_zip(a), entry: nil)
        case .gzip, .zstd: try check(archive_write_set_format_raw(a), entry: nil)
        }
        let filter: String?
        switch format {
        case .tarGzip, .gzip: try check(archive_write_add_filter_gzip(a), entry: nil); filter = "gzip"
        case .tarZstd, .zstd: try check(archive_write_add_filter_zstd(a), entry: nil); filter = "zstd"
        case .tarXz: try check(archive_write_add_filter_xz(a), entry: nil); filter = "xz"
        case .tar, .zip: filter = nil
        }
        if let filter {
            // Compressed output needs no padding to tar's 10 KiB records.
            archive_write_set_bytes_in_last_block(a, 1)
            if let level = compressionLevel {
                try check(archive_write_set_filter_option(a, filter, "compression-level", "\(level)"), entry: nil)
            }
            // gzip stores the current time in its header unless told not to.
            if filter == "gzip", modificationTime != nil {
                try check(archive_write_set_filter_option(a, "gzip", "timestamp", nil), entry: nil)
            }
        }
    }

    private func check(_ status: Int32, entry: String?) throws {
        guard status >= ARCHIVE_WARN else {
            throw ArchiveError.write(path: path, entry: entry, reason: handle.map(ArchiveReader.message) ?? "libarchive error")
        }
    }

    private func header(name: String, size: Int64, type: UInt32, permissions: Int32, mtime: Int64) throws -> OpaquePointer {
        guard let a = handle else { throw ArchiveError.write(path: path, entry: name, reason: "the archive is already finished") }
        if format.isSingleStream && entries > 0 {
            throw ArchiveError.write(path: path, entry: name, reason: "a .gz/.zst file holds exactly one stream; write an archive (.tar.zst) for several files")
        }
        guard let e = archive_entry_new() else { throw ArchiveError.write(path: path, entry: name, reason: "out of memory") }
        archive_entry_set_pathname_utf8(e, name)
        archive_entry_set_size(e, size)
        archive_entry_set_filetype(e, type)
        archive_entry_set_perm(e, mode_t(permissions))
        archive_entry_set_mtime(e, time_t(mtime), 0)
        archive_entry_set_uid(e, 0)
        archive_entry_set_gid(e, 0)
        let status = archive_write_header(a, e)
        archive_entry_free(e)
        try check(status, entry: name)
        entries += 1
        return a
    }

    private func writeData(_ a: OpaquePointer, _ bytes: UnsafeRawBufferPointer, entry: String) throws {
        var done = 0
        while done < bytes.count {
            let n = archive_write_data(a, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { try check(Int32(n), entry: entry) }
            if n <= 0 { throw ArchiveError.write(path: path, entry: entry, reason: "libarchive accepted no data") }
            done += n
        }
    }

    /// Adds `data` as a file named `name` inside the archive.
    public func add(_ data: Data, as name: String, permissions: Int32 = 0o644) throws {
        let a = try header(name: name, size: Int64(data.count), type: 0o100000, permissions: permissions,
                           mtime: modificationTime ?? Int64(Date().timeIntervalSince1970))
        try data.withUnsafeBytes { try writeData(a, $0, entry: name) }
        try check(archive_write_finish_entry(a), entry: name)
    }

    /// Streams a file from disk into the archive in chunks (model shards can be many GB).
    public func addFile(from source: String, as name: String) throws {
        var st = stat()
        guard stat(source, &st) == 0 else { throw ArchiveError.write(path: path, entry: name, reason: "\(source): \(String(cString: strerror(errno)))") }
        let input = try FileByteSource(path: source)
        let a = try header(name: name, size: Int64(st.st_size), type: 0o100000, permissions: 0o644,
                           mtime: modificationTime ?? Int64(st.st_mtim.tv_sec))
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        var total: Int64 = 0
        while true {
            let n = try input.read(into: chunk)
            if n == 0 { break }
            try writeData(a, UnsafeRawBufferPointer(rebasing: chunk[..<n]), entry: name)
            total += Int64(n)
        }
        guard total == Int64(st.st_size) else {
            throw ArchiveError.write(path: path, entry: name, reason: "\(source) changed size while being archived (\(st.st_size) → \(total) bytes)")
        }
        try check(archive_write_finish_entry(a), entry: name)
    }

    /// Adds a folder entry (tar/zip only).
    public func addDirectoryEntry(_ name: String) throws {
        let dirName = name.hasSuffix("/") ? name : name + "/"
        let a = try header(name: dirName, size: 0, type: 0o040000, permissions: 0o755, mtime: modificationTime ?? Int64(Date().timeIntervalSince1970))
        try check(archive_write_finish_entry(a), entry: dirName)
    }

    /// Adds every regular file under `directory` (recursively, sorted by path) as
    /// `prefix/relative/path`. Symlinks are followed; other special files are skipped.
    public func addDirectory(_ directory: String, as prefix: String) throws {
        let base = URL(fileURLWithPath: directory).standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(atPath: base) else {
            throw ArchiveError.write(path: path, entry: prefix, reason: "\(directory): cannot list the folder")
        }
        var files: [String] = []
        while let rel = walker.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + rel, isDirectory: &isDir), !isDir.boolValue { files.append(rel) }
        }
        let cleanPrefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        if !cleanPrefix.isEmpty { try addDirectoryEntry(cleanPrefix) }
        for rel in files.sorted() {
            try addFile(from: base + "/" + rel, as: cleanPrefix.isEmpty ? rel : cleanPrefix + "/" + rel)
        }
    }

    /// Completes the archive and moves it to its final name.
    public func finish() throws {
        guard let a = handle else { return }
        if format.isSingleStream && entries == 0 {
            abandon()
            throw ArchiveError.write(path: path, entry: nil, reason: "nothing was written")
        }
        let closed = archive_write_close(a)
        let reason = ArchiveReader.message(a)
        archive_write_free(a)
        handle = nil
        guard closed == ARCHIVE_OK else {
            close(fd)
            unlink(tmpPath)
            throw ArchiveError.write(path: path, entry: nil, reason: reason)
        }
        if fsync(fd) != 0 {
            let e = errno
            close(fd)
            unlink(tmpPath)
            throw ArchiveError.write(path: path, entry: nil, reason: "fsync: \(String(cString: strerror(e)))")
        }
        close(fd)
        do { try AtomicFile.rename(tmpPath, to: path) } catch {
            unlink(tmpPath)
            throw ArchiveError.write(path: path, entry: nil, reason: "\(error)")
        }
    }

    /// Drops an unfinished archive and its temporary file.
    private func abandon() {
        guard let a = handle else { return }
        archive_write_free(a)
        handle = nil
        close(fd)
        unlink(tmpPath)
    }
}
