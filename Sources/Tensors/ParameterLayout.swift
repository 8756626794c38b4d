/// Where each named tensor of a model lives in the flat buffers. Hugging Face names appear here and in
/// the loaders only; kernels see offsets. Entries of one layer group are contiguous, so a layer is a
/// single range (what ZeRO shards, what ZeRO-3 gathers and what activation checkpointing re-runs).
public struct ParameterLayout: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        /// The layer group: 0 for what comes before the blocks (embeddings), 1...L for block i-1,
        /// L+1 for what comes after (final norm, untied LM head).
        public let group: Int
        public var count: Int { shape.reduce(1, *) }
        public var range: Range<Int> { offset..<offset + count }
    }

    public private(set) var entries: [Entry] = []
    private var index: [String: Int] = [:]
    public private(set) var totalCount = 0
    /// Groups that exist even when no tensor is in them: an adapter's layout keeps the model's L+2
    /// groups (no adapter tensor before the blocks or after them), so hooks and shards index alike.
    private var declaredGroupCount = 0

    public init(groupCount: Int = 0) { declaredGroupCount = groupCount }

    /// Appends a tensor. Groups must be appended in non-decreasing order.
    public mutating func append(_ name: String, shape: [Int], group: Int) {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        precondition(entries.last.map { $0.group <= group } ?? true, "groups out of order at \(name)")
        let e = Entry(name: name, shape: shape, offset: totalCount, group: group)
        index[name] = entries.count
        entries.append(e)
        totalCount += e.count
    }

    public subscript(name: String) -> Entry? { index[name].map { entries[$0] } }

    public var groupCount: Int { Swift.max(declaredGroupCount, (entries.last?.group ?? -1) + 1) }

    /// The element range a layer group spans.
    public func range(ofGroup g: Int) -> Range<Int> {
        let es = entries.filter { $0.group == g }
        guard let first = es.first, let last = es.last else { return 0..<0 }
        return first.offset..<last.offset + last.count
    }
}
