import Foundation
import SwiftFinetune

/// `swift-finetune export SOURCE OUT [--dtype f32|bf16|f16] [--max-shard-size 5GB] [--archive]`: writes a
/// Hugging Face model folder (config.json in the transformers-4 layout, weights sharded as
/// save_pretrained shards them, generation_config.json, tokenizer files copied). SOURCE may be a model
/// folder or a training checkpoint, whose fp32 master weights are used (what DeepSpeed needs
/// zero_to_fp32.py for). SOURCE may also be a PEFT LoRA adapter folder (a run's final/ or checkpoint):
/// it is merged into its base (adapter_config.json's base_model_name_or_path, or `--base DIR`) as
/// PEFT's merge_and_unload does. `--archive` writes OUT as one .tar.zst instead of a folder. `--format
/// gguf` (the default when OUT ends in .gguf) writes one llama.cpp GGUF file instead, `--dtype
/// f32|f16|bf16|q8_0`; for an adapter, of the merged model.
enum ExportCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "export", args, flagNames: ["archive"])
        let dtypeName = a.string("dtype")
        let shard = a.string("max-shard-size")
        let archive = a.flag("archive")
        let givenBase = a.string("base")
        let format = a.string("format")
        try a.finish(positionals: 2...2)
        let (given, out) = (a.positionals[0], a.positionals[1])
        let toGGUF = (format?.lowercased() ?? (GGUFModelCache.isGGUF(out) ? "gguf" : "hf")) == "gguf"
        // A Hugging Face folder replaces OUT: never over a file, a folder of other files, or the source.
        if !archive && !toGGUF { try HuggingFaceExport.checkTarget(out, source: given) }
        let model: TransformerModel
        // Tokenizer and generation_config.json come from here: the base's, for a merged adapter.
        var companions = given
        if AdapterTraining.isAdapterFolder(given) {
            let base = try ModelPath.folder(try AdapterTraining.baseModel(of: given, given: givenBase))
            companions = base
            model = try TransformerModel.load(directory: base)
            try AdapterTraining.attach(given, to: model)
            model.adapter!.merge(into: model)
            model.adapter = nil
        } else {
            let source = try ModelPath.folder(given)
            companions = source
            model = try TransformerModel.load(directory: source)
            // A checkpoint: its f32 master weights (in every rank's optimizer shard) replace the folder's
            // weights, which may have been saved in bf16.
            if FileManager.default.fileExists(atPath: (source as NSString).appendingPathComponent(TrainingEngine.optimizerStateFileName(rank: 0))) {
                try TrainingEngine.readState(directory: source, layout: model.layout, into: ["master": model.params])
            }
        }
        switch format?.lowercased() ?? (GGUFModelCache.isGGUF(out) ? "gguf" : "hf") {
        case "gguf":
            guard !archive, shard == nil else { throw CLIError.usage("export", "--archive and --max-shard-size are for Hugging Face folders, not --format gguf") }
            return try writeGGUF(model: model, source: companions, out: out, dtypeName: dtypeName)
        case "hf", "huggingface", "safetensors": break
        default: throw CLIError.usage("export", "--format must be hf or gguf, got '\(format!)'")
        }
        let dtype: DType
        if let dtypeName {
            let short: [String: DType] = ["f32": .f32, "fp32": .f32, "bf16": .bf16, "f16": .f16, "fp16": .f16]
            guard let d = short[dtypeName.lowercased()] ?? DType(torchName: dtypeName), [.f32, .bf16, .f16].contains(d) else {
                throw CLIError.usage("export", "--dtype must be f32, bf16 or f16, got '\(dtypeName)'")
            }
            dtype = d
        } else {
            dtype = model.config.exportDType
        }
        let maxShard = try shard.map { try ShardSize.parse($0) } ?? ShardSize.transformersDefault
        if archive {
            let path = out.hasSuffix(".tar.zst") ? out : out + ".tar.zst"
            let staging = path + ".export-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: staging) }
            try HuggingFaceExport.write(model: model, dtype: dtype, maxShardSize: maxShard, companionsFrom: companions, to: staging)
            let writer = try ArchiveWriter(path: path)
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            try writer.addDirectory(staging, as: (name as NSString).deletingPathExtension)
            try writer.finish()
            print("exported \(groupedDigits(model.parameterCount)) parameters as \(dtype.rawValue) to \(path)")
            return
        }
        try HuggingFaceExport.write(model: model, dtype: dtype, maxShardSize: maxShard, companionsFrom: companions, to: out)
        print("exported \(groupedDigits(model.parameterCount)) parameters as \(dtype.rawValue) to \(out)")
    }

    /// The GGUF branch: the model's f32 weights (a checkpoint's master weights when SOURCE is one), its
    /// config and the tokenizer files of SOURCE, as llama.cpp's converter would write them.
    static func writeGGUF(model: TransformerModel, source: String, out: String, dtypeName: String?) throws {
        let types: [String: GGMLType] = ["f32": .f32, "fp32": .f32, "f16": .f16, "fp16": .f16, "bf16": .bf16, "q8_0": .q8_0]
        let name = dtypeName?.lowercased() ?? "f32"
        guard let type = types[name] else { throw CLIError.usage("export", "--dtype for gguf must be f32, f16, bf16 or q8_0, got '\(dtypeName!)'") }
        guard let config = model.config.transformers4JSON(dtype: .f32).objectValue else { throw CLIError.usage("export", "config of \(source) is not an object") }
        var shapes: [String: [Int]] = [:]
        var ranges: [String: Range<Int>] = [:]
        for e in model.layout.entries { shapes[e.name] = e.shape; ranges[e.name] = e.range }
        let plan = try GGUFFromHuggingFace(config: config, available: shapes, tokenizerFolder: source, source: source)
        let params = model.params
        let counts = try plan.write(to: out, type: type) { hf, into in
            let values = params.floats(ranges[hf]!)
            _ = into.initialize(from: values)
        }
        let byType = counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.name) \(groupedDigits($0.value))" }
        print("exported \(groupedDigits(model.parameterCount)) parameters (\(byType.joined(separator: ", "))) as \(plan.mapping.ggufArchitecture) GGUF to \(out)")
    }
}
