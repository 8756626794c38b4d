// TEMPORARY: replaced by the lossscaler branch.
public struct LossScaler: Sendable, Equatable, Codable {
    public private(set) var scale: Double
    public let isDynamic: Bool
    public init(options: EngineOptions.LossScaler) {
        isDynamic = options.lossScale <= 0
        scale = isDynamic ? Double(1 << options.initialScalePower) : options.lossScale
    }
    public mutating func update(overflow: Bool) throws -> Bool {
        if overflow { scale /= 2 }
        return overflow
    }
}
