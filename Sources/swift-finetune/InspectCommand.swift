import Foundation
import SwiftFinetune

/// `swift-finetune inspect PATH`: what a model folder, sharded checkpoint, safetensors or GGUF file holds.
enum InspectCommand {
    static func run(_ args: [String]) throws {
        let a = try Arguments(command: "inspect", args, flagNames: [])
        try a.finish(positionals: 1...1)
        print(try describe(path: a.positionals[0]))
    }

    static func describe(path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CLIError.failed("\(path): no such file or folder")
        }
        if GGUFModelCache.isGGUF(path) && !isDir.boolValue { return try GGUFFile(path: path).summary() }
        var out: [String] = []
        let configPath = (path as NSString).appendingPathComponent("config.json")
        var config: TransformerConfig?
        if isDir.boolValue, FileManager.default.fileExists(atPath: configPath) {
            let c = try ModelRegistry.config(path: configPath)
            config = c
            out.append(describe(config: c, path: configPath))
        }
        let reader = try CheckpointReader(path: path)
        out.append(reader.summary())
        if let config {
            let model = TransformerModel(config: config)
            do {
                // Name and shape check only: WeightLoader reads nothing until all tensors are known good.
                try checkNames(layout: model.layout, config: config, reader: reader)
                out.append("weights: match config.json (\(groupedDigits(model.parameterCount)) trainable parameters)")
            } catch {
                out.append("weights: \(error)")
            }
        }
        if isDir.boolValue {
            let known = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json", "generation_config.json"]
            let present = known.filter { FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent($0)) }
            out.append("other files: " + (present.isEmpty ? "none" : present.joined(separator: ", ")))
        }
        return out.joined(separator: "\n")
    }

    static func describe(config c: TransformerConfig, path: String) -> String {
        var rope = "learned positions (\(c.maxPositions))"
        if case .rotary(let theta, let scaling) = c.positions {
            rope = "RoPE θ=\(theta)" + (scaling == .none ? "" : ", scaling \(scaling)")
        }
        let eos = c.eosTokenIds.map(String.init).joined(separator: ", ")
        return """
        \(path): \(c.modelType), \(c.numLayers) layers, hidden \(c.hiddenSize), intermediate \(c.intermediateSize)
          attention: \(c.numHeads) heads, \(c.numKVHeads) KV heads, head_dim \(c.headDim); \(rope)
          vocab \(c.vocabSize), \(c.tieWordEmbeddings ? "tied" : "untied") embeddings, norm eps \(c.normEps), dtype \(c.torchDtype?.torchName ?? "unspecified")
          bos \(c.bosTokenId.map(String.init) ?? "none"), eos [\(eos)]
        """
    }

    static func checkNames(layout: ParameterLayout, config: TransformerConfig, reader: CheckpointReader) throws {
        struct ShapesOnly: WeightSource {
            let reader: CheckpointReader
            var sourceName: String { reader.sourceName }
            var tensorNames: [String] { reader.tensorNames }
            func tensorShape(_ name: String) -> [Int]? { reader.tensorShape(name) }
            func readTensor(_ name: String, into: UnsafeMutableBufferPointer<Float>) throws {}
        }
        _ = try WeightLoader.validate(layout: layout, config: config, from: ShapesOnly(reader: reader))
    }
}
