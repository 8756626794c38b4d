import Foundation
import SwiftFinetune

/// `swift-finetune export SOURCE OUT_DIR [--dtype f32|bf16|f16] [--max-shard-size 5GB]`: writes a
/// Hugging Face model folder (config.json in the transformers-4 layout, weights sharded as
/// save_pretrained shards them, generation_config.json, tokenizer files copied).
enum ExportCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "export", args, flagNames: [])
        let dtypeName = a.string("dtype")
        let shard = a.string("max-shard-size")
        try a.finish(positionals: 2...2)
        let (source, out) = (a.positionals[0], a.positionals[1])
        let model = try TransformerModel.load(directory: source)
        let dtype: DType
        if let dtypeName {
            let short: [String: DType] = ["f32": .f32, "fp32": .f32, "bf16": .bf16, "f16": .f16, "fp16": .f16]
            guard let d = short[dtypeName.lowercased()] ?? DType(torchName: dtypeName), [.f32, .bf16, .f16].contains(d) else {
                throw CLIError.usage("export", "--dtype must be f32, bf16 or f16, got '\(dtypeName)'")
            }
            dtype = d
        } else {
            dtype = model.config.torchDtype.flatMap { [.f32, .bf16, .f16].contains($0) ? $0 : nil } ?? .f32
        }
        let maxShard = try shard.map { try ShardSize.parse($0) } ?? ShardSize.transformersDefault
        try HuggingFaceExport.write(model: model, dtype: dtype, maxShardSize: maxShard, companionsFrom: source, to: out)
        print("exported \(groupedDigits(model.parameterCount)) parameters as \(dtype.rawValue) to \(out)")
    }
}
