import Foundation
import SwiftFinetune

/// `swift-finetune convert MODEL.gguf OUT_DIR`: the Hugging Face folder transformers' own GGUF loading makes
/// of a llama.cpp file (config.json, f32 model.safetensors, generation_config.json, tokenizer.json,
/// tokenizer_config.json with the chat template), written atomically.
enum ConvertCommand {
    static func run(_ args: [String]) throws {
        let a = try Arguments(command: "convert", args, flagNames: [])
        try a.finish(positionals: 2...2)
        let (source, out) = (a.positionals[0], a.positionals[1])
        let started = Date()
        let file = try GGUFFile(path: source)
        let conversion = try GGUFToHuggingFace(file: file)
        try conversion.write(to: out)
        let parameters = conversion.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        print(String(format: "converted %@ (%@, %@ parameters) to %@ in %.1f s", source, conversion.mapping.modelType,
                     groupedDigits(parameters), out, Date().timeIntervalSince(started)))
    }
}
