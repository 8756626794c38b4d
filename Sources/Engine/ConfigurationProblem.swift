/// One thing wrong with a configuration: the key a user wrote (`engine.zero_stage`) and what is wrong
/// with it. Option types report these about their own keys, relative to themselves; the type that holds
/// a section prefixes its name (`under`), so `swift-finetune validate`, the Trainer and the Engine print
/// the same line for the same mistake.
public struct ConfigurationProblem: Error, Equatable, Sendable, CustomStringConvertible {
    /// Dotted key path; empty when the problem is about the section as a whole.
    public var keyPath: String
    public var message: String

    public init(_ keyPath: String, _ message: String) {
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String { keyPath.isEmpty ? message : "\(keyPath): \(message)" }

    /// The same problem seen from the type that holds this section as `section`.
    public func under(_ section: String) -> ConfigurationProblem {
        ConfigurationProblem(keyPath.isEmpty ? section : "\(section).\(keyPath)", message)
    }
}

extension Array where Element == ConfigurationProblem {
    public func under(_ section: String) -> [ConfigurationProblem] { map { $0.under(section) } }
}

/// Every problem of a configuration at once, thrown before any work starts (one line per problem).
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var problems: [ConfigurationProblem]

    public init(_ problems: [ConfigurationProblem]) { self.problems = problems }

    public var description: String { problems.map(\.description).joined(separator: "\n") }

    /// Throws when there is anything to report.
    public static func check(_ problems: [ConfigurationProblem]) throws {
        if !problems.isEmpty { throw ConfigurationError(problems) }
    }
}

/// Collects the problems of one option type. The rules every type repeats (counts, finite numbers in a
/// range) are written here once, so their messages read the same for every key.
public struct ProblemList {
    public private(set) var problems: [ConfigurationProblem] = []

    public init() {}

    public mutating func add(_ keyPath: String, _ message: String) {
        problems.append(ConfigurationProblem(keyPath, message))
    }

    public mutating func add(_ nested: [ConfigurationProblem], under section: String) {
        problems += nested.under(section)
    }

    public mutating func require(_ ok: Bool, _ keyPath: String, _ message: @autoclosure () -> String) {
        if !ok { add(keyPath, message()) }
    }

    /// A count: steps, sizes, tokens. nil (not set) is always fine. `maximum` bounds the counts that size
    /// an allocation, so a typo like 10^12 is an error here instead of a crash when memory runs out.
    public mutating func count(_ value: Int?, atLeast minimum: Int, atMost maximum: Int? = nil, _ keyPath: String) {
        guard let value else { return }
        if value < minimum { add(keyPath, "must be at least \(minimum), got \(value)") }
        if let maximum, value > maximum { add(keyPath, "must be at most \(maximum), got \(value)") }
    }

    /// Bounds of the counts that size buffers (tokens of a micro-batch, generated tokens).
    public enum Limit {
        public static let sequenceTokens = 1 << 20
        public static let microBatchSize = 1 << 16
        /// Tokens of one micro-batch (micro_batch_size × max_seq_len): activations scale with it.
        public static let microBatchTokens = 1 << 22
        public static let generatedTokens = 1 << 20
    }

    public enum Bound: Sendable {
        case positive, nonNegative
        /// [0, 1): probabilities and fractions that must leave something over.
        case fraction
        /// [0, 1].
        case unit
    }

    /// A real number: NaN and ±inf are never a setting, and each bound says what else is allowed.
    public mutating func number(_ value: Double?, _ bound: Bound, _ keyPath: String) {
        guard let value else { return }
        guard value.isFinite else { return add(keyPath, "must be a finite number, got \(value)") }
        switch bound {
        case .positive: require(value > 0, keyPath, "must be positive, got \(value)")
        case .nonNegative: require(value >= 0, keyPath, "must be non-negative, got \(value)")
        case .fraction: require(value >= 0 && value < 1, keyPath, "must be in [0, 1), got \(value)")
        case .unit: require(value >= 0 && value <= 1, keyPath, "must be in [0, 1], got \(value)")
        }
    }
}
