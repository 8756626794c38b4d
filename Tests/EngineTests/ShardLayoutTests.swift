import XCTest
import Distributed
import Tensors
@testable import Engine

/// Shards of uneven groups, the chunked collectives that move them, and page release. All values are
/// small integers summed exactly: tolerance 0.
final class ShardLayoutTests: XCTestCase {
    /// Groups of 10, 7 and 1 elements (the last rank's shards are partly or wholly padding).
    static func layout() -> ParameterLayout {
        var l = ParameterLayout()
        l.append("a", shape: [2, 5], group: 0)
        l.append("b", shape: [7], group: 1)
        l.append("c", shape: [1], group: 2)
        return l
    }

    func testShardsPartitionEveryGroup() {
        let layout = Self.layout()
        for n in [1, 3, 4] {
            let shards = (0..<n).map { ShardLayout(layout: layout, worldSize: n, rank: $0) }
            XCTAssertEqual(shards[0].localCount, [10, 7, 1].reduce(0) { $0 + ($1 + n - 1) / n })
            for g in 0..<3 {
                let pieces = (0..<n).map { shards[0].ownedRange(group: g, rank: $0) }
                XCTAssertEqual(pieces.map(\.count).reduce(0, +), layout.range(ofGroup: g).count, "group \(g), \(n) ranks")
                for q in 1..<n { XCTAssertEqual(pieces[q].lowerBound, pieces[q - 1].upperBound) }
                XCTAssertEqual(pieces.first!.lowerBound, layout.range(ofGroup: g).lowerBound)
                XCTAssertTrue(pieces.allSatisfy { $0.count <= shards[0].groups[g].shardSize })
            }
        }
    }

    /// Reduce-scatter, all-gather and in-place all-gather in chunks of 2 elements on 3 ranks.
    func testChunkedCollectivesOnUnevenShards() throws {
        let layout = Self.layout(), n = 3, total = layout.totalCount
        func value(_ rank: Int, _ i: Int) -> Float { Float(i * 10 + rank + 1) }
        let expected = (0..<total).map { i in (0..<n).reduce(Float(0)) { $0 + value($1, i) } }
        let results = try ThreadCommunicator.run(worldSize: n) { comm -> ([Float], [Float], [Float]) in
            let shards = ShardLayout(layout: layout, worldSize: n, rank: comm.rank)
            let collectives = ShardCollectives(shards: shards, communicator: comm, chunkElements: 2)
            var full = (0..<total).map { value(comm.rank, $0) }
            var local = [Float](repeating: 0, count: shards.localCount)
            for g in 0..<3 { try collectives.reduceScatter(group: g, full: full, addInto: &local) }
            var gathered = [Float](repeating: -1, count: total)
            for g in 0..<3 { try collectives.allGather(group: g, local: local, into: &gathered) }
            // In place: each rank holds the right values only in its own shards.
            for i in 0..<total { full[i] = -7 }
            for g in 0..<3 {
                let owned = shards.ownedRange(group: g)
                for (j, i) in owned.enumerated() { full[i] = local[shards.groups[g].localOffset + j] }
            }
            for g in 0..<3 { try collectives.allGatherInPlace(group: g, full: &full) }
            return (local, gathered, full)
        }
        for (r, (local, gathered, inPlace)) in results.enumerated() {
            let shards = ShardLayout(layout: layout, worldSize: n, rank: r)
            for g in 0..<3 {
                let owned = shards.ownedRange(group: g), s = shards.groups[g]
                for j in 0..<s.shardSize {
                    XCTAssertEqual(local[s.localOffset + j], j < owned.count ? expected[owned.lowerBound + j] : 0, "rank \(r) group \(g) [\(j)]")
                }
            }
            XCTAssertEqual(gathered, expected)
            XCTAssertEqual(inPlace, expected)
        }
    }

    /// A released range reads as zero, its neighbours keep their values, and its whole pages leave memory.
    func testReleaseZeroesRangeAndFreesPages() {
        let count = 3 << 20 // 12 MB of f32: mmap-backed
        let buffer = FlatBuffer(dtype: .f32, count: count)
        XCTAssertTrue(buffer.isReleasable)
        let f = buffer.floats
        for i in 0..<count { f[i] = 1 }
        let before = MemoryEstimateTests.residentBytes(buffer)
        XCTAssertEqual(before, buffer.byteCount)
        let range = 1001..<(count - 999)
        buffer.release(range)
        // Measured before reading the range back: reading maps the kernel's zero page, which mincore counts.
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        XCTAssertLessThanOrEqual(MemoryEstimateTests.residentBytes(buffer), 2 * page, "only the two edge pages stay")
        XCTAssertEqual(f[1000], 1)
        XCTAssertEqual(f[count - 999], 1)
        XCTAssertTrue(f[range].allSatisfy { $0 == 0 })
        // Small buffers come from the allocator: release only zeroes.
        let small = FlatBuffer(dtype: .f32, count: 16)
        for i in 0..<16 { small.floats[i] = 2 }
        small.release(4..<8)
        XCTAssertFalse(small.isReleasable)
        XCTAssertEqual(Array(small.floats), [2, 2, 2, 2, 0, 0, 0, 0] + Array(repeating: 2, count: 8))
    }
}
