import XCTest
@testable import Distributed

/// The one-process communicator, the groups' rank layout, the thread split and the launcher detection.
/// All comparisons are exact (copies and integer arithmetic).
final class LocalCommunicatorTests: XCTestCase {
    func testWorldOfOne() {
        let c = LocalCommunicator()
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.worldSize, 1)
        XCTAssertTrue(c.isMain)
    }

    func testReductionsLeaveValuesAsTheyAre() throws {
        let c = LocalCommunicator()
        var f: [Float] = [1.5, -2, 3]
        try c.allReduce(&f, count: 3, op: .sum)
        XCTAssertEqual(f, [1.5, -2, 3])
        try c.allReduce(&f, count: 3, op: .max)
        XCTAssertEqual(f, [1.5, -2, 3])
        var d: [Double] = [0.1, 7]
        try c.allReduce(&d, count: 2, op: .sum)
        XCTAssertEqual(d, [0.1, 7])
        XCTAssertEqual(try c.allReduce(4.25, op: .sum), 4.25)
        XCTAssertTrue(try c.any(true))
        XCTAssertFalse(try c.any(false))
    }

    func testScatterAndGatherCopyTheOneBlock() throws {
        let c = LocalCommunicator()
        let input: [Float] = [1, 2, 3, 4]
        var out = [Float](repeating: 0, count: 4)
        try c.reduceScatter(input: input, output: &out, blockCount: 4)
        XCTAssertEqual(out, input)
        var gathered = [Float](repeating: 0, count: 4)
        try c.allGather(input: input, output: &gathered, blockCount: 4)
        XCTAssertEqual(gathered, input)
        let bytes: [UInt8] = [9, 8, 7]
        var gatheredBytes = [UInt8](repeating: 0, count: 3)
        try c.allGatherBytes(input: bytes, output: &gatheredBytes, blockBytes: 3)
        XCTAssertEqual(gatheredBytes, bytes)
    }

    func testBroadcastFromRankZeroOnly() throws {
        let c = LocalCommunicator()
        var b: [UInt8] = [1, 2]
        try c.broadcast(&b, bytes: 2, root: 0)
        XCTAssertEqual(b, [1, 2])
        XCTAssertThrowsError(try c.broadcast(&b, bytes: 2, root: 1)) { error in
            XCTAssertTrue("\(error)".contains("only rank 0"), "\(error)")
        }
    }

    func testMessagesToSelfArriveInOrderPerTag() throws {
        let c = LocalCommunicator()
        let first: [Int32] = [1, 2], second: [Int32] = [3, 4], other: [Int32] = [5, 6]
        try c.send(first, bytes: 8, to: 0, tag: 7)
        try c.send(other, bytes: 8, to: 0, tag: 8)
        try c.send(second, bytes: 8, to: 0, tag: 7)
        var got = [Int32](repeating: 0, count: 2)
        try c.receive(&got, bytes: 8, from: 0, tag: 7)
        XCTAssertEqual(got, first)
        try c.receive(&got, bytes: 8, from: 0, tag: 8)
        XCTAssertEqual(got, other)
        try c.receive(&got, bytes: 8, from: 0, tag: 7)
        XCTAssertEqual(got, second)
        // Nothing left: a blocking receive would wait forever, so it throws.
        XCTAssertThrowsError(try c.receive(&got, bytes: 8, from: 0, tag: 7))
        XCTAssertThrowsError(try c.send(first, bytes: 8, to: 1, tag: 7))
        try c.send(first, bytes: 8, to: 0, tag: 9)
        XCTAssertThrowsError(try c.receive(&got, bytes: 4, from: 0, tag: 9)) { error in
            XCTAssertTrue("\(error)".contains("expected 4 bytes, the message has 8"), "\(error)")
        }
        try c.barrier()
    }

    func testSplitAndGroupsOfOne() throws {
        let c: Communicator = LocalCommunicator()
        let sub = try c.split(color: 3, key: 0)
        XCTAssertEqual(sub.worldSize, 1)
        let groups = try ParallelGroups(world: c, pipelineStages: 1)
        XCTAssertEqual(groups.dataParallel.worldSize, 1)
        XCTAssertEqual(groups.pipeline.worldSize, 1)
        XCTAssertEqual(groups.stage, 0)
        XCTAssertEqual(groups.replica, 0)
        XCTAssertThrowsError(try ParallelGroups(world: c, pipelineStages: 2)) { error in
            XCTAssertTrue("\(error)".contains("divide the world size 1"), "\(error)")
        }
        XCTAssertThrowsError(try ParallelGroups(world: c, pipelineStages: 0))
    }

    /// Pipeline-major: world rank = stage × D + replica (world 8 = 2 stages × 4 replicas).
    func testPipelineMajorLayout() {
        var seen = Set<Int>()
        for r in 0..<8 {
            let (stage, replica) = ParallelGroups.position(ofWorldRank: r, dataParallelSize: 4)
            XCTAssertEqual(stage, r / 4)
            XCTAssertEqual(replica, r % 4)
            XCTAssertEqual(stage * 4 + replica, r)
            seen.insert(stage * 10 + replica)
        }
        XCTAssertEqual(seen.count, 8)
    }

    func testThreadsPerRank() {
        XCTAssertEqual(Distributed.threadsPerRank(cores: 2, localRanks: 1), 2)
        XCTAssertEqual(Distributed.threadsPerRank(cores: 2, localRanks: 2), 1)
        XCTAssertEqual(Distributed.threadsPerRank(cores: 2, localRanks: 4), 1)
        XCTAssertEqual(Distributed.threadsPerRank(cores: 16, localRanks: 3), 5)
        XCTAssertEqual(Distributed.threadsPerRank(cores: 8, localRanks: 0), 8)
    }

    func testLauncherDetection() throws {
        XCTAssertFalse(Distributed.launchedByMPI(environment: [:]))
        XCTAssertEqual(Distributed.announcedWorldSize(environment: [:]), 1)
        XCTAssertEqual(Distributed.localRanks(environment: [:]), 1)
        let env = ["OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"]
        XCTAssertTrue(Distributed.launchedByMPI(environment: env))
        XCTAssertEqual(Distributed.announcedWorldSize(environment: env), 8)
        XCTAssertEqual(Distributed.localRanks(environment: env), 4)
        // The test process is not under mpirun: the factory gives the one-process communicator, once.
        XCTAssertFalse(Distributed.launchedByMPI())
        let c = try makeCommunicator()
        XCTAssertTrue(c is LocalCommunicator)
        XCTAssertTrue(c === (try Distributed.current()))
    }

    func testRunOrAbortReturnsTheValue() {
        XCTAssertEqual(runOrAbort(LocalCommunicator()) { 41 + 1 }, 42)
    }
}
