import Tensors

/// Where the loader stands: the epoch, and the index of the next row in that epoch's global row order.
/// Saved in checkpoints; restoring it replays exactly the rows an uninterrupted run would have seen next,
/// on any world size (rows do not depend on the number of ranks).
public struct DataPosition: Codable, Sendable, Equatable {
    public var epoch: Int
    public var index: Int
    public init(epoch: Int = 0, index: Int = 0) {
        self.epoch = epoch
        self.index = index
    }
}

public struct DataLoaderOptions: Sendable, Equatable {
    public var microBatchSize: Int
    public var gradientAccumulationSteps: Int
    public var worldSize: Int
    public var rank: Int
    public var packing: Bool
    public var shuffle: Bool
    public var seed: Int
    /// Skip the last, incomplete optimizer step of each epoch (PyTorch's drop_last) instead of training on it.
    public var dropIncompleteStep: Bool

    public init(microBatchSize: Int = 1, gradientAccumulationSteps: Int = 1, worldSize: Int = 1, rank: Int = 0,
                packing: Bool = false, shuffle: Bool = true, seed: Int = 42, dropIncompleteStep: Bool = false) {
        self.microBatchSize = microBatchSize
        self.gradientAccumulationSteps = gradientAccumulationSteps
        self.worldSize = worldSize
        self.rank = rank
        self.packing = packing
        self.shuffle = shuffle
        self.seed = seed
        self.dropIncompleteStep = dropIncompleteStep
    }

    /// Rows per optimizer step over all ranks (DeepSpeed's train_batch_size, counted in rows).
    public var rowsPerStep: Int { microBatchSize * gradientAccumulationSteps * worldSize }
}

/// What one rank trains on in one optimizer step.
public struct DataStep: Sendable {
    public var epoch: Int
    /// The global row index this step starts at, within the epoch.
    public var firstRow: Int
    /// This rank's micro-batches: always `gradientAccumulationSteps` of them (some may be empty in the
    /// last step of an epoch), so every rank runs the same number of forward/backward passes.
    public var microBatches: [TokenBatch]
    /// Label tokens of the whole step on all ranks: the loss of every micro-batch is summed and divided
    /// by this, giving the mean over the step's label tokens (no all-reduce needed to know it).
    public var labelCount: Int
    /// Label tokens of this rank's micro-batches.
    public var localLabelCount: Int { TokenBatch.labelCount(microBatches) }
    /// True when this step consumed the last rows of its epoch.
    public var endsEpoch: Bool
    /// The position after this step, to save with a checkpoint taken after it.
    public var positionAfter: DataPosition
}

/// Epochs of shuffled, optionally packed rows, cut into optimizer steps and dealt to data-parallel ranks.
///
/// Each epoch's order is a permutation keyed by (seed, shuffle, epoch) — the same on every rank — and
/// packing runs over that order, so the global row sequence depends on neither rank nor world size.
/// A step takes the next `rowsPerStep` rows; with S = accumulation × world slots, slot s = a × world + r
/// (micro-step a of rank r) receives rows s, s + S, s + 2S, ... of the step. So each slot gets
/// `microBatchSize` rows in a full step, the tail of an epoch is spread evenly, and the union of all ranks'
/// micro-batches in a step is exactly the step a single process with accumulation × world micro-steps trains on.
public struct DataLoader: Sendable {
    public let examples: [TokenizedExample]
    public let maxSeqLen: Int
    public let options: DataLoaderOptions
    public private(set) var position: DataPosition
    private let lengths: [Int]
    private let targetCounts: [Int]
    private var cachedEpoch = -1
    private var cachedRows: [[Int]] = []

    public init(dataset: TokenizedDataset, options: DataLoaderOptions, position: DataPosition = DataPosition()) throws {
        try self.init(examples: dataset.examples, maxSeqLen: dataset.maxSeqLen, options: options, position: position)
    }

    public init(examples: [TokenizedExample], maxSeqLen: Int, options: DataLoaderOptions, position: DataPosition = DataPosition()) throws {
        guard options.microBatchSize >= 1, options.gradientAccumulationSteps >= 1, options.worldSize >= 1 else {
            throw DataError.invalidOptions("micro_batch_size, gradient_accumulation_steps and world size must be at least 1")
        }
        guard (0..<options.worldSize).contains(options.rank) else {
            throw DataError.invalidOptions("rank \(options.rank) is outside a world of \(options.worldSize)")
        }
        guard !examples.isEmpty else { throw DataError.noExamples(source: "data loader", reason: "the dataset is empty") }
        if let long = examples.first(where: { $0.inputIds.count > maxSeqLen }) {
            throw DataError.invalidOptions("\(long.location.source):\(long.location.line) has \(long.inputIds.count) tokens, more than max_seq_len \(maxSeqLen); truncate first")
        }
        guard position.epoch >= 0, position.index >= 0 else { throw DataError.invalidOptions("invalid data position \(position)") }
        self.examples = examples
        self.maxSeqLen = maxSeqLen
        self.options = options
        self.position = position
        lengths = examples.map(\.inputIds.count)
        targetCounts = examples.map(\.targetCount)
    }

