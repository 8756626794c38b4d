import Tensors

/// The 16-bit storage a half-precision collective sums (gradients sent at 2 bytes per element, as
/// DeepSpeed does in mixed precision). Conversions are `Tensors.HalfConversion`'s (PyTorch-exact).
public enum HalfFormat: Sendable, CustomStringConvertible {
    case bf16
    case f16

    /// The format of a tensor dtype; only BF16 and F16 have one.
    public init(_ dtype: DType) throws {
        switch dtype {
        case .bf16: self = .bf16
        case .f16: self = .f16
        default: throw CommunicatorError.invalid("half-precision collectives take BF16 or F16, not \(dtype.rawValue)")
        }
    }

    public var description: String { self == .bf16 ? "bf16" : "f16" }

    @inlinable
    public func float(_ bits: UInt16) -> Float {
        self == .bf16 ? HalfConversion.float(bf16: bits) : HalfConversion.float(f16: bits)
    }

    @inlinable
    public func bits(_ x: Float) -> UInt16 {
        self == .bf16 ? HalfConversion.bf16Bits(x) : HalfConversion.f16Bits(x)
    }

    func decode(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        let s = UnsafeBufferPointer(start: src, count: count), d = UnsafeMutableBufferPointer(start: dst, count: count)
        if self == .bf16 { HalfConversion.fromBF16(s, d) } else { HalfConversion.fromF16(s, d) }
    }

    func encode(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
        let s = UnsafeBufferPointer(start: src, count: count), d = UnsafeMutableBufferPointer(start: dst, count: count)
        if self == .bf16 { HalfConversion.toBF16(s, d) } else { HalfConversion.toF16(s, d) }
    }
}

/// The arithmetic of the half-precision sums, shared by every communicator (and mirrored in C by the
/// MPI ops of `Sources/CMPI/cmpi_half.c`, which tests hold to this bit for bit).
///
/// One pairwise step is round(f32(a) + f32(b)). MPI applies steps in its own order, rounding each
/// partial sum to 16 bits; `ThreadCommunicator` and the generic fallback sum all ranks in rank order in
/// f32 and round once. The two agree exactly for 2 ranks (one step) and whenever the partial sums are
/// exact; over 3+ ranks MPI's result may differ by the extra roundings.
public enum HalfSum {
    /// f32 addition whose NaN result does not depend on operand order, so the sum is commutative bit
    /// for bit: a NaN operand propagates (quieted); of two NaNs the larger bit pattern wins; inf + -inf
    /// gives 0xFFC00000, x86's default NaN (what PyTorch's f32 add yields on this hardware).
    @inlinable
    public static func add(_ a: Float, _ b: Float) -> Float {
        let s = a + b
        return s.isNaN ? nanSum(a, b) : s
    }

    @usableFromInline
    static func nanSum(_ a: Float, _ b: Float) -> Float {
        if !a.isNaN && !b.isNaN { return Float(bitPattern: 0xFFC0_0000) }
        let qa = a.bitPattern | 0x0040_0000, qb = b.bitPattern | 0x0040_0000
        if a.isNaN && b.isNaN { return Float(bitPattern: Swift.max(qa, qb)) }
        return Float(bitPattern: a.isNaN ? qa : qb)
    }

    /// One pairwise step: round(f32(a) + f32(b)) in `format`.
    @inlinable
    public static func pair(_ a: UInt16, _ b: UInt16, format: HalfFormat) -> UInt16 {
        format.bits(add(format.float(a), format.float(b)))
    }

    /// The rank-order sum of `sources` (element i: f32 sum over k in order, rounded once), written to
    /// every destination. A single source is copied bit for bit (the sum over one rank is its value, as
    /// MPI leaves it). Each chunk is read from all sources before it is written, so destinations may be
    /// the sources themselves.
    static func reduce(_ sources: [UnsafePointer<UInt16>], count: Int, format: HalfFormat,
                       into destinations: [UnsafeMutablePointer<UInt16>]) {
        guard count > 0, let first = sources.first else { return }
        if sources.count == 1 {
            for d in destinations where UnsafePointer(d) != first { d.update(from: first, count: count) }
            return
        }
        let chunk = 4096
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
        let term = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
        defer { acc.deallocate(); term.deallocate() }
        var offset = 0
        while offset < count {
            let n = Swift.min(chunk, count - offset)
            format.decode(first + offset, into: acc, count: n)
            for s in sources.dropFirst() {
                format.decode(s + offset, into: term, count: n)
                for i in 0..<n { acc[i] = add(acc[i], term[i]) }
            }
            format.encode(acc, into: destinations[0] + offset, count: n)
            for d in destinations.dropFirst() { (d + offset).update(from: destinations[0] + offset, count: n) }
            offset += n
        }
    }
}

/// The generic half-precision collectives, for communicators that do not implement their own (test
/// wrappers): built on `allGatherBytes`, in pieces of at most `halfGatherPiece` elements per rank, with
/// the rank-order semantics of `HalfSum.reduce`. They move worldSize times the data of a real reduction.
extension Communicator {
    var halfGatherPiece: Int { 1 << 20 }

    public func allReduce(halves buffer: UnsafeMutablePointer<UInt16>, count: Int, format: HalfFormat) throws {
        guard count >= 0 else { throw CommunicatorError.invalid("allReduce(halves): negative count \(count)") }
        let w = worldSize, piece = Swift.min(halfGatherPiece, Swift.max(count, 1))
        let gathered = UnsafeMutablePointer<UInt16>.allocate(capacity: w * piece)
        defer { gathered.deallocate() }
        var offset = 0
        repeat {
            let n = Swift.min(piece, count - offset)
            try allGatherBytes(input: buffer + offset, output: gathered, blockBytes: n * 2)
            HalfSum.reduce((0..<w).map { UnsafePointer(gathered + $0 * n) }, count: n, format: format, into: [buffer + offset])
            offset += n
        } while offset < count
    }

    public func reduceScatter(halves input: UnsafePointer<UInt16>, output: UnsafeMutablePointer<UInt16>, blockCount: Int,
                              format: HalfFormat) throws {
        guard blockCount >= 0 else { throw CommunicatorError.invalid("reduceScatter(halves): negative block count \(blockCount)") }
        // Every block is reduced on every rank (in turn, so all ranks call the same collectives) and
        // each rank keeps its own.
        let block = UnsafeMutablePointer<UInt16>.allocate(capacity: Swift.max(blockCount, 1))
        defer { block.deallocate() }
        for q in 0..<worldSize {
            block.update(from: input + q * blockCount, count: blockCount)
            try allReduce(halves: block, count: blockCount, format: format)
            if q == rank { output.update(from: block, count: blockCount) }
        }
    }
}
