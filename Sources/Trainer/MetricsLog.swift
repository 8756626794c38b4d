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
    /// Where the step's time went, with `wall_clock_breakdown` on (metrics.jsonl's `time_ms`).
    public var times: StepTimes?

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
        o["loss"] = MetricsLog.number(loss)
        o["learning_rate"] = MetricsLog.number(learningRate)
        o["grad_norm"] = MetricsLog.number(gradNorm)
        o["tokens"] = .int(Int64(tokens))
        o["tokens_per_second"] = MetricsLog.number(tokensPerSecond)
        if let lossScale { o["loss_scale"] = MetricsLog.number(lossScale) }
        o["skipped"] = .bool(skipped)
        o["elapsed_seconds"] = .double(elapsedSeconds)
        if let t = times {
            o["time_ms"] = .object(JSONObject([("forward", .double(t.forward * 1000)), ("backward", .double(t.backward * 1000)),
                                               ("communication", .double(t.communicationTotal * 1000)),
                                               ("optimizer", .double(t.optimizer * 1000)), ("other", .double(t.other * 1000)),
                                               ("step", .double(t.step * 1000))]))
        }
        return .object(o)
    }
}

public struct EvalMetrics: Sendable, Equatable {
    public init(step: Int, evalLoss: Double, evalTokens: Int) {
        self.step = step
        self.evalLoss = evalLoss
        self.evalTokens = evalTokens
    }

    public var step: Int
    public var evalLoss: Double
    public var evalTokens: Int
    public var perplexity: Double { exp(evalLoss) }

    var json: JSONValue {
        .object(JSONObject([("step", .int(Int64(step))), ("eval_loss", MetricsLog.number(evalLoss)),
                            ("eval_perplexity", MetricsLog.number(perplexity)), ("eval_tokens", .int(Int64(evalTokens)))]))
    }
}

public enum MetricsLogError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    public var description: String {
        switch self { case .cannotOpen(let p, let r): return "\(p): cannot open for writing: \(r)" }
    }
}

/// Where step and evaluation records go. JSONL, CSV and TensorBoard are sinks of this one protocol;
/// `MetricsLog` hands every record to each sink the logging options turn on.
public protocol MetricsSink: AnyObject {
    func record(_ m: StepMetrics)
    func record(_ e: EvalMetrics)
}

/// The run's sinks, all fed the same records. Only rank 0 builds one with sinks in it.
public final class MetricsLog {
    public let sinks: [MetricsSink]

    public init(sinks: [MetricsSink]) { self.sinks = sinks }

    /// The sinks `logging` asks for: `metrics.jsonl` and `metrics.csv` in `directory`, TensorBoard events
    /// in `tensorboardDirectory` (DeepSpeed's `output_path/job_name`). Appends to existing logs (a resumed
    /// run continues the same files).
    public convenience init(directory: String, jsonl: Bool, csv: Bool, tensorboardDirectory: String? = nil) throws {
        var sinks: [MetricsSink] = []
        if jsonl { sinks.append(try JSONLMetricsSink(path: (directory as NSString).appendingPathComponent("metrics.jsonl"))) }
        if csv { sinks.append(try CSVMetricsSink(path: (directory as NSString).appendingPathComponent("metrics.csv"))) }
        if let tensorboardDirectory { sinks.append(try TensorBoardMetricsSink(directory: tensorboardDirectory)) }
        self.init(sinks: sinks)
    }

    public func log(_ m: StepMetrics) { sinks.forEach { $0.record(m) } }
    public func log(_ e: EvalMetrics) { sinks.forEach { $0.record(e) } }

    /// metrics.jsonl is JSON, which has no NaN or Infinity: a non-finite number (the loss of an fp16
    /// overflow step, a grad norm that overflowed) is written as null.
    static func number(_ value: Double?) -> JSONValue {
        guard let value, value.isFinite else { return .null }
        return .double(value)
    }
}

/// A log file opened for appending, created when absent (with `header` as its first line).
func appendingHandle(path: String, header: String? = nil) throws -> FileHandle {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let isNew = !FileManager.default.fileExists(atPath: path)
    if isNew { FileManager.default.createFile(atPath: path, contents: nil) }
    guard let h = FileHandle(forWritingAtPath: path) else {
        throw MetricsLogError.cannotOpen(path: path, reason: "permission denied or not a file")
    }
    h.seekToEndOfFile()
    if isNew, let header { h.write(Data((header + "\n").utf8)) }
    return h
}

/// `metrics.jsonl`: one object per optimizer step and per evaluation, appended and flushed as it happens
/// so a crashed run keeps everything it logged.
public final class JSONLMetricsSink: MetricsSink {
    private let handle: FileHandle
    public init(path: String) throws { handle = try appendingHandle(path: path) }
    deinit { try? handle.close() }
    public func record(_ m: StepMetrics) { handle.write(Data((JSONWriter.compact.string(m.json) + "\n").utf8)) }
    public func record(_ e: EvalMetrics) { handle.write(Data((JSONWriter.compact.string(e.json) + "\n").utf8)) }
}

/// `metrics.csv`: the same records as rows; eval rows fill only `step` and `eval_loss`. Empty cells are
/// absent or non-finite values.
public final class CSVMetricsSink: MetricsSink {
    private let handle: FileHandle
    static let columns = ["step", "epoch", "loss", "learning_rate", "grad_norm", "tokens", "tokens_per_second",
                          "loss_scale", "skipped", "elapsed_seconds", "eval_loss"]

    public init(path: String) throws { handle = try appendingHandle(path: path, header: Self.columns.joined(separator: ",")) }
    deinit { try? handle.close() }

    private static func cell(_ v: Double?) -> String { v.flatMap { $0.isFinite ? String($0) : nil } ?? "" }

    public func record(_ m: StepMetrics) {
        let cells: [String] = [String(m.step), String(m.epoch), Self.cell(m.loss), Self.cell(m.learningRate), Self.cell(m.gradNorm),
                               String(m.tokens), Self.cell(m.tokensPerSecond), Self.cell(m.lossScale), m.skipped ? "1" : "0",
                               String(m.elapsedSeconds), ""]
        handle.write(Data((cells.joined(separator: ",") + "\n").utf8))
    }

    public func record(_ e: EvalMetrics) {
        var cells = [String](repeating: "", count: Self.columns.count)
        cells[0] = String(e.step)
        cells[cells.count - 1] = Self.cell(e.evalLoss)
        handle.write(Data((cells.joined(separator: ",") + "\n").utf8))
    }
}