    /// The example order of an epoch: a seeded permutation, or file order without shuffling.
    public func order(epoch: Int) -> [Int] {
        var order = Array(examples.indices)
        if options.shuffle {
            var rng = CounterRNG(seed: UInt64(bitPattern: Int64(options.seed)), purpose: .shuffle, rank: 0, step: epoch)
            rng.shuffle(&order)
        }
        return order
    }

    /// Every row of an epoch, in the global order all ranks share (incomplete last step included or not
    /// per `dropIncompleteStep`).
    public func rows(epoch: Int) -> [[Int]] {
        if epoch == cachedEpoch { return cachedRows }
        var rows = RowPacker.rows(order: order(epoch: epoch), lengths: lengths, maxSeqLen: maxSeqLen, packing: options.packing)
        if options.dropIncompleteStep && rows.count >= options.rowsPerStep {
            rows.removeLast(rows.count % options.rowsPerStep)
        }
        return rows
    }

    /// Optimizer steps in an epoch (packing makes this vary a little from epoch to epoch).
    public func stepCount(epoch: Int) -> Int {
        let n = rows(epoch: epoch).count
        return (n + options.rowsPerStep - 1) / options.rowsPerStep
    }

    /// Optimizer steps in `epochs` epochs from the start (for schedulers and progress bars).
    public func totalSteps(epochs: Int) -> Int { (0..<max(0, epochs)).reduce(0) { $0 + stepCount(epoch: $1) } }

    /// Moves to a saved position.
    public mutating func restore(_ position: DataPosition) { self.position = position }

    /// The next optimizer step for this rank; rolls over into the next epoch when one ends.
    public mutating func nextStep() -> DataStep {
        var rows = cachedRows(epoch: position.epoch)
        if position.index >= rows.count {
            position = DataPosition(epoch: position.epoch + 1, index: 0)
            rows = cachedRows(epoch: position.epoch)
        }
        let start = position.index
        let stepRows = Array(rows[start..<min(start + options.rowsPerStep, rows.count)])
        let step = Self.deal(stepRows, options: options, examples: examples, rank: options.rank)
        let labels = stepRows.reduce(0) { $0 + $1.reduce(0) { $0 + targetCounts[$1] } }
        let end = start + stepRows.count
        let endsEpoch = end >= rows.count
        let after = endsEpoch ? DataPosition(epoch: position.epoch + 1, index: 0) : DataPosition(epoch: position.epoch, index: end)
        let result = DataStep(epoch: position.epoch, firstRow: start, microBatches: step, labelCount: labels,
                              endsEpoch: endsEpoch, positionAfter: after)
        position = after
        return result
    }

    private mutating func cachedRows(epoch: Int) -> [[Int]] {
        if epoch != cachedEpoch {
            cachedRows = rows(epoch: epoch)
            cachedEpoch = epoch
        }
        return cachedRows
    }

    /// Rank `rank`'s micro-batches of a step's rows: slot a × world + rank takes every S-th row.
    static func deal(_ rows: [[Int]], options: DataLoaderOptions, examples: [TokenizedExample], rank: Int) -> [TokenBatch] {
        let slots = options.gradientAccumulationSteps * options.worldSize
        return (0..<options.gradientAccumulationSteps).map { a in
            let slot = a * options.worldSize + rank
            let mine = Array(stride(from: slot, to: rows.count, by: slots).map { rows[$0] })
            return mine.isEmpty ? .empty : TokenBatch(rows: mine, examples: examples)
        }
    }

    /// Evaluation batches for one rank: every example once, in file order, packed like training rows,
    /// dealt round-robin over ranks. Every rank gets the same number of batches (the last may be empty),
    /// so a collective per batch lines up; `labelCount` is the total over all ranks.
    public static func evalBatches(dataset: TokenizedDataset, microBatchSize: Int, packing: Bool, worldSize: Int = 1,
                                   rank: Int = 0) -> (batches: [TokenBatch], labelCount: Int) {
        let examples = dataset.examples
        let rows = RowPacker.rows(order: Array(examples.indices), lengths: examples.map(\.inputIds.count),
                                  maxSeqLen: dataset.maxSeqLen, packing: packing)
        let perRound = max(1, microBatchSize) * max(1, worldSize)
        var batches: [TokenBatch] = []
        var start = 0
        while start < rows.count {
            let round = Array(rows[start..<min(start + perRound, rows.count)])
            let mine = stride(from: rank, to: round.count, by: max(1, worldSize)).map { round[$0] }
            batches.append(mine.isEmpty ? .empty : TokenBatch(rows: mine, examples: examples))
            start += perRound
        }
        return (batches, dataset.targetCount)
    }
}
