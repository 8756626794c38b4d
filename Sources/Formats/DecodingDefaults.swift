extension KeyedDecodingContainer {
    /// Overwrites `value` with the key's value when the key is present and not null, and leaves it
    /// alone otherwise. Option types start from their own defaults (`self.init()`) and decode over them,
    /// so each default is written once, where the property or the Swift initialiser declares it, and a
    /// recipe that leaves a key out gets exactly what Swift code that leaves the argument out gets.
    public func decodeIfPresent<T: Decodable>(_ value: inout T, forKey key: Key) throws {
        if let decoded = try decodeIfPresent(T.self, forKey: key) { value = decoded }
    }
}

/// A key that takes one string or a list of them (PEFT's `target_modules: all-linear` or `[q_proj,
/// v_proj]`). A recipe's node is inspected for its kind, so the wrong kind is reported once, as a list.
public struct StringOrList: Decodable, Sendable, Equatable {
    public var values: [String]

    public init(_ values: [String]) { self.values = values }

    public init(from decoder: Decoder) throws {
        if let node = (decoder as? NodeDecoder)?.node, node.items == nil {
            values = [try decoder.singleValueContainer().decode(String.self)]
        } else if decoder is NodeDecoder {
            values = try [String](from: decoder)
        } else if let one = try? decoder.singleValueContainer().decode(String.self) {
            values = [one]
        } else {
            values = try [String](from: decoder)
        }
    }
}
