extension KeyedDecodingContainer {
    /// Overwrites `value` with the key's value when the key is present and not null, and leaves it
    /// alone otherwise. Option types start from their own defaults (`self.init()`) and decode over them,
    /// so each default is written once, where the property or the Swift initialiser declares it, and a
    /// recipe that leaves a key out gets exactly what Swift code that leaves the argument out gets.
    public func decodeIfPresent<T: Decodable>(_ value: inout T, forKey key: Key) throws {
        if let decoded = try decodeIfPresent(T.self, forKey: key) { value = decoded }
    }
}
