import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Tensors are views into it, so nothing is read from disk
/// until touched and the page cache is shared between processes opening the same checkpoint.
/// Public so the GGUF reader maps its files the same way (it reports failures as its own errors).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeMutableRawPointer?

    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: a named pipe would otherwise block open(2) until a writer came; it is then refused
        // below as not a regular file (the flag does nothing for regular files).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SafeTensorsError.io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafeTensorsError.io(path: path, operation: "stat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SafeTensorsError.notARegularFile(path: path) }
        size = Int(st.st_size)
        if size == 0 {
            base = nil  // mmap refuses length 0; an empty file is reported as truncated by the parser
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw SafeTensorsError.io(path: path, operation: "mmap", errno: errno) }
        base = p
    }

    deinit {
        if let base { munmap(base, size) }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    public func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[range])
    }

    /// Drops the whole pages inside `range` from this process's resident set (they stay in the page
    /// cache; a later read faults them back in). Loading reads each tensor once, so without this a
    /// 3.4 GB checkpoint would stay counted in the loader's RSS beside the weights it was read into.
    public func evict(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (range.lowerBound + page - 1) / page * page, hi = range.upperBound / page * page
        guard hi > lo else { return }
        _ = madvise(base + lo, hi - lo, Int32(MADV_DONTNEED))
    }
}
