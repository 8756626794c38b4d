#if canImport(Glibc)
import Glibc
#endif

/// A counter-based generator (Philox-4x32-10). Every stream is keyed by (seed, purpose, rank, step),
/// so a resumed run draws exactly what an uninterrupted one would, with no generator state to save.
public struct CounterRNG: Sendable {
    public enum Purpose: UInt32, Sendable { case initialization = 1, dropout = 2, shuffle = 3, sampling = 4, other = 5 }

    private var key: (UInt32, UInt32)
    private var counter: (UInt32, UInt32, UInt32, UInt32)
    private var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var used = 4

    public init(seed: UInt64, purpose: Purpose = .other, rank: Int = 0, step: Int = 0) {
        key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        counter = (0, UInt32(truncatingIfNeeded: step), UInt32(truncatingIfNeeded: rank), purpose.rawValue)
    }

    static func philox(_ c: (UInt32, UInt32, UInt32, UInt32), _ k: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var c = c, k = k
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c.0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c.2)
            c = (UInt32(truncatingIfNeeded: p1 >> 32) ^ c.1 ^ k.0, UInt32(truncatingIfNeeded: p1),
                 UInt32(truncatingIfNeeded: p0 >> 32) ^ c.3 ^ k.1, UInt32(truncatingIfNeeded: p0))
            k = (k.0 &+ 0x9E37_79B9, k.1 &+ 0xBB67_AE85)
        }
        return c
    }

    public mutating func nextUInt32() -> UInt32 {
        if used == 4 {
            buffer = Self.philox(counter, key)
            counter.0 &+= 1
            used = 0
        }
        defer { used += 1 }
        switch used {
        case 0: return buffer.0
        case 1: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    /// Advances as if `n` words had been drawn.
    public mutating func skip(words n: Int) {
        let available = 4 - used
        guard n > available else {
            used += n
            return
        }
        let rest = n - available
        // The blocks wholly skipped, then the one the next word comes from.
        counter.0 &+= UInt32(truncatingIfNeeded: rest / 4)
        used = 4
        for _ in 0..<rest % 4 { _ = nextUInt32() }
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextFloat() -> Float { Float(nextUInt32() >> 8) * (1.0 / 16_777_216.0) }

    /// Uniform integer in 0..<n (rejection sampling, unbiased).
    public mutating func next(below n: Int) -> Int {
        precondition(n > 0)
        let bound = UInt64(n)
        let limit = (UInt64(1) << 32) - (UInt64(1) << 32) % bound
        while true {
            let r = UInt64(nextUInt32())
            if r < limit { return Int(r % bound) }
        }
    }

    /// Standard normal (Box–Muller).
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(nextUInt32()) / 4_294_967_296.0, 1e-300)
        let u2 = Double(nextUInt32()) / 4_294_967_296.0
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Fisher–Yates shuffle.
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, next(below: i + 1)) }
    }
}

