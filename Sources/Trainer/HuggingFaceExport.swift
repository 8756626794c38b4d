import Foundation
import Formats
import Models
import SafeTensors
import Tensors

/// Writes a Hugging Face model folder: config.json (transformers-4 layout), weights sharded as
/// save_pretrained shards them, generation_config.json, and the tokenizer files of the source folder.
/// The folder is built under a temporary name and renamed into place, so a crash never leaves half of it.
public enum HuggingFaceExport {
    public static let tokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model"]

    public static func write(model: TransformerModel, dtype: DType, maxShardSize: Int = ShardSize.transformersDefault,
                             companionsFrom source: String?, to directory: String,
                             generationConfig: JSONValue? = nil,
                             alsoWrite extra: ((_ stagingDirectory: String) throws -> Void)? = nil) throws {
        try staged(directory) { staging in
            try model.save(directory: staging, dtype: dtype, maxShardSize: maxShardSize)
            let copied = try copyCompanions(from: source, into: staging, files: tokenizerFiles + ["generation_config.json"])
            if !copied.contains("generation_config.json") {
                let g = generationConfig ?? defaultGenerationConfig(model.config)
                try g.write(to: (staging as NSString).appendingPathComponent("generation_config.json"))
            }
            // Anything else the folder must hold (engine state of a checkpoint) goes in before the
            // rename, so the folder appears complete or not at all.
            try extra?(staging)
        }
    }

    /// Builds `directory` under a temporary name beside it and renames it into place (replacing an older
    /// folder of the same name only once the new one is complete).
    public static func staged(_ directory: String, _ fill: (_ stagingDirectory: String) throws -> Void) throws {
        let fm = FileManager.default
        let parent = (directory as NSString).deletingLastPathComponent
        try AtomicFile.createFolder(parent.isEmpty ? "." : parent)
        let staging = directory + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try fill(staging)
        try AtomicFile.replaceDirectory(directory, with: staging)
    }

    /// Copies those of `files` that `source` has into `staging`; returns which were copied.
    @discardableResult
    static func copyCompanions(from source: String?, into staging: String, files: [String]) throws -> Set<String> {
        guard let source else { return [] }
        var copied = Set<String>()
        for file in files {
            guard let data = FileManager.default.contents(atPath: (source as NSString).appendingPathComponent(file)) else { continue }
            try AtomicFile.write(data, to: (staging as NSString).appendingPathComponent(file))
            copied.insert(file)
        }
        return copied
    }

    /// What transformers writes from a model config: bos/eos ids.
    static func defaultGenerationConfig(_ c: TransformerConfig) -> JSONValue {
        var o = JSONObject()
        if let bos = c.bosTokenId { o["bos_token_id"] = .int(Int64(bos)) }
        switch c.eosTokenIds.count {
        case 0: break
        case 1: o["eos_token_id"] = .int(Int64(c.eosTokenIds[0]))
        default: o["eos_token_id"] = .array(c.eosTokenIds.map { .int(Int64($0)) })
        }
        o["transformers_version"] = .string("4.57.1")
        return .object(o)
    }
}

/// Why an export may not be written where it was asked to be.
public enum ExportTargetError: Error, CustomStringConvertible, Equatable {
    case isSource(out: String)
    case notAFolder(out: String)
    case holdsOtherFiles(out: String, files: [String])

    public var description: String {
        switch self {
        case .isSource(let out): return "\(out): is the folder being exported; write the export to another folder"
        case .notAFolder(let out): return "\(out): exists and is not a folder"
        case .holdsOtherFiles(let out, let files):
            let shown = files.prefix(5).joined(separator: ", ") + (files.count > 5 ? ", …" : "")
            return "\(out): already holds files an export does not write (\(shown)); an export replaces the whole folder, "
                + "so choose a new or empty folder, or move those files away first"
        }
    }
}

extension HuggingFaceExport {
    /// True for the names `write` creates: an earlier export may be replaced, anything else is the user's.
    static func isExportFile(_ name: String) -> Bool {
        if tokenizerFiles.contains(name) || ["config.json", "generation_config.json", CheckpointReader.singleFileName,
                                             CheckpointReader.indexFileName].contains(name) { return true }
        // Shards: model-00001-of-00003.safetensors.
        return name.hasPrefix("model-") && name.hasSuffix(".safetensors")
    }

    /// Refuses an export that would destroy what it did not write: onto its own source, over a file, or
    /// into a folder holding anything but an earlier export (user files, a checkpoint's engine state).
    public static func checkTarget(_ out: String, source: String) throws {
        let real = { (p: String) in URL(fileURLWithPath: p).resolvingSymlinksInPath().standardizedFileURL.path }
        if real(out) == real(source) { throw ExportTargetError.isSource(out: out) }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: out, isDirectory: &isFolder) else { return }
        guard isFolder.boolValue else { throw ExportTargetError.notAFolder(out: out) }
        let others = try FileManager.default.contentsOfDirectory(atPath: out).filter { !isExportFile($0) }.sorted()
        if !others.isEmpty { throw ExportTargetError.holdsOtherFiles(out: out, files: others) }
    }
}
