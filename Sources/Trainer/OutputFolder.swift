import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Engine
import Formats

/// What a run keeps in `output.dir`, by name: `global_stepN/` checkpoints, `latest` (the newest complete
/// one), `final/` (the export), metrics.jsonl/.csv, and staging folders `NAME.tmp-PID` / `NAME.old-PID`
/// while a folder is written or replaced. Only these names are ever deleted, so a user's own files there
/// are never touched. The rules a DeepSpeed or Hugging Face Trainer user expects follow from them:
/// `resume: auto` continues the run `latest` names and fails loudly when `latest` is unusable; a fresh run
/// into a folder holding an earlier run is refused unless `output.overwrite: true` clears that run first.
public enum OutputFolder {
    public static let latestName = "latest"
    public static let finalName = "final"
    public static let metricsNames = ["metrics.jsonl", "metrics.csv"]

    /// N of a `global_stepN` name.
    public static func checkpointStep(_ name: String) -> Int? {
        guard name.hasPrefix("global_step"), let n = Int(name.dropFirst("global_step".count)), n >= 0,
              name == "global_step\(n)" else { return nil }
        return n
    }

    /// The PID of a staging folder of ours (`global_step20.tmp-123`, `final.old-9`), nil for other names.
    static func stagingOwner(_ name: String) -> Int32? {
        for marker in [".tmp-", ".old-"] {
            guard let r = name.range(of: marker, options: .backwards) else { continue }
            let base = String(name[..<r.lowerBound])
            guard checkpointStep(base) != nil || base == finalName, let pid = Int32(name[r.upperBound...]), pid > 0 else { continue }
            return pid
        }
        return nil
    }

    /// The entries of an earlier run: checkpoints, latest, final, metrics (not staging folders).
    static func earlierRun(in dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { checkpointStep($0) != nil || $0 == latestName || $0 == finalName || metricsNames.contains($0) }.sorted {
            (checkpointStep($0) ?? -1, $0) < (checkpointStep($1) ?? -1, $1)
        }
    }

    /// The problem with starting a fresh run in `dir` (nil when there is none): an earlier run is there.
    static func freshRunProblem(_ dir: String, resume: String?, overwrite: Bool) -> String? {
        guard !overwrite else { return nil }
        let found = earlierRun(in: dir)
        // `resume: auto` continues what `latest` names; without `latest` there is nothing to continue.
        if resume == "auto", found.contains(latestName) { return nil }
        if let r = resume, r != "auto" { return found.isEmpty || isInside(r, dir) ? nil : problemText(dir, found) }
        return found.isEmpty ? nil : problemText(dir, found)
    }

    private static func problemText(_ dir: String, _ found: [String]) -> String {
        let shown = found.prefix(6).joined(separator: ", ") + (found.count > 6 ? ", …" : "")
        return "'\(dir)' holds an earlier run (\(shown)); set resume: auto to continue it, or output.overwrite: true to delete those and start over"
    }

    private static func isInside(_ path: String, _ dir: String) -> Bool {
        let real = { (p: String) in URL(fileURLWithPath: p).resolvingSymlinksInPath().standardizedFileURL.path }
        return real(path).hasPrefix(real(dir) + "/")
    }

    /// Deletes the earlier run's entries (overwrite), only those names.
    static func clearEarlierRun(in dir: String) throws {
        for name in earlierRun(in: dir) { try FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name)) }
    }

    /// Removes staging folders of ours left by a run that died (disk full, a kill): those whose PID is no
    /// longer a live process. Returns their names.
    @discardableResult
    static func removeStaleStaging(in dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var removed: [String] = []
        for name in names.sorted() {
            guard let pid = stagingOwner(name), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            if (try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name))) != nil { removed.append(name) }
        }
        return removed
    }

    /// The checkpoint `resume: auto` continues: nil when `latest` does not exist (nothing to resume), else
    /// the folder it names, which must be a checkpoint of this output folder.
    static func latestCheckpoint(in dir: String) throws -> String? {
        let latest = (dir as NSString).appendingPathComponent(latestName)
        var entry = stat()
        guard lstat(latest, &entry) == 0 else { return nil }
        func fail(_ why: String) -> TrainerError { .configuration("resume: auto: \(latest) \(why)") }
        if let problem = RegularFile.problem(latest) { throw fail("cannot be read: \(problem)") }
        guard let data = FileManager.default.contents(atPath: latest), let text = String(data: data, encoding: .utf8) else {
            throw fail("cannot be read as UTF-8 text")
        }
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw fail("is empty; it should name the newest checkpoint (global_stepN)") }
        guard checkpointStep(name) != nil else {
            throw fail("names '\(name.prefix(200))', which is not a checkpoint folder of this output folder (global_stepN)")
        }
        let folder = (dir as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("engine_state.json")) else {
            throw fail("names '\(name)', but \(folder)/engine_state.json does not exist")
        }
        return folder
    }

    /// The checkpoints `keep_last` removes after `current` was saved: the oldest of those numbered below
    /// it, keeping `keep` in all. Higher-numbered ones belong to another run's timeline (a resume from an
    /// older checkpoint) and are left, so `latest` never names a removed folder.
    static func checkpointsBeyond(keep: Int, current: Int, in dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let older = names.compactMap(checkpointStep).filter { $0 < current }.sorted()
        return older.dropLast(max(keep - 1, 0)).map { "global_step\($0)" }
    }
}
