import Foundation
import Formats

/// One record per optimizer step (and per evaluation) in `OUTPUT_DIR/metrics.jsonl` (and `metrics.csv`),
/// appended and flushed as it happens so a crashed run keeps everything it logged.
public struct StepMetrics: Sendable, Equatable {
    public var step: Int
    public var epoch: Double
    public var loss: Double
    public var learningRate: Double
    public var gradNorm: Double?
    public var tokens: Int
    public var tokensPerSecond: Double
    public var lossScale: Double?
    public var skipped: Bool = false
    public var elapsedSeconds: Double

    public init(step: Int, epoch: Double, loss: Double, learningRate: Double, gradNorm: Double?, tokens: Int,
                tokensPerSecond: Double, lossScale: Double? = nil, skipped: Bool = false, elapsedSeconds: Double) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.learningRate = learningRate
        self.gradNorm = gradNorm
        self.tokens = tokens
        self.tokensPerSecond = tokensPerSecond
        self.lossScale = lossScale
        self.skipped = skipped
        self.elapsedSeconds = elapsedSeconds
    }

    var json: JSONValue {
        var o = JSONObject()
        o["step"] = .int(Int64(step))
        o["epoch"] = .double(epoch)
        o["loss"] = .double(loss)
        o["learning_rate"] = .double(learningRate)
        o["grad_norm"] = gradNorm.map { .double($0) } ?? .null
        o["tokens"] = .int(Int64(tokens))
        o["tokens_per_second"] = .double(tokensPerSecond)
        if let lossScale { o["loss_scale"] = .double(lossScale) }
        o["skipped"] = .bool(skipped)
        o["elapsed_seconds"] = .double(elapsedSeconds)
        return .object(o)
    }
}

public struct EvalMetrics: Sendable, Equatable {
    public var step: Int
    public var evalLoss: Double
    public var evalTokens: Int
    public var perplexity: Double { exp(evalLoss) }

    var json: JSONValue {
        .object(JSONObject([("step", .int(Int64(step))), ("eval_loss", .double(evalLoss)),
                            ("eval_perplexity", .double(perplexity)), ("eval_tokens", .int(Int64(evalTokens)))]))
    }
}

public enum MetricsLogError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    public var description: String {
        switch self { case .cannotOpen(let p, let r): return "\(p): cannot open for writing: \(r)" }
    }
}

public final class MetricsLog {
    private let jsonl: FileHandle?
    private let csv: FileHandle?
    public let directory: String
    static let csvColumns = ["step", "epoch", "loss", "learning_rate", "grad_norm", "tokens", "tokens_per_second",
                             "loss_scale", "skipped", "elapsed_seconds", "eval_loss"]

    /// Appends to existing logs (a resumed run continues the same files).
    public init(directory: String, jsonl: Bool, csv: Bool) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func open(_ name: String, header: String?) throws -> FileHandle {
            let path = (directory as NSString).appendingPathComponent(name)
            let isNew = !FileManager.default.fileExists(atPath: path)
            if isNew { FileManager.default.createFile(atPath: path, contents: nil) }
            guard let h = FileHandle(forWritingAtPath: path) else {
                throw MetricsLogError.cannotOpen(path: path, reason: "permission denied or not a file")
            }
            h.seekToEndOfFile()
            if isNew, let header { h.write(Data((header + "\n").utf8)) }
            return h
        }
        self.jsonl = jsonl ? try open("metrics.jsonl", header: nil) : nil
        self.csv = csv ? try open("metrics.csv", header: Self.csvColumns.joined(separator: ",")) : nil
    }

    deinit {
        try? jsonl?.close()
        try? csv?.close()
    }

    public func log(_ m: StepMetrics) {
        jsonl?.write(Data((JSONWriter.compact.string(m.json) + "\n").utf8))
        let cells: [String] = [String(m.step), String(m.epoch), String(m.loss), String(m.learningRate),
                               m.gradNorm.map { String($0) } ?? "", String(m.tokens), String(m.tokensPerSecond),
                               m.lossScale.map { String($0) } ?? "", m.skipped ? "1" : "0", String(m.elapsedSeconds), ""]
        csv?.write(Data((cells.joined(separator: ",") + "\n").utf8))
    }

    public func log(_ e: EvalMetrics) {
        jsonl?.write(Data((JSONWriter.compact.string(e.json) + "\n").utf8))
        var cells = [String](repeating: "", count: Self.csvColumns.count)
        cells[0] = String(e.step)
        cells[cells.count - 1] = String(e.evalLoss)
        csv?.write(Data((cells.joined(separator: ",") + "\n").utf8))
    }
}
