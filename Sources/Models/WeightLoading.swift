import Tensors

/// Where weights come from: a safetensors file, a sharded checkpoint, or a test's dictionary.
/// Reading converts the stored dtype (f32, bf16, f16) to f32.
public protocol WeightSource {
    var sourceName: String { get }
    var tensorNames: [String] { get }
    func tensorShape(_ name: String) -> [Int]?
    func readTensor(_ name: String, into: UnsafeMutableBufferPointer<Float>) throws
}

public struct WeightLoadingError: Error, CustomStringConvertible {
    public let source: String
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var misshaped: [(name: String, expected: [Int], found: [Int])] = []

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && misshaped.isEmpty }

    public var description: String {
        var lines = ["\(source): the weights do not match the model's config.json"]
        func list(_ names: [String]) -> String {
            names.count <= 12 ? names.joined(separator: ", ") : names.prefix(12).joined(separator: ", ") + ", … (\(names.count) in all)"
        }
        if !missing.isEmpty { lines.append("  missing \(missing.count): \(list(missing))") }
        if !unexpected.isEmpty { lines.append("  unexpected \(unexpected.count): \(list(unexpected))") }
        for m in misshaped.prefix(12) { lines.append("  \(m.name): expected shape \(m.expected), found \(m.found)") }
        if misshaped.count > 12 { lines.append("  … \(misshaped.count) mis-shaped in all") }
        return lines.joined(separator: "\n")
    }
}

/// A weight that is NaN or infinite: the file is corrupt, or came from a run that diverged.
public struct NonFiniteWeightError: Error, CustomStringConvertible {
    public let source: String
    public let tensor: String
    public let index: Int
    public let value: Float

    public var description: String {
        "\(source): tensor '\(tensor)' holds \(value) at element \(index); weights must be finite numbers (the file is corrupt or from a diverged run)"
    }
}

public enum WeightLoader {
    /// Fills `params` (f32, laid out by `layout`) from `source`. Strict: every expected tensor present with
    /// its exact shape, nothing unknown; all faults are reported together. A tied LM head saved anyway
    /// is accepted and ignored, as transformers does.
    public static func load(into params: FlatBuffer, layout: ParameterLayout, config: TransformerConfig,
                            from source: WeightSource) throws {
        for (file, entry) in try validate(layout: layout, config: config, from: source) {
            let values = params.floats(entry.range)
            try source.readTensor(file, into: values)
            try checkFinite(values, source: source.sourceName, tensor: file)
        }
    }

    /// A NaN or infinity in any weight makes every loss and logit NaN; every load path refuses it, named.
    public static func checkFinite(_ values: UnsafeMutableBufferPointer<Float>, source: String, tensor: String) throws {
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw NonFiniteWeightError(source: source, tensor: tensor, index: i, value: values[i])
        }
    }

    /// Checks names and shapes without reading data; returns (name in the file, layout entry) pairs.
    public static func validate(layout: ParameterLayout, config: TransformerConfig,
                                from source: WeightSource) throws -> [(file: String, entry: ParameterLayout.Entry)] {
        var report = WeightLoadingError(source: source.sourceName)
        var found = Set<String>()
        var plan: [(file: String, entry: ParameterLayout.Entry)] = []
        for fileName in source.tensorNames {
            guard let name = config.architecture.canonicalName(fileName) else { continue }
            if name == "lm_head.weight", config.tieWordEmbeddings { continue }
            guard let entry = layout[name] else { report.unexpected.append(fileName); continue }
            let shape = source.tensorShape(fileName) ?? []
            if shape != entry.shape {
                report.misshaped.append((fileName, entry.shape, shape))
                found.insert(name)
                continue
            }
            found.insert(name)
            plan.append((fileName, entry))
        }
        report.missing = layout.entries.map(\.name).filter { !found.contains($0) }
        guard report.isEmpty else { throw report }
        return plan
    }
}

/// Tensors held in memory, by name: for tests and for building models from code.
public struct InMemoryTensors: WeightSource {
    public var sourceName: String
    public var tensors: [String: (shape: [Int], values: [Float])]
    public var order: [String]

    public init(sourceName: String = "<memory>") {
        self.sourceName = sourceName
        tensors = [:]
        order = []
    }

    public mutating func add(_ name: String, shape: [Int], values: [Float]) {
        if tensors[name] == nil { order.append(name) }
        tensors[name] = (shape, values)
    }

    public var tensorNames: [String] { order }
    public func tensorShape(_ name: String) -> [Int]? { tensors[name]?.shape }
    public func readTensor(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws {
        guard let t = tensors[name] else { throw WeightLoadingError(source: sourceName, missing: [name]) }
        _ = dst.update(fromContentsOf: t.values)
    }
}
