import Foundation
import Formats

/// `max_shard_size` as transformers / huggingface_hub read it: an integer number of bytes, or a number
/// followed by KB, MB, GB or TB in decimal units ("5GB" = 5×10^9, "0.5KB" = 500).
public enum ShardSize {
    /// transformers 5's `save_pretrained` default ("50GB"; transformers 4 used "5GB").
    public static let transformersDefault = 50_000_000_000

    public static func parse(_ text: String) throws -> Int {
        let s = text.trimmingCharacters(in: .whitespaces)
        if let bytes = Int(s), bytes >= 0 { return bytes }
        // huggingface_hub's parse_size_to_int: the last two characters are the unit, the rest a float.
        let units: [String: Double] = ["TB": 1e12, "GB": 1e9, "MB": 1e6, "KB": 1e3]
        guard s.count > 2, let multiplier = units[String(s.suffix(2)).uppercased()],
              let value = Double(s.dropLast(2).trimmingCharacters(in: .whitespaces)),
              value.isFinite, value >= 0, value * multiplier < 9.2e18
        else { throw SafeTensorsError.invalidShardSize(text) }
        return Int(value * multiplier)  // Python's int(value * multiplier) truncates the same way
    }
}

/// How a state dict is split into shard files: huggingface_hub's `split_torch_state_dict_into_shards`.
/// Tensors are taken in state-dict order and packed greedily; a tensor that does not fit closes the
/// current shard. A tensor larger than the maximum gets a shard of its own, placed before the shard
/// still being filled (so shard order can differ from state-dict order, exactly as in the reference).
public struct ShardPlan: Equatable, Sendable {
    /// Tensor names per shard, in shard order.
    public let shards: [[String]]
    /// Sum of all tensor sizes in bytes (the index's total_size).
    public let totalSize: Int

    public init(tensors: [(name: String, byteCount: Int)], maxShardSize: Int) {
        var shards: [[String]] = []
        var current: [String] = []
        var currentSize = 0
        var total = 0
        for (name, size) in tensors {
            total += size
            if size > maxShardSize {
                shards.append([name])
                continue
            }
            if currentSize + size > maxShardSize {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(name)
            currentSize += size
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        self.shards = shards
        self.totalSize = total
    }

    public var isSharded: Bool { shards.count > 1 }

    /// `model.safetensors` when unsharded, else `model-00001-of-00003.safetensors`, …
    public func fileNames(weightsName: String = CheckpointReader.singleFileName) -> [String] {
        guard isSharded else { return [weightsName] }
        let stem = weightsName.hasSuffix(".safetensors") ? String(weightsName.dropLast(".safetensors".count)) : weightsName
        func five(_ n: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, 5 - s.count)) + s }
        return (1...shards.count).map { "\(stem)-\(five($0))-of-\(five(shards.count)).safetensors" }
    }
}

extension SafeTensorsWriter {
    /// Writes the tensors into `directory` as transformers' `save_pretrained(max_shard_size:)` does:
    /// one `model.safetensors` if everything fits in one shard, otherwise numbered shards plus
    /// `model.safetensors.index.json` (`json.dumps(index, indent=2, sort_keys=True) + "\n"`, metadata
    /// `total_parameters` and `total_size`). Tensors are packed in the order they were added.
    /// Shards left over from an earlier save (`model-XXXXX-of-YYYYY.safetensors` not written now) are
    /// removed like transformers does; unlike transformers a stale index is also removed when the new
    /// checkpoint is a single file, so a reader can never pick up a stale one.
    /// Returns the names of the files written, index last.
    @discardableResult
    public func writeCheckpoint(to directory: String, maxShardSize: Int = ShardSize.transformersDefault,
                                totalParameters: Int? = nil) throws -> [String] {
        let plan = ShardPlan(tensors: entries.map { ($0.name, $0.byteCount) }, maxShardSize: maxShardSize)
        let fileNames = plan.fileNames()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try removeStaleShards(in: directory, keeping: Set(fileNames), removeIndex: !plan.isSharded)

        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        for (fileName, names) in zip(fileNames, plan.shards) {
            var shard = SafeTensorsWriter(metadata: metadata)
            for name in names {
                let e = byName[name]!
                try shard.add(e.name, dtype: e.dtype, shape: e.shape, source: e.source)
            }
            try shard.write(to: (directory as NSString).appendingPathComponent(fileName))
        }
        guard plan.isSharded else { return fileNames }

        var weightMap = JSONObject()
        for (fileName, names) in zip(fileNames, plan.shards) {
            for name in names { weightMap[name] = .string(fileName) }
        }
        let parameters = totalParameters ?? entries.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let index = JSONValue.object(JSONObject([
            ("metadata", .object(JSONObject([
                ("total_parameters", .int(Int64(parameters))),
                ("total_size", .int(Int64(plan.totalSize))),
            ]))),
            ("weight_map", .object(weightMap)),
        ]))
        try index.write(to: (directory as NSString).appendingPathComponent(CheckpointReader.indexFileName),
                        writer: .transformers, trailingNewline: true)
        return fileNames + [CheckpointReader.indexFileName]
    }

    private func removeStaleShards(in directory: String, keeping: Set<String>, removeIndex: Bool) throws {
        let present = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in present where !keeping.contains(name) {
            let stale = Self.isShardFileName(name) || (removeIndex && name == CheckpointReader.indexFileName)
            if stale { try FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(name)) }
        }
    }

    /// `model-DDDDD-of-DDDDD.safetensors`, the names transformers cleans up before saving.
    static func isShardFileName(_ name: String) -> Bool {
        guard name.hasPrefix("model"), name.hasSuffix(".safetensors") else { return false }
        let stem = Array(name.dropLast(".safetensors".count).utf8)
        guard stem.count >= 15 else { return false }
        let tail = stem.suffix(15)  // -DDDDD-of-DDDDD
        let pattern = Array("-#####-of-#####".utf8)
        return zip(tail, pattern).allSatisfy { c, p in p == UInt8(ascii: "#") ? (c >= 48 && c <= 57) : c == p }
    }
}
