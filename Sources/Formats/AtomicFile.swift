import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum AtomicFileError: Error, CustomStringConvertible {
    case io(path: String, operation: String, errno: Int32)
    /// A folder cannot be made at `path` because `blocker` (itself or a parent) is a file.
    case notAFolder(path: String, blocker: String)

    public var description: String {
        switch self {
        case .notAFolder(let path, let blocker):
            return blocker == path ? "\(path): is a file, expected a folder" : "cannot create the folder '\(path)': '\(blocker)' is a file"
        case .io(let path, let operation, let code):
            return "\(path): \(operation) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// Writes that never leave a half-written file where a user's file was: data goes to a temporary
/// file beside the target, is fsynced, then renamed over it, and the folder is fsynced.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AtomicFileError.io(path: tmp, operation: "open", errno: errno) }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    let e = errno
                    close(fd)
                    throw AtomicFileError.io(path: tmp, operation: "write", errno: e)
                }
                done += n
            }
        }
        if fsync(fd) != 0 { let e = errno; close(fd); throw AtomicFileError.io(path: tmp, operation: "fsync", errno: e) }
        close(fd)
        try rename(tmp, to: path)
        ok = true
    }

    /// Creates `path` and its missing parents with mkdir(2), so a failure names the part at fault in
    /// plain words (a file in the way, no permission) instead of a Foundation error dump.
    public static func createFolder(_ path: String) throws {
        var built = path.hasPrefix("/") ? "" : "."
        func shown(_ p: String) -> String { p.hasPrefix("./") ? String(p.dropFirst(2)) : p }
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            built += "/" + part
            var st = stat()
            if stat(built, &st) == 0 {
                guard (st.st_mode & S_IFMT) == S_IFDIR else { throw AtomicFileError.notAFolder(path: path, blocker: shown(built)) }
                continue
            }
            if mkdir(built, 0o755) != 0 && errno != EEXIST {
                throw AtomicFileError.io(path: shown(built), operation: "creating the folder", errno: errno)
            }
        }
    }

    public static func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw AtomicFileError.io(path: to, operation: "rename", errno: errno) }
        syncDirectory(of: to)
    }

    /// Makes a rename durable. Failure is ignored: some filesystems refuse fsync on directories.
    /// Puts the complete folder `staging` at `directory`, replacing an older one only once the new one is
    /// whole: the old folder is moved aside, the new one renamed into place, then the old one removed.
    public static func replaceDirectory(_ directory: String, with staging: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory) {
            let old = directory + ".old-\(getpid())"
            try fm.moveItem(atPath: directory, toPath: old)
            try rename(staging, to: directory)
            try? fm.removeItem(atPath: old)
        } else {
            try rename(staging, to: directory)
        }
    }

    public static func syncDirectory(of path: String) {
        let dir = (path as NSString).deletingLastPathComponent
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }
}
