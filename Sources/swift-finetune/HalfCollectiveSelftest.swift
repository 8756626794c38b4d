import Foundation
import SwiftFinetune

/// The half-precision part of `_collective-selftest`: `allReduce(halves:)` and `reduceScatter(halves:)`
/// for bf16 and f16. Ranks 0 and 1 hold the two operands of known cases (f16 overflow to inf, NaN
/// payloads, inf + -inf, subnormals, ties to even) and every other rank holds -0, the exact identity of
/// f32 addition, so the expected bits are the same whatever order MPI reduces in. A second buffer holds
/// pseudo-random halves on every rank: its sum must be bit-identical on all ranks, and for 2 ranks equal
/// to round(f32(a) + f32(b)) (`HalfSum.pair`). Each call returns how many elements it checked.
enum HalfCollectiveSelftest {
    /// (rank 0's bits, rank 1's bits, the expected sum), written out by hand.
    static let cases: [(HalfFormat, UInt16, UInt16, UInt16)] = [
        // bf16 ties to even: 1 + 2^-8 → 1; 1 + 3·2^-8 → 1 + 2^-6; (1 + 2^-7) + 2^-8 → 1 + 2^-6.
        (.bf16, 0x3F80, 0x3B80, 0x3F80), (.bf16, 0x3F80, 0x3C40, 0x3F82), (.bf16, 0x3F81, 0x3B80, 0x3F82),
        (.bf16, 0xBF80, 0xBB80, 0xBF80),
        // bf16 NaN (any) → 0xFFFF; inf + -inf → NaN; f32 overflow of max + max → inf.
        (.bf16, 0x7FC0, 0x3F80, 0xFFFF), (.bf16, 0x7F81, 0xFF80, 0xFFFF), (.bf16, 0x7F80, 0xFF80, 0xFFFF),
        (.bf16, 0x7F80, 0x3F80, 0x7F80), (.bf16, 0x7F7F, 0x7F7F, 0x7F80), (.bf16, 0xFF7F, 0xFF7F, 0xFF80),
        // bf16 subnormals (f32 subnormals): 2·2^-133; x + -x = +0; largest subnormal + smallest → smallest normal.
        (.bf16, 0x0001, 0x0001, 0x0002), (.bf16, 0x0001, 0x8001, 0x0000), (.bf16, 0x007F, 0x0001, 0x0080),
        // f16 overflow: 65504 + 16 = 65520 → inf; 65504 + 8 → 65504; -65504 - 16 → -inf.
        (.f16, 0x7BFF, 0x4C00, 0x7C00), (.f16, 0x7BFF, 0x4800, 0x7BFF), (.f16, 0xFBFF, 0xCC00, 0xFC00),
        (.f16, 0x7BFF, 0x7BFF, 0x7C00),
        // f16 NaN: propagates, signalling payload quieted; of two NaNs the larger f32 pattern; inf + -inf.
        (.f16, 0x7E00, 0x3C00, 0x7E00), (.f16, 0x7C01, 0x3C00, 0x7E01), (.f16, 0xFE05, 0x7E03, 0xFE05),
        (.f16, 0x7C00, 0xFC00, 0xFE00), (.f16, 0x3C00, 0x7D00, 0x7F00),
        // f16 subnormals: 2·2^-24; largest subnormal + 2^-24 → smallest normal; x + -x = +0.
        (.f16, 0x0001, 0x0001, 0x0002), (.f16, 0x03FF, 0x0001, 0x0400), (.f16, 0x0001, 0x8001, 0x0000),
        // f16 ties to even: 1 + 2^-11 → 1; (1 + 2^-10) + 2^-11 → 1 + 2^-9.
        (.f16, 0x3C00, 0x1000, 0x3C00), (.f16, 0x3C01, 0x1000, 0x3C02),
    ]

    static func run(_ comm: Communicator, step s: Int, expect: (Bool, @autoclosure () -> String) throws -> Void) throws -> Int {
        var checked = 0
        for format in [HalfFormat.bf16, .f16] {
            checked += try knownCases(comm, format, step: s, expect: expect)
            checked += try randomSums(comm, format, step: s, expect: expect)
        }
        return checked
    }

    /// This rank's operand of case `c`: ranks 0 and 1 hold the pair, the others -0.
    private static func operand(_ c: (HalfFormat, UInt16, UInt16, UInt16), rank: Int) -> UInt16 {
        rank == 0 ? c.1 : rank == 1 ? c.2 : 0x8000
    }

