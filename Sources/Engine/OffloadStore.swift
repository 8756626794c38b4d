import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why an offload store could not be created or used. Every case names the file or directory involved,
/// so a disk problem reported hours into a run points straight at the culprit.
public enum OffloadError: Error, CustomStringConvertible, Equatable {
    /// The directory could not be created, or is not writable (errno text from the failing call).
    case unwritableDirectory(path: String, reason: String)
    /// The filesystem holding `path` has fewer free bytes than the arrays need; nothing was written.
    case notEnoughSpace(path: String, needed: Int, available: Int)
    /// ENOSPC while preallocating or writing `path` (at `offset`, `bytes` long).
    case noSpaceLeft(path: String, offset: Int, bytes: Int)
    /// The file ended before `expected` bytes could be read at `offset`.
    case shortRead(path: String, offset: Int, expected: Int, got: Int)
    /// The kernel accepted no bytes of a write at `offset` without reporting an error.
    case shortWrite(path: String, offset: Int, expected: Int, got: Int)
    /// Any other failing system call (`operation` is e.g. "open", "pread", "posix_fallocate").
    case ioFailed(operation: String, path: String, reason: String)
    case invalidArgument(String)
    case unknownArray(name: String, known: [String])
    /// `stream`, `read` or `write` was called while a `stream` is running (e.g. from inside its body).
    case busy
    /// The store was closed; its files are gone.
    case closed

    public var description: String {
        switch self {
        case let .unwritableDirectory(path, reason):
            return "offload directory '\(path)' is not usable: \(reason)"
        case let .notEnoughSpace(path, needed, available):
            return "not enough free space for offload files in '\(path)': need \(needed) bytes, \(available) available"
        case let .noSpaceLeft(path, offset, bytes):
            return "no space left on device while writing offload file '\(path)' (\(bytes) bytes at offset \(offset))"
        case let .shortRead(path, offset, expected, got):
            return "short read from offload file '\(path)': expected \(expected) bytes at offset \(offset), got \(got)"
        case let .shortWrite(path, offset, expected, got):
            return "short write to offload file '\(path)': expected \(expected) bytes at offset \(offset), wrote \(got)"
        case let .ioFailed(operation, path, reason):
            return "\(operation) failed on offload file '\(path)': \(reason)"
        case let .invalidArgument(message):
            return "invalid offload request: \(message)"
        case let .unknownArray(name, known):
            return "no offloaded array named '\(name)' (known: \(known.joined(separator: ", ")))"
        case .busy:
            return "offload store is busy: a stream is in progress (stream, read and write are not reentrant)"
        case .closed:
            return "offload store was closed; its files have been removed"
        }
    }
}

/// ZeRO-Infinity-style NVMe tier: named f32 arrays of `count` elements, each in its own file
/// `<directory>/<name>.f32`, accessed through a fixed set of page-aligned chunk buffers (see `stream`).
///
/// The files are scratch space, not user data: `close()` (also run at deinit) deletes them, and removes
/// the directories this store created — never a directory that existed before. The data is not fsync'ed:
/// a crash loses the run anyway, and checkpoints go through `read` into the normal checkpoint files.
///
/// Memory: only `residentBufferBytes` are allocated here, whatever `count` is. The kernel's page cache
/// will still hold recently touched file pages; it is reclaimable and does not count in RSS.
public final class OffloadStore {
    public let directory: String
    public let names: [String]
    public let count: Int
    /// Elements per chunk (the requested size, capped at `count` so tiny arrays do not waste buffers).
    public let chunkElements: Int
    /// Absolute file path per array, in `names` order.
    public let paths: [String]

    /// One chunk computes, one is read ahead, one is written behind.
    static let slotCount = 3

    var descriptors: [Int32]
    /// `slots[s][a]`: chunk buffer of slot `s` for array `a`, page-aligned.
    let slots: [[UnsafeMutablePointer<Float>]]
    let slotStride: Int
    let ioQueue = DispatchQueue(label: "swift-finetune.offload-io")
    var streaming = false
    var isClosed = false
    /// Directories created by this store, outermost first, removed (if empty) at close.
    private var createdDirectories: [String]

    /// Returns the free bytes for unprivileged writers on the filesystem holding a path.
    typealias AvailableBytes = (String) throws -> Int

    public convenience init(directory: String, names: [String], count: Int, chunkElements: Int) throws {
        try self.init(directory: directory, names: names, count: count, chunkElements: chunkElements,
                      availableBytes: OffloadStore.statvfsAvailableBytes, forceZeroFill: false)
    }

