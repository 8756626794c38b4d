import XCTest
import Distributed
import Tensors

/// Each collective of `ThreadCommunicator` on 1, 3 and 4 ranks against the sums computed directly.
/// Values are small integers, so every sum is exact: tolerance 0.
final class ThreadCommunicatorTests: XCTestCase {
    func testAllReduceSumAndMaxFloatAndDouble() throws {
        for n in [1, 3, 4] {
            let results = try ThreadCommunicator.run(worldSize: n) { comm -> ([Float], [Float], [Double]) in
                var a = (0..<10).map { Float($0 * (comm.rank + 1)) }
                var b = (0..<10).map { Float(($0 + comm.rank) % 5) }
                var d = (0..<7).map { Double($0) + Double(comm.rank) * 0.5 }
                try comm.allReduce(&a, count: a.count, op: .sum)
                try comm.allReduce(&b, count: b.count, op: .max)
                try comm.allReduce(&d, count: d.count, op: .sum)
                return (a, b, d)
            }
            let tri = Float(n * (n + 1) / 2)
            for (a, b, d) in results {
                XCTAssertEqual(a, (0..<10).map { Float($0) * tri })
                XCTAssertEqual(b, (0..<10).map { i in Float((0..<n).map { (i + $0) % 5 }.max()!) })
                XCTAssertEqual(d, (0..<7).map { Double($0) * Double(n) + 0.5 * Double(n * (n - 1) / 2) })
            }
        }
    }

    func testReduceScatterAndAllGather() throws {
        let n = 4, block = 3
        let results = try ThreadCommunicator.run(worldSize: n) { comm -> ([Float], [Float]) in
            let input = (0..<n * block).map { Float($0 + 100 * comm.rank) }
            var out = [Float](repeating: -1, count: block)
            try comm.reduceScatter(input: input, output: &out, blockCount: block)
            let mine = (0..<block).map { Float(comm.rank * 10 + $0) }
            var gathered = [Float](repeating: -1, count: n * block)
            try comm.allGather(input: mine, output: &gathered, blockCount: block)
            return (out, gathered)
        }
        for (r, (out, gathered)) in results.enumerated() {
            // Σ_q (r·block + i + 100 q) = n (r·block + i) + 100 · n(n−1)/2
            XCTAssertEqual(out, (0..<block).map { Float(n * (r * block + $0) + 100 * n * (n - 1) / 2) })
            XCTAssertEqual(gathered, (0..<n).flatMap { q in (0..<block).map { Float(q * 10 + $0) } })
        }
    }