    /// The sum of case `c` over `worldSize` ranks: rank 0's bits alone for one rank.
    private static func expected(_ c: (HalfFormat, UInt16, UInt16, UInt16), worldSize: Int) -> UInt16 {
        worldSize == 1 ? c.1 : c.3
    }

    private static func knownCases(_ comm: Communicator, _ format: HalfFormat, step s: Int,
                                   expect: (Bool, @autoclosure () -> String) throws -> Void) throws -> Int {
        let r = comm.rank, w = comm.worldSize
        let mine = cases.filter { $0.0 == format }
        let m = mine.count
        // All-reduce: element i is case (i + s) mod m, several rounds of the list.
        let count = 5 * m + s
        var buffer = (0..<count).map { operand(mine[($0 + s) % m], rank: r) }
        try comm.allReduce(halves: &buffer, count: count, format: format)
        for i in 0..<count {
            let c = mine[(i + s) % m]
            try expect(buffer[i] == expected(c, worldSize: w),
                       "allReduce(halves \(format)) [\(i)] \(hex(c.1)) + \(hex(c.2)) = \(hex(buffer[i])), expected \(hex(expected(c, worldSize: w)))")
        }
        // Reduce-scatter: element j of block q is case (j + 7q + s) mod m.
        let block = 3 * m + 1
        let input = (0..<(w * block)).map { operand(mine[($0 % block + 7 * ($0 / block) + s) % m], rank: r) }
        var output = [UInt16](repeating: 0x1234, count: block)
        try comm.reduceScatter(halves: input, output: &output, blockCount: block, format: format)
        for j in 0..<block {
            let c = mine[(j + 7 * r + s) % m]
            try expect(output[j] == expected(c, worldSize: w),
                       "reduceScatter(halves \(format)) [\(j)] \(hex(c.1)) + \(hex(c.2)) = \(hex(output[j]))")
        }
        return count + block
    }

    /// Pseudo-random finite halves on every rank (a third of them subnormal-sized for f16): the sum must be
    /// bit-identical on all ranks, and round(f32(a) + f32(b)) for two.
    private static func randomSums(_ comm: Communicator, _ format: HalfFormat, step s: Int,
                                   expect: (Bool, @autoclosure () -> String) throws -> Void) throws -> Int {
        let r = comm.rank, w = comm.worldSize
        let count = 3001 + s
        func value(rank q: Int, _ i: Int) -> UInt16 {
            var x = UInt64(truncatingIfNeeded: (q + 1) * 0x9E37_79B9 + i * 0x85EB_CA6B + s * 0xC2B2_AE35)
            x ^= x >> 29; x &*= 0xBF58_476D_1CE4_E5B9; x ^= x >> 32
            let sign = UInt16(x & 1) << 15
            // Exponents near 1.0 (so sums round) or, for every third element, tiny values.
            let magnitude: UInt16 = format == .bf16
                ? (i % 3 == 0 ? UInt16((x >> 8) & 0x00FF) : 0x3C00 + UInt16((x >> 8) & 0x07FF))
                : (i % 3 == 0 ? UInt16((x >> 8) & 0x07FF) : 0x3400 + UInt16((x >> 8) & 0x0FFF))
            return sign | magnitude
        }
        var buffer = (0..<count).map { value(rank: r, $0) }
        try comm.allReduce(halves: &buffer, count: count, format: format)
        var everyone = [UInt16](repeating: 0, count: w * count)
        try comm.allGatherBytes(input: buffer, output: &everyone, blockBytes: count * 2)
        for q in 0..<w {
            try expect(Array(everyone[(q * count)..<((q + 1) * count)]) == buffer,
                       "allReduce(halves \(format)): rank \(q)'s result differs from rank \(r)'s")
        }
        if w <= 2 {
            for i in 0..<count {
                let want = w == 1 ? value(rank: 0, i) : HalfSum.pair(value(rank: 0, i), value(rank: 1, i), format: format)
                try expect(buffer[i] == want, "allReduce(halves \(format)) random [\(i)] = \(hex(buffer[i])), expected \(hex(want))")
            }
        }
        return count
    }

    private static func hex(_ v: UInt16) -> String { "0x" + String(v, radix: 16, uppercase: true) }
}
