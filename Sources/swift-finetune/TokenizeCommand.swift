import Foundation
import SwiftFinetune

/// `swift-finetune tokenize --model DIR [--text TEXT]`: ids as a JSON array, with the tokenizer's default
/// special-token behaviour (as `tokenizer(text)["input_ids"]`). Reads standard input without --text.
enum TokenizeCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "tokenize", args, flagNames: ["no-special-tokens"])
        let dir = try a.required("model")
        let text = a.string("text")
        let noSpecial = a.flag("no-special-tokens")
        try a.finish(positionals: 0...0)
        let tokenizer = try Tokenizer.load(directory: dir)
        let input = text ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        let ids = tokenizer.encode(input, addSpecialTokens: !noSpecial)
        print(JSONWriter.compact.string(.array(ids.map { .int(Int64($0)) })))
    }
}
