/// Hooks for code that drives the Trainer from Swift. Every method has an empty default.
public protocol TrainerCallback: AnyObject {
    func trainer(didStep metrics: StepMetrics)
    func trainer(didEvaluate metrics: EvalMetrics)
    func trainer(didSave checkpoint: String, step: Int)
    /// Return true to stop training after this step (as transformers' `control.should_training_stop`).
    func shouldStop(after metrics: StepMetrics) -> Bool
}

extension TrainerCallback {
    public func trainer(didStep metrics: StepMetrics) {}
    public func trainer(didEvaluate metrics: EvalMetrics) {}
    public func trainer(didSave checkpoint: String, step: Int) {}
    public func shouldStop(after metrics: StepMetrics) -> Bool { false }
}

/// transformers' EarlyStoppingCallback: stop when eval loss has not improved by more than `minDelta`
/// for `patience` consecutive evaluations.
public struct EarlyStopping: Sendable, Equatable, Codable {
    public let patience: Int
    public let minDelta: Double
    public private(set) var best: Double?
    public private(set) var badEvaluations = 0

    public init(patience: Int, minDelta: Double) {
        self.patience = patience
        self.minDelta = minDelta
    }

    /// Continues from a checkpoint's record.
    public mutating func restore(best: Double?, badEvaluations: Int) {
        self.best = best
        self.badEvaluations = badEvaluations
    }

    /// Records an evaluation; returns true when training should stop.
    public mutating func record(evalLoss: Double) -> Bool {
        if let b = best, !(evalLoss < b - minDelta) {
            badEvaluations += 1
        } else {
            best = evalLoss
            badEvaluations = 0
        }
        return badEvaluations >= patience
    }
}
