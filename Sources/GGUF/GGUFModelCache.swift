import Foundation

/// Lets every command that takes a model folder take a `.gguf` file instead: the file is converted once
/// (`GGUFToHuggingFace`) into a cache folder named after it and keyed by its absolute path, size and
/// modification time, so a changed file is converted again and an unchanged one costs a `stat`.
/// The cache lives in `$SWIFT_FINETUNE_CACHE`, else `$XDG_CACHE_HOME/swift-finetune`, else
/// `~/.cache/swift-finetune`, under `gguf/`.
public enum GGUFModelCache {
    public static func isGGUF(_ path: String) -> Bool { path.lowercased().hasSuffix(".gguf") }

    /// `path` itself unless it names a .gguf file; then the converted folder (converting it first if needed).
    public static func folder(for path: String, log: ((String) -> Void)? = nil) throws -> String {
        guard isGGUF(path) else { return path }
        let fm = FileManager.default
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let attributes: [FileAttributeKey: Any]
        do { attributes = try fm.attributesOfItem(atPath: absolute) } catch {
            throw GGUFError.io(path: path, operation: "open", errno: ENOENT)
        }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let key = fnv1a("\(absolute)|\(size)|\(modified)")
        let name = ((absolute as NSString).lastPathComponent as NSString).deletingPathExtension
        let folder = (root as NSString).appendingPathComponent("gguf/\(name)-\(String(key, radix: 16))")
        if fm.fileExists(atPath: (folder as NSString).appendingPathComponent("config.json")) { return folder }
        log?("converting \(path) into \(folder) (once; later runs reuse it)")
        let conversion = try GGUFToHuggingFace(file: try GGUFFile(path: path))
        try conversion.write(to: folder, replaceExisting: false)
        return folder
    }

    public static var root: String {
        let env = ProcessInfo.processInfo.environment
        if let r = env["SWIFT_FINETUNE_CACHE"], !r.isEmpty { return r }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return (x as NSString).appendingPathComponent("swift-finetune") }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".cache/swift-finetune")
    }

    /// 64-bit FNV-1a: a stable name for the cache key (Swift's Hasher is seeded per process).
    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
