/// Groups examples into rows. A row is what one micro-batch slot holds: with packing, several whole
/// examples (each its own attention segment) up to `maxSeqLen` tokens; without, one example. Rows are
/// never padded: the model runs on concatenated tokens with segment spans.
public enum RowPacker {
    /// Rows of example indices, in the order the rows were opened.
    /// Packing is greedy first-fit over `order`: each example goes into the first open row with room for
    /// it, else opens a new row. Every length must be at most `maxSeqLen` (the dataset truncates first).
    public static func rows(order: [Int], lengths: [Int], maxSeqLen: Int, packing: Bool) -> [[Int]] {
        guard packing else { return order.map { [$0] } }
        var bins = FirstFitBins(capacity: maxSeqLen, maxBins: order.count)
        var rows: [[Int]] = []
        for example in order {
            let bin = bins.place(lengths[example])
            if bin == rows.count { rows.append([]) }
            rows[bin].append(example)
        }
        return rows
    }
}

/// First-fit bin choice in O(log n): a max segment tree over remaining capacities. Bins not yet opened
/// sit at full capacity to the right of the open ones, so "leftmost bin with room" is exactly first-fit,
/// opening a new bin when no open one has room.
struct FirstFitBins {
    private var tree: [Int]
    private let leaves: Int

    init(capacity: Int, maxBins: Int) {
        var n = 1
        while n < max(maxBins, 1) { n *= 2 }
        leaves = n
        tree = Array(repeating: capacity, count: 2 * n)
    }

    /// Takes `size` from the leftmost bin that still has room for it; returns the bin's index.
    mutating func place(_ size: Int) -> Int {
        var node = 1
        while node < leaves { node = tree[2 * node] >= size ? 2 * node : 2 * node + 1 }
        let bin = node - leaves
        tree[node] -= size
        node /= 2
        while node >= 1 {
            tree[node] = max(tree[2 * node], tree[2 * node + 1])
            node /= 2
        }
        return bin
    }
}
