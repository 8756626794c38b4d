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
        // A model folder's ids must fit its embedding, as for train, eval and generate; a folder that holds
        // only a tokenizer (or a config without vocab_size) has nothing to fit.
        let configPath = (dir as NSString).appendingPathComponent("config.json")
        if FileManager.default.fileExists(atPath: configPath) {
            let config = try JSONValue.read(path: configPath)
            if let vocabSize = (config["vocab_size"] ?? config["text_config"]?["vocab_size"])?.intValue {
                try ChatPrompt.checkFits(tokenizer, vocabSize: vocabSize, tokenizerSource: (dir as NSString).appendingPathComponent("tokenizer.json"))
            }
        }
        func ids(_ s: String) throws -> String {
            JSONWriter.compact.string(.array(try tokenizer.encode(s, addSpecialTokens: !noSpecial).map { .int(Int64($0)) }))
        }
        if jsonl {
            guard text == nil else { throw CLIError.usage("tokenize", "--jsonl reads standard input; drop --text") }
            let lines = LineReader(source: try FileByteSource(path: "/dev/stdin"), name: "<stdin>", maxLineBytes: maxInputBytes)
            while let line = try lines.next() {
                guard let s = try JSONValue.parse(line.text, source: "<stdin>:\(line.number)").stringValue else {
                    throw CLIError.failed("<stdin>:\(line.number): expected a JSON string per line")
                }
                print(try ids(s))
            }
            return
        }
        print(try ids(try text ?? readStandardInput()))
    }

    /// Standard input is read up to this many bytes (a text, or one --jsonl line): an endless stream
    /// (`< /dev/zero`) is an error, not memory exhaustion.
    static let maxInputBytes = 1 << 28

    static func readStandardInput() throws -> String {
        let source = try FileByteSource(path: "/dev/stdin")
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { break }
            data += chunk[..<n]
            guard data.count <= maxInputBytes else {
                throw CLIError.failed("<stdin>: more than \(maxInputBytes) bytes of text; split it, or pass one text per line with --jsonl")
            }
        }
        return String(decoding: data, as: UTF8.self)
    }
}
