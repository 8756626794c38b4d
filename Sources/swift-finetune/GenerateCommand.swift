import Foundation
import SwiftFinetune

/// `swift-finetune generate --model DIR|FILE.gguf [--adapter PEFT_DIR] --prompt TEXT [--chat] [--max-new-tokens N]
/// [--temperature T --top-p P --seed S]`: prints only the generated text, exactly `tokenizer.decode(new_ids,
/// skip_special_tokens=True)`. Greedy by default; stops at any end-of-sequence id of config.json,
/// generation_config.json or the tokenizer. On a terminal the text streams as tokens arrive.
enum GenerateCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "generate", args, flagNames: ["chat"])
        let dir = try ModelPath.folder(try a.required("model"))
        let adapter = a.string("adapter")
        let prompt = try a.required("prompt")
        let chat = a.flag("chat")
        let maxNew = try a.int("max-new-tokens") ?? 128
        let temperature = try a.double("temperature") ?? 0
        let topP = try a.double("top-p") ?? 1
        let seed = try a.int("seed") ?? 0
        try a.finish(positionals: 0...0)
        guard maxNew >= 1 else { throw CLIError.usage("generate", "--max-new-tokens must be at least 1") }
        // The KV cache is sized for prompt + new tokens up front.
        guard maxNew <= TransformerConfig.Limits.positions else {
            throw CLIError.usage("generate", "--max-new-tokens must be at most \(TransformerConfig.Limits.positions), got \(maxNew)")
        }
        guard temperature >= 0, topP > 0, topP <= 1 else {
            throw CLIError.usage("generate", "--temperature must be ≥ 0 and --top-p in (0, 1]")
        }

        let model = try TransformerModel.load(directory: dir)
        // A LoRA adapter runs unmerged, as PeftModel does.
        if let adapter { try AdapterTraining.attach(adapter, to: model) }
        let tokenizer = try Tokenizer.load(directory: dir)
        try ChatPrompt.checkFits(tokenizer, vocabSize: model.config.vocabSize, tokenizerSource: dir + "/tokenizer.json")
        let ids = try ChatPrompt.ids(prompt, chat: chat, tokenizer: tokenizer, source: dir)
        if let limit = model.config.architecture.positionLimit(model.config), ids.count + maxNew > limit {
            throw CLIError.failed("prompt (\(ids.count) tokens) + --max-new-tokens exceed the model's \(limit) learned positions")
        }
        // The KV cache is reserved for every position at once; refuse one larger than the machine.
        let cacheBytes = 2 * model.config.numLayers * (ids.count + maxNew) * model.config.attentionShape.kvDim * 4
        guard cacheBytes <= Int(clamping: ProcessInfo.processInfo.physicalMemory) else {
            throw CLIError.failed(String(format: "prompt (%d tokens) + --max-new-tokens %d need a %.1f GB KV cache, more than this machine's memory",
                                         ids.count, maxNew, Double(cacheBytes) / 1e9))
        }
        let stop = ChatPrompt.stopIds(config: model.config, tokenizer: tokenizer, directory: dir)
        var generated: [Int] = []
        var printed = ""
        let out = FileHandle.standardOutput
        // Streaming can only append; bytes of a later token may turn an earlier replacement character
        // into a real one, so outside a terminal the exact final decode is printed once instead.
        let stream = isatty(1) != 0
        _ = model.generate(prompt: ids.map(Int32.init), maxNewTokens: maxNew,
                           sampling: SamplingOptions(temperature: Float(temperature), topP: Float(topP), seed: UInt64(seed)),
                           stopTokens: stop) { token in
            generated.append(Int(token))
            // Streaming shows what decodes; a decoder error surfaces in the final decode below.
            guard stream, let text = try? tokenizer.decode(generated, skipSpecialTokens: true) else { return }
            if text.hasPrefix(printed), !text.hasSuffix("\u{FFFD}") {
                out.write(Data(text.dropFirst(printed.count).utf8))
                printed = text
            }
        }
        let final = try tokenizer.decode(generated, skipSpecialTokens: true)
        if final.hasPrefix(printed) { out.write(Data(final.dropFirst(printed.count).utf8)) }
        out.write(Data("\n".utf8))
    }
}
