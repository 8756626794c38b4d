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
}