    /// `availableBytes` and `forceZeroFill` (skip posix_fallocate, as when it returns EOPNOTSUPP) exist
    /// for tests.
    init(directory: String, names: [String], count: Int, chunkElements: Int,
         availableBytes: AvailableBytes, forceZeroFill: Bool) throws {
        guard count >= 0 else { throw OffloadError.invalidArgument("count \(count) is negative") }
        guard chunkElements >= 1 else {
            throw OffloadError.invalidArgument("chunkElements \(chunkElements) must be at least 1")
        }
        guard !names.isEmpty else { throw OffloadError.invalidArgument("no arrays named") }
        for name in names where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
            throw OffloadError.invalidArgument("array name '\(name)' must be a plain, non-hidden file name")
        }
        guard Set(names).count == names.count else {
            throw OffloadError.invalidArgument("array names \(names) contain duplicates")
        }
        let (fileBytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !overflow, !fileBytes.multipliedReportingOverflow(by: names.count).overflow else {
            throw OffloadError.invalidArgument("\(names.count) arrays of \(count) floats overflow Int")
        }

        let directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.directory = directory
        self.names = names
        self.count = count
        self.chunkElements = min(chunkElements, max(count, 1))
        self.paths = names.map { "\(directory)/\($0).f32" }
        self.createdDirectories = []
        self.descriptors = []

        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        slotStride = (self.chunkElements * MemoryLayout<Float>.stride + page - 1) / page * page
        var slots: [[UnsafeMutablePointer<Float>]] = []
        for _ in 0..<Self.slotCount {
            var buffers: [UnsafeMutablePointer<Float>] = []
            for _ in names {
                var raw: UnsafeMutableRawPointer?
                guard posix_memalign(&raw, page, slotStride) == 0, let raw else {
                    slots.append(buffers)
                    Self.free(slots)
                    throw OffloadError.invalidArgument("cannot allocate \(slotStride) bytes of chunk buffer")
                }
                buffers.append(raw.bindMemory(to: Float.self, capacity: slotStride / MemoryLayout<Float>.stride))
            }
            slots.append(buffers)
        }
        self.slots = slots

        do {
            createdDirectories = try Self.makeDirectories(directory)
            guard access(directory, W_OK | X_OK) == 0 else {
                throw OffloadError.unwritableDirectory(path: directory, reason: Self.errnoText())
            }
            // Files left by an earlier run are truncated below, so their space counts as available.
            let reclaimable = paths.reduce(0) { total, path in
                var info = stat()
                return total + (stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? Int(info.st_size) : 0)
            }
            let needed = fileBytes * names.count
            let available = try availableBytes(directory)
            guard needed <= available + reclaimable else {
                throw OffloadError.notEnoughSpace(path: directory, needed: needed, available: available + reclaimable)
            }
            for path in paths {
                let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    throw OffloadError.ioFailed(operation: "open", path: path, reason: Self.errnoText())
                }
                descriptors.append(fd)
                try Self.preallocate(fd: fd, bytes: fileBytes, path: path, forceZeroFill: forceZeroFill)
            }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// The bounded buffer: `slotCount` chunks per array, each rounded up to whole pages.
    public var residentBufferBytes: Int { Self.slotCount * names.count * slotStride }

    /// Bytes on disk across all arrays.
    public var fileBytes: Int { names.count * count * MemoryLayout<Float>.stride }

    /// Deletes the files, the directories this store created (if empty) and the buffers. Idempotent;
    /// every later call on the store throws `OffloadError.closed`.
    public func close() {
        if isClosed { return }
        isClosed = true
        ioQueue.sync {}
        for fd in descriptors { _ = Glibc.close(fd) }
        descriptors = []
        for path in paths { _ = unlink(path) }
        for dir in createdDirectories.reversed() { _ = rmdir(dir) }
        createdDirectories = []
        Self.free(slots)
    }

    /// Copies `range` of `from` into array `name` (initialisation, checkpoint restore).
    public func write(_ name: String, from source: UnsafePointer<Float>, range: Range<Int>) throws {
        let a = try arrayIndex(name, range: range)
        try pwriteFully(array: a, UnsafeRawPointer(source), bytes: range.count * 4, offset: range.lowerBound * 4)
    }

    /// Copies `range` of array `name` into `into` (checkpoint save, inspection).
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, range: Range<Int>) throws {
        let a = try arrayIndex(name, range: range)
        try preadFully(array: a, UnsafeMutableRawPointer(destination), bytes: range.count * 4, offset: range.lowerBound * 4)
    }

