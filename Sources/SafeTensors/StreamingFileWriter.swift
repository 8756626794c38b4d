import Formats
#if canImport(Glibc)
import Glibc
#endif

/// An atomic file write that streams: bytes go through a small buffer to a temporary file beside the
/// destination, which is fsynced and renamed over it on `commit()` (Formats' `AtomicFile` needs the
/// whole content in memory, which a multi-GB checkpoint must not).
public final class StreamingFileWriter {
    public let destination: String
    public let temporary: String
    private var fd: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var used = 0

    public init(destination: String, bufferSize: Int = 1 << 20) throws {
        self.destination = destination
        temporary = destination + ".tmp-\(getpid())"
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SafeTensorsError.io(path: temporary, operation: "open", errno: errno) }
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        if fd >= 0 { close(fd); unlink(temporary) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if used + bytes.count > buffer.count {
            try flush()
            if bytes.count >= buffer.count {
                try writeAll(bytes)
                return
            }
        }
        guard bytes.count > 0 else { return }
        UnsafeMutableRawBufferPointer(rebasing: buffer[used..<(used + bytes.count)]).copyMemory(from: bytes)
        used += bytes.count
    }

    public func commit() throws {
        try flush()
        guard fsync(fd) == 0 else { throw SafeTensorsError.io(path: temporary, operation: "fsync", errno: errno) }
        let rc = close(fd)
        fd = -1
        guard rc == 0 else {
            let e = errno
            unlink(temporary)
            throw SafeTensorsError.io(path: temporary, operation: "close", errno: e)
        }
        do {
            try AtomicFile.rename(temporary, to: destination)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Drops the temporary file; the destination is untouched.
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1; unlink(temporary) }
    }

    private func flush() throws {
        try writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
        used = 0
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.io(path: temporary, operation: "write", errno: errno)
            }
            done += n
        }
    }
}