    func testBroadcastSendReceiveBarrier() throws {
        let results = try ThreadCommunicator.run(worldSize: 3) { comm -> ([Int32], [Int32]) in
            var data: [Int32] = comm.rank == 2 ? [7, 8, 9] : [0, 0, 0]
            try data.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: 2) }
            // A ring: each rank sends its rank to the next and receives from the previous.
            let next = (comm.rank + 1) % 3, prev = (comm.rank + 2) % 3
            var mine: [Int32] = [Int32(comm.rank), 42]
            try mine.withUnsafeBytes { try comm.send($0.baseAddress!, bytes: $0.count, to: next, tag: 5) }
            var got: [Int32] = [-1, -1]
            try got.withUnsafeMutableBytes { try comm.receive($0.baseAddress!, bytes: $0.count, from: prev, tag: 5) }
            try comm.barrier()
            mine[1] = 0
            return (data, got)
        }
        for (r, (data, got)) in results.enumerated() {
            XCTAssertEqual(data, [7, 8, 9])
            XCTAssertEqual(got, [Int32((r + 2) % 3), 42])
        }
    }

    func testMismatchedCountsThrowOnEveryRank() throws {
        let results = try ThreadCommunicator.run(worldSize: 2) { comm -> Bool in
            var a = [Float](repeating: 1, count: 4)
            do { try comm.allReduce(&a, count: comm.rank == 0 ? 4 : 3, op: .sum); return false } catch { return true }
        }
        XCTAssertEqual(results, [true, true])
    }

    // MARK: half precision

    /// Pseudo-random finite halves of rank `rank`, element `i` (mixed signs, magnitudes 2^-14..2^3 so
    /// sums round, some subnormal-sized).
    private func halfValue(_ format: HalfFormat, rank: Int, _ i: Int) -> UInt16 {
        var x = UInt64(rank + 7) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i) &* 0xBF58_476D
        x ^= x >> 31; x &*= 0x94D0_49BB_1331_11EB; x ^= x >> 29
        let sign = UInt16(x & 1) << 15
        let magnitude = format == .bf16 ? 0x3880 + UInt16((x >> 8) % 0x0880) : UInt16((x >> 8) % 0x4800)
        return sign | magnitude
    }

    /// 2 and 3 ranks against a plain reference: the f32 sum over ranks in rank order, rounded once with
    /// HalfConversion (for 2 ranks exactly round(f32(a) + f32(b)), what MPI's op computes). 5 000
    /// elements per format and world, bit for bit (tolerance 0); every rank must hold the same bits.
    func testHalfAllReduceAndReduceScatterMatchPlainReference() throws {
        let count = 5000, block = 1600
        for n in [2, 3] {
            for format in [HalfFormat.bf16, .f16] {
                let results = try ThreadCommunicator.run(worldSize: n) { comm -> ([UInt16], [UInt16]) in
                    var halves = (0..<count).map { self.halfValue(format, rank: comm.rank, $0) }
                    let input = halves
                    try comm.allReduce(halves: &halves, count: count, format: format)
                    var out = [UInt16](repeating: 0xAAAA, count: block)
                    try comm.reduceScatter(halves: input, output: &out, blockCount: block, format: format)
                    return (halves, out)
                }
                func reference(_ i: Int) -> UInt16 {
                    func decoded(_ q: Int) -> Float {
                        format == .bf16 ? HalfConversion.float(bf16: halfValue(format, rank: q, i))
                                        : HalfConversion.float(f16: halfValue(format, rank: q, i))
                    }
                    var sum = decoded(0)
                    for q in 1..<n { sum += decoded(q) }
                    return format == .bf16 ? HalfConversion.bf16Bits(sum) : HalfConversion.f16Bits(sum)
                }
                let want = (0..<count).map(reference)
                var rounded = 0
                for i in 0..<count {
                    let exact = (0..<n).reduce(0.0) { $0 + Double(format.float(halfValue(format, rank: $1, i))) }
                    if Double(format.float(want[i])) != exact { rounded += 1 }
                }
                XCTAssertGreaterThan(rounded, count / 4, "the data must exercise rounding (\(format), \(n) ranks)")
                for (r, (all, scattered)) in results.enumerated() {
                    XCTAssertTrue(all == want, "\(format) allReduce, rank \(r) of \(n)")
                    XCTAssertTrue(scattered == Array(want[(r * block)..<((r + 1) * block)]), "\(format) reduceScatter, rank \(r) of \(n)")
                }
            }
        }
    }

    /// Known cases with the expected bits written out: f16 overflow to inf, NaN propagation, inf + -inf,
    /// subnormals and ties to even; rank 2 of 3 holds -0 (the identity), so 2 and 3 ranks agree.
    func testHalfSpecialValues() throws {
        let cases: [(HalfFormat, UInt16, UInt16, UInt16)] = [
            (.bf16, 0x3F80, 0x3B80, 0x3F80), (.bf16, 0x3F81, 0x3B80, 0x3F82), (.bf16, 0x7FC0, 0x3F80, 0xFFFF),
            (.bf16, 0x7F80, 0xFF80, 0xFFFF), (.bf16, 0x7F7F, 0x7F7F, 0x7F80), (.bf16, 0x0001, 0x0001, 0x0002),
            (.bf16, 0x007F, 0x0001, 0x0080),
            (.f16, 0x7BFF, 0x4C00, 0x7C00), (.f16, 0x7BFF, 0x4800, 0x7BFF), (.f16, 0x7C01, 0x3C00, 0x7E01),
            (.f16, 0x7C00, 0xFC00, 0xFE00), (.f16, 0xFE05, 0x7E03, 0xFE05), (.f16, 0x03FF, 0x0001, 0x0400),
            (.f16, 0x0001, 0x8001, 0x0000), (.f16, 0x3C01, 0x1000, 0x3C02),
        ]
        for n in [2, 3] {
            for format in [HalfFormat.bf16, .f16] {
                let mine = cases.filter { $0.0 == format }
                let results = try ThreadCommunicator.run(worldSize: n) { comm -> [UInt16] in
                    var halves = mine.map { comm.rank == 0 ? $0.1 : comm.rank == 1 ? $0.2 : 0x8000 }
                    try comm.allReduce(halves: &halves, count: halves.count, format: format)
                    return halves
                }
                for (r, got) in results.enumerated() {
                    XCTAssertEqual(got, mine.map { $0.3 }, "\(format) rank \(r) of \(n)")
                }
            }
        }
    }
}
