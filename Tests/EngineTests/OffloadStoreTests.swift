import Foundation
import XCTest
@testable import Engine

/// The NVMe offload tier. Every numerical comparison here is bit-exact (tolerance 0): the store only
/// moves bytes, and the streamed update runs the same scalar function as the in-memory reference.
final class OffloadStoreTests: XCTestCase {
    private let names = ["master", "exp_avg", "exp_avg_sq"]
    private var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "offload-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    // MARK: - Helpers

    /// SplitMix64, mapped to floats in [-1, 1) (and [0, 1) for second moments, which must not be negative).
    private func randomFloats(_ n: Int, seed: UInt64, nonNegative: Bool = false) -> [Float] {
        var state = seed
        return (0..<n).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let unit = Float(z >> 40) / Float(1 << 24)
            return nonNegative ? unit : unit * 2 - 1
        }
    }

    /// One AdamW step on one element (bias-corrected, decoupled weight decay), shared by both paths.
    private func adamW(_ p: inout Float, _ m: inout Float, _ v: inout Float, grad g: Float, step t: Int) {
        let beta1: Float = 0.9, beta2: Float = 0.999, lr: Float = 1e-3, eps: Float = 1e-8, decay: Float = 0.01
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        let mHat = m / (1 - Float(pow(Double(beta1), Double(t))))
        let vHat = v / (1 - Float(pow(Double(beta2), Double(t))))
        p -= lr * (mHat / (vHat.squareRoot() + eps) + decay * p)
    }

    private func readAll(_ store: OffloadStore, _ name: String) throws -> [Float] {
        var out = [Float](repeating: .nan, count: store.count)
        try out.withUnsafeMutableBufferPointer { try store.read(name, into: $0.baseAddress!, range: 0..<store.count) }
        return out
    }

    private func writeAll(_ store: OffloadStore, _ name: String, _ values: [Float]) throws {
        try values.withUnsafeBufferPointer { try store.write(name, from: $0.baseAddress!, range: 0..<values.count) }
    }

    private func assertBitIdentical(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let mismatch = (0..<min(a.count, b.count)).first { a[$0].bitPattern != b[$0].bitPattern }
        XCTAssertNil(mismatch, "\(what): first differing element \(mismatch.map(String.init) ?? "")", file: file, line: line)
    }

    /// Ends the lifetime of everything created in `body` before the caller checks for leaks.
    private func runInScope(_ body: () throws -> Void) rethrows { try body() }

    /// Targets of this process's open descriptors that lie under `prefix` (other threads of the test
    /// runner open descriptors of their own, so a plain count would be flaky).
    private func openDescriptors(under prefixes: [String]) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
            .filter { target in prefixes.contains { target.hasPrefix($0) } }
    }

    private func f32Files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".f32") }
    }

    // MARK: - Tests

    func testWriteReadRoundTripIsBitIdentical() throws {
        let count = 100_003
        let store = try OffloadStore(directory: scratch + "/rt", names: names, count: count, chunkElements: 4096)
        XCTAssertEqual(store.fileBytes, 3 * count * 4)
        var data: [[Float]] = []
        for (i, name) in names.enumerated() {
            var values = randomFloats(count, seed: UInt64(i + 1))
            values[7] = .nan
            values[8] = -0.0
            values[9] = .infinity
            data.append(values)
            try writeAll(store, name, values)
        }
        for (i, name) in names.enumerated() { assertBitIdentical(try readAll(store, name), data[i], name) }

        // A partial range lands exactly where it is asked to.
        let patch = randomFloats(500, seed: 99)
        try patch.withUnsafeBufferPointer { try store.write("exp_avg", from: $0.baseAddress!, range: 1000..<1500) }
        data[1].replaceSubrange(1000..<1500, with: patch)
        assertBitIdentical(try readAll(store, "exp_avg"), data[1], "after partial write")
        var part = [Float](repeating: 0, count: 500)
        try part.withUnsafeMutableBufferPointer { try store.read("exp_avg", into: $0.baseAddress!, range: 1000..<1500) }
        assertBitIdentical(part, patch, "partial read")

        XCTAssertThrowsError(try store.read("nope", into: &part, range: 0..<1)) {
            XCTAssertEqual($0 as? OffloadError, .unknownArray(name: "nope", known: names))
        }
        XCTAssertThrowsError(try store.read("master", into: &part, range: count - 1..<count + 1))
    }

    /// 5 layouts × 2 optimizer steps: every element inside the ranges gets the same AdamW update as the
    /// in-memory reference, every element outside keeps its value, and chunks tile the ranges in order.
    func testStreamMatchesInMemoryUpdateForSeveralRangeSets() throws {
        let count = 1000
        let manySmall = stride(from: 0, to: count - 5, by: 37).map { $0..<($0 + 5) }
        let cases: [(label: String, chunk: Int, ranges: [Range<Int>])] = [
            ("one range", 64, [0..<count]),
            ("many small ranges", 16, manySmall),
            ("ranges not multiples of the chunk", 64, [3..<250, 250..<251, 260..<260, 400..<999]),
            ("chunk size 1", 1, [0..<100, 500..<600, 999..<1000]),
            ("chunk larger than total", 5000, [10..<20, 30..<count]),
        ]
        for (index, testCase) in cases.enumerated() {
            let store = try OffloadStore(directory: scratch + "/case\(index)", names: names, count: count,
                                         chunkElements: testCase.chunk)
            var p = randomFloats(count, seed: 10)
            var m = randomFloats(count, seed: 11)
            var v = randomFloats(count, seed: 12, nonNegative: true)
            try writeAll(store, "master", p)
            try writeAll(store, "exp_avg", m)
            try writeAll(store, "exp_avg_sq", v)

            for step in 1...2 {
                let grad = randomFloats(count, seed: 100 + UInt64(step))
                for range in testCase.ranges { for i in range { adamW(&p[i], &m[i], &v[i], grad: grad[i], step: step) } }

                var chunks: [Range<Int>] = []
                try store.stream(testCase.ranges) { chunk, arrays in
                    XCTAssertEqual(arrays.count, 3)
                    chunks.append(chunk)
                    for (j, i) in chunk.enumerated() {
                        adamW(&arrays[0][j], &arrays[1][j], &arrays[2][j], grad: grad[i], step: step)
                    }
                }
                let expectedChunks = testCase.ranges.flatMap { range in
                    stride(from: range.lowerBound, to: range.upperBound, by: min(testCase.chunk, count)).map {
                        $0..<min($0 + min(testCase.chunk, count), range.upperBound)
                    }
                }
                XCTAssertEqual(chunks, expectedChunks, testCase.label)
            }
            assertBitIdentical(try readAll(store, "master"), p, "\(testCase.label): master")
            assertBitIdentical(try readAll(store, "exp_avg"), m, "\(testCase.label): exp_avg")
            assertBitIdentical(try readAll(store, "exp_avg_sq"), v, "\(testCase.label): exp_avg_sq")
        }
    }

    func testStreamRejectsUnsortedOrOutOfBoundsRangesAndReentry() throws {
        let store = try OffloadStore(directory: scratch + "/bad", names: names, count: 100, chunkElements: 8)
        for ranges in [[10..<20, 5..<8], [0..<10, 9..<12], [90..<101]] {
            XCTAssertThrowsError(try store.stream(ranges) { _, _ in XCTFail("body must not run") }) {
                guard case .invalidArgument = $0 as? OffloadError else { return XCTFail("\($0)") }
            }
        }
        var sink: Float = 0
        XCTAssertThrowsError(try store.stream([0..<10]) { _, _ in try store.read("master", into: &sink, range: 0..<1) }) {
            XCTAssertEqual($0 as? OffloadError, .busy)
        }
        try store.stream([]) { _, _ in XCTFail("no chunks in an empty range list") }
    }

    func testBodyThrowingMidStreamIsRethrownAndStoreStaysUsable() throws {
        struct Stop: Error {}
        let count = 1000
        let store = try OffloadStore(directory: scratch + "/throw", names: names, count: count, chunkElements: 10)
        let original = names.indices.map { randomFloats(count, seed: 30 + UInt64($0)) }
        for (i, name) in names.enumerated() { try writeAll(store, name, original[i]) }

        var calls = 0
        XCTAssertThrowsError(try store.stream([0..<count]) { chunk, arrays in
            calls += 1
            if chunk.lowerBound == 50 { arrays[0][0] = 12345; throw Stop() }
            for a in 0..<3 { for j in 0..<chunk.count { arrays[a][j] += 1 } }
        }) { XCTAssertTrue($0 is Stop, "the body's own error comes back: \($0)") }
        XCTAssertEqual(calls, 6)
        // Chunks 0..<50 were written back; the failing chunk and everything after it were not.
        for (i, name) in names.enumerated() {
            let expected = original[i].enumerated().map { $0.offset < 50 ? $0.element + 1 : $0.element }
            assertBitIdentical(try readAll(store, name), expected, "\(name) after the thrown body")
        }

        try store.stream([0..<count]) { chunk, arrays in
            for a in 0..<3 { for j in 0..<chunk.count { arrays[a][j] *= 2 } }
        }
        for (i, name) in names.enumerated() {
            let expected = original[i].enumerated().map { ($0.offset < 50 ? $0.element + 1 : $0.element) * 2 }
            assertBitIdentical(try readAll(store, name), expected, "\(name) after the retry")
        }
    }

    func testUnwritableDirectoryIsReportedWithItsPath() throws {
        // Tests run as root, for whom chmod does not block writes: use a path through a regular file.
        let file = scratch + "/plain-file"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        for directory in [file + "/offload", file + "/a/b", "/proc/swift-finetune-offload-test"] {
            XCTAssertThrowsError(try OffloadStore(directory: directory, names: names, count: 10, chunkElements: 4)) {
                guard case .unwritableDirectory(let path, _) = $0 as? OffloadError else { return XCTFail("\($0)") }
                XCTAssertEqual(path, directory)
                XCTAssertTrue("\($0)".contains(directory), "\($0)")
            }
        }
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "x")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/swift-finetune-offload-test"))
    }

    func testNotEnoughSpaceFailsBeforeWritingAnything() throws {
        let created = scratch + "/new/nested"
        XCTAssertThrowsError(try OffloadStore(directory: created, names: names, count: 1000, chunkElements: 64,
                                              availableBytes: { _ in 11_999 }, forceZeroFill: false)) {
            XCTAssertEqual($0 as? OffloadError, .notEnoughSpace(path: created, needed: 12_000, available: 11_999))
            XCTAssertTrue("\($0)".contains("need 12000 bytes, 11999 available"), "\($0)")
        }
        // Nothing written, and the directories it made for itself are gone again.
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/new"))

        let existing = scratch + "/existing"
        try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: false)
        XCTAssertThrowsError(try OffloadStore(directory: existing, names: names, count: 1000, chunkElements: 64,
                                              availableBytes: { _ in 0 }, forceZeroFill: false))
        XCTAssertEqual(f32Files(in: existing), [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: existing))

        // Exactly enough is enough.
        let store = try OffloadStore(directory: existing, names: names, count: 1000, chunkElements: 64,
                                     availableBytes: { _ in 12_000 }, forceZeroFill: false)
        XCTAssertEqual(f32Files(in: existing).sorted(), ["exp_avg.f32", "exp_avg_sq.f32", "master.f32"])
        store.close()
    }

    func testEnospcDuringStreamNamesTheFileDrainsAndRecovers() throws {
        weak var released: OffloadStore?
        try runInScope {
            let count = 1000
            let store = try OffloadStore(directory: scratch + "/full", names: names, count: count, chunkElements: 64)
            released = store
            let original = names.indices.map { randomFloats(count, seed: 50 + UInt64($0)) }
            for (i, name) in names.enumerated() { try writeAll(store, name, original[i]) }
            try store.redirectDescriptorForTesting("exp_avg", to: "/dev/full")
            XCTAssertEqual(openDescriptors(under: [scratch + "/full/", "/dev/full"]).count, 3, "the check below can see them")

            // On a helper thread so that a hang fails the test instead of stalling the suite.
            let outcome = StreamOutcome()
            let finished = expectation(description: "stream returns")
            DispatchQueue.global().async { [unowned store] in
                do {
                    try store.stream([0..<count]) { chunk, arrays in
                        outcome.bodyCalls += 1
                        for j in 0..<chunk.count { arrays[0][j] += 1 }
                    }
                } catch { outcome.error = error }
                finished.fulfill()
            }
            wait(for: [finished], timeout: 30)
            guard let thrown = outcome.error, case .noSpaceLeft(let path, let offset, _) = thrown as? OffloadError else {
                return XCTFail("expected ENOSPC, got \(String(describing: outcome.error))")
            }
            XCTAssertEqual(path, store.paths[1])
            XCTAssertEqual(offset, 0, "the first write-behind fails")
            XCTAssertTrue("\(thrown)".contains("exp_avg.f32"), "\(thrown)")
            XCTAssertLessThan(outcome.bodyCalls, 16, "the stream stops soon after the failed write")

            // Same store, disk "freed": a full stream succeeds and the data is intact.
            try store.redirectDescriptorForTesting("exp_avg", to: store.paths[1])
            try store.stream([0..<count]) { chunk, arrays in
                for a in 0..<3 { for j in 0..<chunk.count { arrays[a][j] = -arrays[a][j] } }
            }
            // master's first chunk (+1) was written before exp_avg's write of that chunk failed.
            for (i, name) in names.enumerated() {
                let expected = original[i].enumerated().map { i == 0 && $0.offset < 64 ? -($0.element + 1) : -$0.element }
                assertBitIdentical(try readAll(store, name), expected, name)
            }
        }
        XCTAssertNil(released, "no I/O closure keeps the store alive")
        XCTAssertEqual(openDescriptors(under: [scratch + "/full/", "/dev/full"]), [], "every descriptor is closed")
        XCTAssertEqual(f32Files(in: scratch + "/full"), [])
    }

    func testBufferSizeIsIndependentOfCount() throws {
        let small = try OffloadStore(directory: scratch + "/small", names: names, count: 10_000, chunkElements: 1024)
        let large = try OffloadStore(directory: scratch + "/large", names: names, count: 4_000_000, chunkElements: 1024)
        XCTAssertEqual(small.residentBufferBytes, 3 * 3 * 4096, "3 slots × 3 arrays × one page-rounded chunk")
        XCTAssertEqual(large.residentBufferBytes, small.residentBufferBytes)
        XCTAssertEqual(large.fileBytes, 400 * small.fileBytes)
        // A chunk bigger than the arrays is capped to them (then rounded up to a page).
        let tiny = try OffloadStore(directory: scratch + "/tiny", names: ["m"], count: 10, chunkElements: 1 << 20)
        XCTAssertEqual(tiny.chunkElements, 10)
        XCTAssertEqual(tiny.residentBufferBytes, 3 * 4096)
    }

    func testFilesArePreallocatedWithAndWithoutFallocate() throws {
        let count = 300_001 // > 1 MiB per file, not page-aligned: exercises the zero-fill loop's tail
        for zeroFill in [false, true] {
            let directory = scratch + "/prealloc-\(zeroFill)"
            let store = try OffloadStore(directory: directory, names: names, count: count, chunkElements: 4096,
                                         availableBytes: OffloadStore.statvfsAvailableBytes, forceZeroFill: zeroFill)
            for path in store.paths {
                var info = stat()
                XCTAssertEqual(stat(path, &info), 0)
                XCTAssertEqual(Int(info.st_size), count * 4)
                XCTAssertGreaterThanOrEqual(Int(info.st_blocks) * 512, count * 4, "blocks reserved, not sparse: \(path)")
            }
            XCTAssertTrue(try readAll(store, "exp_avg_sq").allSatisfy { $0.bitPattern == 0 }, "files start as zeros")
        }
    }

    func testCloseRemovesFilesAndOnlyDirectoriesItCreated() throws {
        let store = try OffloadStore(directory: scratch + "/made/by/store/", names: names, count: 10, chunkElements: 4)
        XCTAssertEqual(store.paths[0], scratch + "/made/by/store/master.f32")
        let existing = try OffloadStore(directory: scratch, names: ["m"], count: 10, chunkElements: 4)
        store.close()
        store.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/made"))
        var sink: Float = 0
        XCTAssertThrowsError(try store.read("master", into: &sink, range: 0..<1)) { XCTAssertEqual($0 as? OffloadError, .closed) }
        XCTAssertThrowsError(try store.stream([0..<1]) { _, _ in }) { XCTAssertEqual($0 as? OffloadError, .closed) }

        XCTAssertEqual(f32Files(in: scratch), ["m.f32"])
        existing.close()
        XCTAssertEqual(f32Files(in: scratch), [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch), "a directory the user had is kept")
    }

    func testInvalidArgumentsThrow() {
        for (n, count, chunk) in [(["a", "a"], 10, 4), (["a/b"], 10, 4), ([], 10, 4), (["a"], -1, 4), (["a"], 10, 0), ([".."], 1, 1)] {
            XCTAssertThrowsError(try OffloadStore(directory: scratch + "/x", names: n, count: count, chunkElements: chunk)) {
                guard case .invalidArgument = $0 as? OffloadError else { return XCTFail("\($0)") }
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/x"))
    }
}

/// What a stream run on a helper thread left behind; read only after that thread signalled completion.
private final class StreamOutcome: @unchecked Sendable {
    var error: Error?
    var bodyCalls = 0
}
