import Foundation
import SwiftFinetune

/// `swift-finetune eval --model DIR|FILE.gguf [--adapter PEFT_DIR] --data FILE.jsonl`: mean next-token loss and perplexity over every
/// token of every line's "text" (tokenised with the tokenizer's default special tokens). Texts longer
/// than the model's positions are cut into consecutive windows.
enum EvalCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "eval", args, flagNames: [])
        let dir = try ModelPath.folder(try a.required("model"))
        let data = try a.required("data")
        let adapter = a.string("adapter")
        try a.finish(positionals: 0...0)
        let model = try TransformerModel.load(directory: dir)
        if let adapter { try AdapterTraining.attach(adapter, to: model) }
        let tokenizer = try Tokenizer.load(directory: dir)
        try ChatPrompt.checkFits(tokenizer, vocabSize: model.config.vocabSize, tokenizerSource: dir + "/tokenizer.json")
        let reader = try LineReader.open(path: data)
        var lossSum = 0.0, tokens = 0, examples = 0
        let window = min(model.config.maxPositions, 4096)
        while let line = try reader.next() {
            if line.text.allSatisfy(\.isWhitespace) { continue }
            let json: JSONValue
            do { json = try JSONValue.parse(line.text, source: "\(data):\(line.number)") } catch {
                throw CLIError.failed("\(error)")
            }
            guard let text = json["text"]?.stringValue else {
                throw CLIError.failed("\(data):\(line.number): expected an object with a string \"text\"")
            }
            let ids = try tokenizer.encode(text).map(Int32.init)
            var start = 0
            while start + 1 < ids.count {
                let piece = Array(ids[start..<min(start + window, ids.count)])
                let (sum, n) = sumLoss(model: model, tokens: piece)
                lossSum += sum
                tokens += n
                start += window
            }
            examples += 1
        }
        guard tokens > 0 else { throw CLIError.failed("\(data): no tokens to evaluate") }
        let mean = lossSum / Double(tokens)
        // Finite weights can still overflow (values near Float.greatestFiniteMagnitude); never print -nan and succeed.
        guard mean.isFinite else { throw CLIError.failed("\(dir): the eval loss is \(mean): the model's activations overflow on \(data)") }
        print(String(format: "eval_loss %.6f  perplexity %.4f  tokens %d  examples %d", mean, exp(mean), tokens, examples))
    }

    /// Σ −log p(token[t+1] | tokens[...t]) over the window, in f64.
    static func sumLoss(model: TransformerModel, tokens: [Int32]) -> (Double, Int) {
        let logits = model.logits(batch: [tokens])
        let V = model.config.vocabSize
        var sum = 0.0
        for t in 0..<(tokens.count - 1) {
            let row = logits[(t * V)..<((t + 1) * V)]
            let m = Double(row.max()!)
            let z = row.reduce(0.0) { $0 + exp(Double($1) - m) }
            sum += m + log(z) - Double(row[row.startIndex + Int(tokens[t + 1])])
        }
        return (sum, tokens.count - 1)
    }
}
