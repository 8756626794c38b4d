import Foundation
import SwiftFinetune

/// `swift-finetune export SOURCE OUT [--dtype f32|bf16|f16] [--max-shard-size 5GB] [--archive]`: writes a
/// Hugging Face model folder (config.json in the transformers-4 layout, weights sharded as
/// save_pretrained shards them, generation_config.json, tokenizer files copied). SOURCE may be a model
/// folder or a training checkpoint, whose fp32 master weights are used (what DeepSpeed needs
/// zero_to_fp32.py for). SOURCE may also be a PEFT LoRA adapter folder (a run's final/ or checkpoint):
/// it is merged into its base (adapter_config.json's base_model_name_or_path, or `--base DIR`) as
/// PEFT's merge_and_unload does. `--archive` writes OUT as one .tar.zst instead of a folder.
enum ExportCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "export", args, flagNames: ["archive"])
        let dtypeName = a.string("dtype")
        let shard = a.string("max-shard-size")
        let archive = a.flag("archive")
        let givenBase = a.string("base")
        try a.finish(positionals: 2...2)
        let (source, out) = (a.positionals[0], a.positionals[1])
        if !archive { try HuggingFaceExport.checkTarget(out, source: source) }
        let model: TransformerModel
        // Tokenizer and generation_config.json come from here: the base's, for a merged adapter.
        var companions = source
        if AdapterTraining.isAdapterFolder(source) {
            let base = try ModelPath.folder(try AdapterTraining.baseModel(of: source, given: givenBase))
            companions = base
            model = try TransformerModel.load(directory: base)
            try AdapterTraining.attach(source, to: model)
            model.adapter!.merge(into: model)
            model.adapter = nil
        } else {
            model = try TransformerModel.load(directory: source)
            // A checkpoint: its f32 master weights (in every rank's optimizer shard) replace the folder's
            // weights, which may have been saved in bf16.
            if FileManager.default.fileExists(atPath: (source as NSString).appendingPathComponent(TrainingEngine.optimizerStateFileName(rank: 0))) {
                try TrainingEngine.readState(directory: source, layout: model.layout, into: ["master": model.params])
            }
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
}
