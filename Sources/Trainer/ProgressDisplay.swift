import Foundation

/// What a person watching the run sees: a redrawn bar on a terminal (step, loss, lr, tokens/s, ETA),
/// one plain line every `logging.steps` otherwise (logs, CI, files).
public final class ProgressDisplay {
    public enum Style { case bar, plain, none }
    public let style: Style
    private let totalSteps: Int
    private let width = 24
    private var lastLineLength = 0
    private let output: (String) -> Void

    public init(style: Style, totalSteps: Int, output: ((String) -> Void)? = nil) {
        self.style = style
        self.totalSteps = max(totalSteps, 1)
        self.output = output ?? { FileHandle.standardError.write(Data($0.utf8)) }
    }

    /// `auto` picks the bar only when standard error is a terminal.
    public static func style(for option: LoggingOptions.Progress) -> Style {
        switch option {
        case .bar: return .bar
        case .plain: return .plain
        case .none: return .none
        case .auto: return isatty(2) != 0 ? .bar : .plain
        }
    }

    public static func eta(seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
    }

    public func line(for m: StepMetrics) -> String {
        let secondsPerStep = m.elapsedSeconds / Double(max(m.step, 1))
        let eta = Self.eta(seconds: secondsPerStep * Double(totalSteps - m.step))
        var text = String(format: "step %d/%d  loss %.4f  lr %.3e  %.0f tok/s  eta %@", m.step, totalSteps, m.loss,
                          m.learningRate, m.tokensPerSecond, eta)
        if let g = m.gradNorm { text += String(format: "  grad_norm %.3f", g) }
        if m.skipped { text += "  (skipped: overflow)" }
        return text
    }

    public func update(_ m: StepMetrics, logEvery: Int) {
        switch style {
        case .none: return
        case .plain:
            if m.step % logEvery == 0 || m.step == totalSteps || m.step == 1 { output(line(for: m) + "\n") }
        case .bar:
            let filled = width * min(m.step, totalSteps) / totalSteps
            let bar = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            let text = bar + line(for: m)
            let pad = max(0, lastLineLength - text.count)
            output("\r" + text + String(repeating: " ", count: pad))
            lastLineLength = text.count
        }
    }

    /// A message that must not be overwritten by the bar (evaluation results, saves).
    public func note(_ text: String) {
        guard style != .none else { return }
        if style == .bar && lastLineLength > 0 { output("\n"); lastLineLength = 0 }
        output(text + "\n")
    }

    public func finish() {
        if style == .bar && lastLineLength > 0 { output("\n"); lastLineLength = 0 }
    }
}