    private func arrayIndex(_ name: String, range: Range<Int>) throws -> Int {
        try checkUsable()
        guard let a = names.firstIndex(of: name) else { throw OffloadError.unknownArray(name: name, known: names) }
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw OffloadError.invalidArgument("range \(range) is outside 0..<\(count) of '\(name)'")
        }
        return a
    }

    /// Test hook: points array `name`'s descriptor at another file (e.g. /dev/full, whose writes fail
    /// with ENOSPC) while error messages keep naming the array's own file. Pass `paths[i]` to undo.
    func redirectDescriptorForTesting(_ name: String, to path: String) throws {
        let a = try arrayIndex(name, range: 0..<0)
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw OffloadError.ioFailed(operation: "open", path: path, reason: Self.errnoText()) }
        defer { _ = Glibc.close(fd) }
        guard dup2(fd, descriptors[a]) >= 0 else {
            throw OffloadError.ioFailed(operation: "dup2", path: path, reason: Self.errnoText())
        }
    }

    func checkUsable() throws {
        if isClosed { throw OffloadError.closed }
        if streaming { throw OffloadError.busy }
    }

    // MARK: - POSIX helpers

    /// pread until `bytes` arrive, retrying EINTR and short counts.
    func preadFully(array a: Int, _ buffer: UnsafeMutableRawPointer, bytes: Int, offset: Int) throws {
        var done = 0
        while done < bytes {
            let n = pread(descriptors[a], buffer + done, bytes - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw OffloadError.ioFailed(operation: "pread", path: paths[a], reason: Self.errnoText())
            }
            if n == 0 { throw OffloadError.shortRead(path: paths[a], offset: offset, expected: bytes, got: done) }
            done += n
        }
    }

    /// pwrite until all `bytes` are accepted, retrying EINTR and short counts.
    func pwriteFully(array a: Int, _ buffer: UnsafeRawPointer, bytes: Int, offset: Int) throws {
        try Self.pwriteFully(fd: descriptors[a], path: paths[a], buffer, bytes: bytes, offset: offset)
    }

    private static func pwriteFully(fd: Int32, path: String, _ buffer: UnsafeRawPointer, bytes: Int, offset: Int) throws {
        var done = 0
        while done < bytes {
            let n = pwrite(fd, buffer + done, bytes - done, off_t(offset + done))
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == ENOSPC || code == EDQUOT {
                    throw OffloadError.noSpaceLeft(path: path, offset: offset, bytes: bytes)
                }
                throw OffloadError.ioFailed(operation: "pwrite", path: path, reason: errnoText(code))
            }
            if n == 0 { throw OffloadError.shortWrite(path: path, offset: offset, expected: bytes, got: done) }
            done += n
        }
    }

    static func statvfsAvailableBytes(_ path: String) throws -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else {
            throw OffloadError.unwritableDirectory(path: path, reason: "statvfs: \(errnoText())")
        }
        let (bytes, overflow) = Int(info.f_bavail).multipliedReportingOverflow(by: Int(info.f_frsize))
        return overflow ? Int.max : bytes
    }

    /// Reserves the blocks now so a full disk fails here rather than mid-training. posix_fallocate
    /// returns its error instead of setting errno; filesystems without fallocate get zeros written,
    /// because ftruncate alone would leave a sparse file whose blocks are only claimed on first write.
    private static func preallocate(fd: Int32, bytes: Int, path: String, forceZeroFill: Bool) throws {
        guard bytes > 0 else { return }
        if !forceZeroFill {
            let code = posix_fallocate(fd, 0, off_t(bytes))
            if code == 0 { return }
            if code == ENOSPC || code == EDQUOT { throw OffloadError.noSpaceLeft(path: path, offset: 0, bytes: bytes) }
            guard code == EOPNOTSUPP || code == EINVAL else {
                throw OffloadError.ioFailed(operation: "posix_fallocate", path: path, reason: errnoText(code))
            }
        }
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            throw OffloadError.ioFailed(operation: "ftruncate", path: path, reason: errnoText())
        }
        let block = 1 << 20
        let zeros = UnsafeMutableRawPointer.allocate(byteCount: block, alignment: 4096)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0, count: block)
        for offset in stride(from: 0, to: bytes, by: block) {
            try pwriteFully(fd: fd, path: path, zeros, bytes: min(block, bytes - offset), offset: offset)
        }
    }

    /// mkdir -p that reports the first failing component and returns the directories it created.
    private static func makeDirectories(_ directory: String) throws -> [String] {
        guard !directory.isEmpty else { throw OffloadError.unwritableDirectory(path: directory, reason: "empty path") }
        var prefixes: [String] = []
        var current = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            current += "/" + component
            prefixes.append(current)
        }
        var created: [String] = []
        for prefix in prefixes {
            var info = stat()
            if stat(prefix, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw OffloadError.unwritableDirectory(path: directory, reason: "'\(prefix)' is not a directory")
                }
                continue
            }
            guard mkdir(prefix, 0o755) == 0 || errno == EEXIST else {
                let reason = "mkdir '\(prefix)': \(errnoText())"
                for dir in created.reversed() { _ = rmdir(dir) }
                throw OffloadError.unwritableDirectory(path: directory, reason: reason)
            }
            created.append(prefix)
        }
        return created
    }

    static func errnoText(_ code: Int32 = errno) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }

    private static func free(_ slots: [[UnsafeMutablePointer<Float>]]) {
        for buffers in slots { for buffer in buffers { Glibc.free(buffer) } }
    }
}
