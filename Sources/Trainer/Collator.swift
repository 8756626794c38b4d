/// A contiguous run of tokens that attends only within itself: one example.
public struct TokenSegment: Sendable, Equatable, Hashable, Codable {
    public var start: Int
    public var length: Int
    public init(start: Int, length: Int) {
        self.start = start
        self.length = length
    }
    public var range: Range<Int> { start..<start + length }
}

/// One micro-batch as the model and the loss consume it: the tokens of all its rows concatenated, with no
/// padding. Every example is a segment; positions restart at 0 in each segment and attention never
/// crosses a segment boundary. `targets` are already shifted: `targets[t]` is the token position t must
/// predict (`labels[t + 1]` of its example), -100 where there is no loss, always at a segment's last
/// position. An empty batch (no tokens) can occur on some ranks in the last step of an epoch.
public struct TokenBatch: Sendable, Equatable {
    public var tokens: [Int32]
    public var positions: [Int32]
    public var segments: [TokenSegment]
    public var targets: [Int32]
    /// How many rows (packed sequences, or examples without packing) were concatenated.
    public var rowCount: Int
    /// Targets that carry loss (not -100).
    public var labelCount: Int

    public init(tokens: [Int32], positions: [Int32], segments: [TokenSegment], targets: [Int32], rowCount: Int) {
        self.tokens = tokens
        self.positions = positions
        self.segments = segments
        self.targets = targets
        self.rowCount = rowCount
        labelCount = targets.reduce(0) { $0 + ($1 == ignoreLabel ? 0 : 1) }
    }

    public static let empty = TokenBatch(tokens: [], positions: [], segments: [], targets: [], rowCount: 0)

    public var tokenCount: Int { tokens.count }

    /// The rows' examples in order, each a segment.
    public init(rows: [[Int]], examples: [TokenizedExample]) {
        let total = rows.reduce(0) { $0 + $1.reduce(0) { $0 + examples[$1].inputIds.count } }
        var tokens: [Int32] = [], positions: [Int32] = [], targets: [Int32] = []
        var segments: [TokenSegment] = []
        tokens.reserveCapacity(total)
        positions.reserveCapacity(total)
        targets.reserveCapacity(total)
        for row in rows {
            for index in row {
                let e = examples[index]
                segments.append(TokenSegment(start: tokens.count, length: e.inputIds.count))
                tokens += e.inputIds
                positions += (0..<Int32(e.inputIds.count)).map { $0 }
                targets += e.labels.dropFirst()
                targets.append(ignoreLabel)
            }
        }
        self.init(tokens: tokens, positions: positions, segments: segments, targets: targets, rowCount: rows.count)
    }

    /// The label tokens of several micro-batches: what the loss of an optimizer step is divided by when
    /// these are all of its micro-batches on all ranks.
    public static func labelCount(_ batches: [TokenBatch]) -> Int { batches.reduce(0) { $0 + $1.labelCount } }
}
