import Dispatch
import Foundation
import Tensors
import Tokenizers

/// Tokenised examples ready for batching: truncated to `maxSeqLen`, with the examples that lost every
/// trainable label to truncation removed (and counted, so the trainer can report them).
public struct TokenizedDataset: Sendable {
    public let examples: [TokenizedExample]
    public let maxSeqLen: Int
    /// Examples longer than `maxSeqLen` whose first tokens were kept.
    public let truncatedCount: Int
    /// Examples removed because no trainable label survived truncation.
    public let droppedCount: Int
    /// Where the dropped examples came from (for a warning that names lines).
    public let dropped: [DataLocation]

    /// Truncates and filters `examples` (kept in the given order).
    public init(examples: [TokenizedExample], maxSeqLen: Int) throws {
        guard maxSeqLen >= 2 else { throw DataError.invalidOptions("max_seq_len must be at least 2, got \(maxSeqLen)") }
        self.maxSeqLen = maxSeqLen
        var kept: [TokenizedExample] = []
        var truncated = 0
        var dropped: [DataLocation] = []
        kept.reserveCapacity(examples.count)
        for e in examples {
            if e.inputIds.count > maxSeqLen { truncated += 1 }
            let t = e.truncated(to: maxSeqLen)
            if t.targetCount == 0 { dropped.append(e.location) } else { kept.append(t) }
        }
        self.examples = kept
        truncatedCount = truncated
        droppedCount = dropped.count
        self.dropped = dropped
    }

    public var count: Int { examples.count }
    public var tokenCount: Int { examples.reduce(0) { $0 + $1.inputIds.count } }
    /// Tokens that carry loss (after the shift), over the whole dataset.
    public var targetCount: Int { examples.reduce(0) { $0 + $1.targetCount } }

    /// One line for the training log.
    public var summary: String {
        var s = "\(count) examples, \(tokenCount) tokens, \(targetCount) trained"
        if truncatedCount > 0 { s += "; \(truncatedCount) truncated to \(maxSeqLen) tokens" }
        if droppedCount > 0 {
            let first = dropped.prefix(3).map { "\($0.source):\($0.line)" }.joined(separator: ", ")
            s += "; \(droppedCount) dropped with no trained token left after truncation (\(first)\(droppedCount > 3 ? ", ..." : ""))"
        }
        return s
    }
}

/// The training set and, when the recipe asks for one, the evaluation set.
public struct DataSplits: Sendable {
    public var train: TokenizedDataset
    public var eval: TokenizedDataset?
}

/// From `DataOptions` to tokenised datasets: read, tokenise, split off the eval fraction, truncate.
public enum DataPipeline {
    /// The RNG step that keys the eval split; epochs use steps 0, 1, 2, ... so they never meet it.
    static let splitStream = Int(UInt32.max)

    public static func load(_ options: DataOptions, tokenizer: Tokenizer, seed: Int,
                            chatTemplate: ChatTemplate? = nil) throws -> DataSplits {
        let exampleTokenizer = try ExampleTokenizer(tokenizer: tokenizer, trainOnPrompt: options.trainOnPrompt, chatTemplate: chatTemplate)
        var all = try tokenizeFile(path: options.train.path, format: options.train.format, member: options.train.member, with: exampleTokenizer)
        guard !all.isEmpty else { throw DataError.noExamples(source: options.train.path, reason: "the file has no data lines") }
        var evalExamples: [TokenizedExample]? = nil
        if let eval = options.eval {
            switch (eval.split, eval.path) {
            case (let fraction?, nil):
                let held = try heldOutIndices(count: all.count, fraction: fraction, seed: seed)
                evalExamples = all.indices.filter { held.contains($0) }.map { all[$0] }
                all = all.indices.filter { !held.contains($0) }.map { all[$0] }
            case (nil, let path?):
                evalExamples = try tokenizeFile(path: path, format: eval.format ?? options.train.format, member: nil, with: exampleTokenizer)
            case (nil, nil):
                break
            case (.some, .some):
                throw DataError.invalidOptions("eval takes either split or path, not both")
            }
        }
        let train = try TokenizedDataset(examples: all, maxSeqLen: options.maxSeqLen)
        guard train.count > 0 else {
            throw DataError.noExamples(source: options.train.path, reason: "all \(train.droppedCount) examples lost every trained token to truncation at \(options.maxSeqLen) tokens")
        }
        return DataSplits(train: train, eval: try evalExamples.map { try TokenizedDataset(examples: $0, maxSeqLen: options.maxSeqLen) })
    }

    /// Reads and tokenises every record of a file, in file order, untruncated. Tokenisation runs on every
    /// core; the error reported is the one of the earliest line, so it does not depend on thread timing.
    public static func tokenizeFile(path: String, format: DataOptions.Format, member: String?,
                                    with tokenizer: ExampleTokenizer) throws -> [TokenizedExample] {
        let records = try DataFileReader.readAll(path: path, format: format, member: member)
        let workers = min(ProcessInfo.processInfo.activeProcessorCount, max(1, records.count / 16))
        let results = ResultSlots<TokenizedExample>(count: records.count)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < records.count {
                results.set(i, Result { try tokenizer.tokenize(records[i].0, at: records[i].1) })
                i += workers
            }
        }
        return try results.values()
    }

    /// The indices of the held-out eval examples: a seeded permutation's first round(fraction × n)
    /// (at least 1, at most n − 1), independent of max_seq_len and of the epoch shuffles.
    public static func heldOutIndices(count: Int, fraction: Double, seed: Int) throws -> Set<Int> {
        guard fraction > 0, fraction < 1 else { throw DataError.invalidOptions("eval.split must be between 0 and 1 (exclusive), got \(fraction)") }
        guard count >= 2 else { throw DataError.invalidOptions("eval.split needs at least 2 examples, the training file has \(count)") }
        let k = min(count - 1, max(1, Int((fraction * Double(count)).rounded())))
        var order = Array(0..<count)
        var rng = CounterRNG(seed: UInt64(bitPattern: Int64(seed)), purpose: .shuffle, rank: 0, step: splitStream)
        rng.shuffle(&order)
        return Set(order.prefix(k))
    }
}

/// Per-index results written from several threads; each slot is written by exactly one thread.
final class ResultSlots<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<T, Error>) { lock.lock(); slots[i] = r; lock.unlock() }
    func values() throws -> [T] { try slots.map { try $0!.get() } }
}
