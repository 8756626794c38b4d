import Foundation
import SwiftFinetune

/// `swift-finetune tokenize --model DIR|FILE.gguf [--text TEXT] [--jsonl] [--no-special-tokens]`: ids as a
/// JSON array, with the tokenizer's default special-token behaviour (as `tokenizer(text)["input_ids"]`).
/// Reads standard input without --text; with --jsonl every input line is a JSON string and every output
/// line its ids, so many texts go through one process.
enum TokenizeCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "tokenize", args, flagNames: ["no-special-tokens", "jsonl"])
        let dir = try ModelPath.folder(try a.required("model"))
        let text = a.string("text")
        let noSpecial = a.flag("no-special-tokens")
        let jsonl = a.flag("jsonl")
        try a.finish(positionals: 0...0)
        let tokenizer = try Tokenizer.load(directory: dir)
        func ids(_ s: String) -> String {
            JSONWriter.compact.string(.array(tokenizer.encode(s, addSpecialTokens: !noSpecial).map { .int(Int64($0)) }))
        }
        if jsonl {
            guard text == nil else { throw CLIError.usage("tokenize", "--jsonl reads standard input; drop --text") }
            var number = 0
            while let line = readLine(strippingNewline: true) {
                number += 1
                guard let s = try JSONValue.parse(line, source: "<stdin>:\(number)").stringValue else {
                    throw CLIError.failed("<stdin>:\(number): expected a JSON string per line")
                }
                print(ids(s))
            }
            return
        }
        print(ids(text ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)))
    }
}
