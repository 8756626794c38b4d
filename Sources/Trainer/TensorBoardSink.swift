import Foundation
import Formats

/// TensorBoard scalars by global step, in an event file under DeepSpeed's `output_path/job_name/`.
/// Tags follow the Hugging Face Trainer's TensorBoard callback (`train/loss`, `eval/loss`, ...), so runs of
/// both tools line up in one TensorBoard. An absent value (no grad norm on the first fp16 step, no loss
/// scale without fp16) is not written; with `wall_clock_breakdown` the step's `time/*_ms` are too; TensorBoard's float holds NaN, so a non-finite loss is written as is.
public final class TensorBoardMetricsSink: MetricsSink {
    public static let tags = (loss: "train/loss", learningRate: "train/learning_rate", gradNorm: "train/grad_norm",
                              tokensPerSecond: "train/tokens_per_second", lossScale: "train/loss_scale",
                              evalLoss: "eval/loss", perplexity: "eval/perplexity")
    public let writer: TensorBoardEventWriter
    private let clock: () -> Date

    /// `clock` gives each event's wall time (tests pass a fixed one so the file's bytes are reproducible).
    public init(directory: String, clock: @escaping () -> Date = Date.init) throws {
        self.clock = clock
        writer = try TensorBoardEventWriter(directory: directory, now: clock())
    }

    public func record(_ m: StepMetrics) {
        let t = Self.tags
        var values: [(tag: String, value: Float)] = [(t.loss, Float(m.loss)), (t.learningRate, Float(m.learningRate))]
        if let g = m.gradNorm { values.append((t.gradNorm, Float(g))) }
        values.append((t.tokensPerSecond, Float(m.tokensPerSecond)))
        if let s = m.lossScale { values.append((t.lossScale, Float(s))) }
        if let w = m.times {
            // DeepSpeed's wall-clock scalars (its Train/Samples/elapsed_time_ms_*), here by step.
            values += [("time/forward_ms", Float(w.forward * 1000)), ("time/backward_ms", Float(w.backward * 1000)),
                       ("time/communication_ms", Float(w.communicationTotal * 1000)), ("time/optimizer_ms", Float(w.optimizer * 1000)),
                       ("time/step_ms", Float(w.step * 1000))]
        }
        writer.scalars(step: m.step, values, wallTime: clock().timeIntervalSince1970)
    }

    public func record(_ e: EvalMetrics) {
        writer.scalars(step: e.step, [(Self.tags.evalLoss, Float(e.evalLoss)), (Self.tags.perplexity, Float(e.perplexity))],
                       wallTime: clock().timeIntervalSince1970)
    }
}
