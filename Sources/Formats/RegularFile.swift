import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a file is expected, only a regular file is opened: a named pipe would block the open (and a
/// read) forever, a folder or device is never what a user meant, and the reason a path cannot be read
/// (a symlink loop, a missing link target, a folder on the way that is not searchable) is worth saying
/// precisely. Every reader of a whole file (JSON, YAML, tokenizer files, safetensors) asks here first.
public enum RegularFile {
    /// What is wrong with reading `path` as a regular file, in words a user can act on; nil when nothing is.
    public static func problem(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let code = errno
            switch code {
            case ENOENT:
                var link = stat()
                if lstat(path, &link) == 0, (link.st_mode & S_IFMT) == S_IFLNK { return "a symbolic link to a missing file" }
                return "no such file"
            case ELOOP: return "a loop of symbolic links"
            case EACCES: return "permission denied (a folder on the path cannot be searched)"
            case ENOTDIR: return "a part of the path is a file, not a folder"
            case ENAMETOOLONG: return "the path is too long"
            default: return String(cString: strerror(code))
            }
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return access(path, R_OK) == 0 ? nil : "permission denied"
        case S_IFDIR: return "a folder, expected a file"
        case S_IFIFO: return "a named pipe (FIFO), expected a regular file"
        case S_IFSOCK: return "a socket, expected a regular file"
        case S_IFCHR, S_IFBLK: return "a device, expected a regular file"
        default: return "not a regular file"
        }
    }

    /// The whole file; `fail(reason)` makes the caller's own error type.
    public static func contents(_ path: String, fail: (String) -> Error) throws -> Data {
        if let problem = problem(path) { throw fail(problem) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read the file") }
        return data
    }
}
