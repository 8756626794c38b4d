/// Token and learned position embeddings, and the residual add.
public enum Embedding {
    /// out[N, C] = table[tokens[n]].
    public static func forward(out: UnsafeMutablePointer<Float>, tokens: [Int32], table: UnsafePointer<Float>, C: Int) {
        for (n, t) in tokens.enumerated() { (out + n * C).update(from: table + Int(t) * C, count: C) }
    }

    /// out[N, C] += table[positions[n]] (GPT-2's wpe).
    public static func addPositions(out: UnsafeMutablePointer<Float>, positions: [Int32], table: UnsafePointer<Float>, C: Int) {
        for (n, p) in positions.enumerated() { Residual.add(out + n * C, table + Int(p) * C, count: C) }
    }

    /// dtable[V, C] += scatter of dout[N, C] by tokens[n] (rows repeat, so this runs in order: the sum per
    /// row is then deterministic). Backward of both `forward` (wte) and `addPositions` (wpe).
    /// `skipping` is nn.Embedding's padding_idx: that row gets no gradient.
    public static func backward(dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, indices: [Int32], C: Int,
                                skipping padding: Int32? = nil) {
        for (n, t) in indices.enumerated() where t != padding { Residual.add(dtable + Int(t) * C, dout + n * C, count: C) }
    }

    public static func backwardReference(dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, indices: [Int32], C: Int) {
        for (n, t) in indices.enumerated() { for c in 0..<C { dtable[Int(t) * C + c] += dout[n * C + c] } }
    }
}

public enum Residual {
    /// x[i] += y[i].
    @inline(__always)
    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { VectorMath.store(VectorMath.load(x + i) + VectorMath.load(y + i), x + i); i += 8 }
        while i < n { x[i] += y[i]; i += 1 }
    }
}
