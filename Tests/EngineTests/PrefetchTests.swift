import Foundation
import XCTest
import Distributed
import Kernels
import Models
import Tensors
@testable import Engine

/// A communicator whose `startAllGather` does nothing but poison `output` with NaN; the gather runs at
/// `wait()`. An engine that reads a prefetch before waiting sees NaN, and one that changes the shards a
/// prefetch reads before waiting gathers the changed values: either way the results differ from the
/// blocking path. Counts starts and waits.
final class DeferringCommunicator: Communicator {
    let base: Communicator
    private(set) var started = 0
    private(set) var waited = 0
    var rank: Int { base.rank }
    var worldSize: Int { base.worldSize }

    init(_ base: Communicator) { self.base = base }

    final class Deferred: PendingCollective {
        let run: () throws -> Void
        var done = false
        init(_ run: @escaping () throws -> Void) { self.run = run }
        func wait() throws {
            XCTAssertFalse(done, "a pending collective is waited for once")
            done = true
            try run()
        }
    }

    func startAllGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws -> PendingCollective {
        started += 1
        output.update(repeating: .nan, count: blockCount * worldSize)
        return Deferred { [self] in
            waited += 1
            try base.allGather(input: input, output: output, blockCount: blockCount)
        }
    }

    func allReduce(_ b: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws { try base.allReduce(b, count: count, op: op) }
    func allReduce(_ b: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws { try base.allReduce(b, count: count, op: op) }
    func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try base.reduceScatter(input: input, output: output, blockCount: blockCount)
    }
    func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try base.allGather(input: input, output: output, blockCount: blockCount)
    }
    func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {
        try base.allGatherBytes(input: input, output: output, blockBytes: blockBytes)
    }
    func broadcast(_ b: UnsafeMutableRawPointer, bytes: Int, root: Int) throws { try base.broadcast(b, bytes: bytes, root: root) }
    func send(_ b: UnsafeRawPointer, bytes: Int, to r: Int, tag: Int) throws { try base.send(b, bytes: bytes, to: r, tag: tag) }
    func receive(_ b: UnsafeMutableRawPointer, bytes: Int, from r: Int, tag: Int) throws { try base.receive(b, bytes: bytes, from: r, tag: tag) }
    func barrier() throws { try base.barrier() }
    func abort(message: String, code: Int32) -> Never { base.abort(message: message, code: code) }
}

/// ZeRO-3 with and without prefetching the next block group must give BIT-IDENTICAL losses, gradient
/// norms and final weights (tolerance 0: prefetching only moves copies in time). Runs a 4-block model
/// (blocks 3 and 4 are scaled copies of the fixture's two) on 2, 3 (padded shards) and 4 thread ranks,
/// 5 AdamW steps of 2 micro-batches each, with and without activation checkpointing.
final class PrefetchTests: XCTestCase {
    private var savedThreads = 1
    override func setUp() { savedThreads = Parallel.threads; Parallel.setThreads(1) }
    override func tearDown() { Parallel.setThreads(savedThreads) }

    typealias Sequence = ZeROEquivalenceTests.Sequence

    struct Run: Equatable {
        var losses: [Double] = []
        var norms: [Double] = []
        var weights: [Float] = []
        var started = 0
        var waited = 0
    }

    /// llama_gqa_llama3rope (untied head) or smollm_chat (tied) deepened to 4 blocks.
    static func fourBlockModel(_ name: String) throws -> TransformerModel {
        let two = try TransformerModel.load(directory: ZeROEquivalenceTests.models + "/" + name)
        var config = two.config
        config.numLayers = 4
        let model = TransformerModel(config: config)
        for e in model.layout.entries {
            var source = e.name, scale: Float = 1
            for l in 2..<4 where e.name.contains("layers.\(l).") {
                source = e.name.replacingOccurrences(of: "layers.\(l).", with: "layers.\(l - 2).")
                scale = 0.75
            }
            let from = two.layout[source]!.range
            for (i, j) in zip(e.range, from) { model.params.floats[i] = two.params.floats[j] * scale }
        }
        return model
    }

    func train(_ name: String, ranks: Int, prefetch: Bool, checkpointing: Bool = false,
               deferring: Bool = true, starveLastRank: Bool = false) throws -> [Run] {
        let batches = ZeROEquivalenceTests.batches(vocab: try Self.fourBlockModel(name).config.vocabSize, steps: 5)
        return try ThreadCommunicator.run(worldSize: ranks) { threadComm -> Run in
            let deferringComm = DeferringCommunicator(threadComm)
            let comm: Communicator = deferring ? deferringComm : threadComm
            let model = try Self.fourBlockModel(name)
            var options = EngineOptions()
            options.zeroStage = 3
            options.activationCheckpointing = checkpointing
            let engine = try TrainingEngine(model: model, options: options,
                                            optimizer: .adamw(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1),
                                            maxTokens: 64, communicator: comm)
            engine.prefetch = prefetch
            var run = Run()
            for batch in batches {
                let labels = batch.reduce(0) { $0 + $1.targets.filter { $0 != CrossEntropy.ignoreIndex }.count }
                let mine = batch[(comm.rank * 8 / ranks)..<((comm.rank + 1) * 8 / ranks)]
                // The last rank may run its first micro-step empty (`emptyMicroStep` joins the same gathers).
                let half = starveLastRank && comm.rank == ranks - 1 ? mine.startIndex : mine.startIndex + mine.count / 2
                engine.zeroGradients()
                var lossSum = try ZeROEquivalenceTests.microStep(engine, mine[mine.startIndex..<half], normalizer: Float(labels))
                lossSum += try ZeROEquivalenceTests.microStep(engine, mine[half...], normalizer: Float(labels))
                lossSum = try comm.allReduce(lossSum, op: .sum)
                let result = try engine.step(lr: 3e-3, maxGradNorm: 0.5)
                run.losses.append(lossSum / Double(labels))
                run.norms.append(result.gradNorm!)
            }
            XCTAssertNil(engine.inFlight, "no prefetch outlives a micro-step")
            try engine.gatherFullParameters()
            run.weights = ZeROEquivalenceTests.values(model.params)
            run.started = deferringComm.started
            run.waited = deferringComm.waited
            return run
        }
    }

    func checkIdentical(_ name: String, ranks: Int, checkpointing: Bool = false, starveLastRank: Bool = false) throws {
        let label = "\(name) on \(ranks) ranks, checkpointing \(checkpointing), starved \(starveLastRank)"
        let off = try train(name, ranks: ranks, prefetch: false, checkpointing: checkpointing, starveLastRank: starveLastRank)
        let on = try train(name, ranks: ranks, prefetch: true, checkpointing: checkpointing, starveLastRank: starveLastRank)
        // 5 steps × 2 micro-steps × (forward 2, 3, 4 + backward 3, 2, 1 prefetched).
        for run in on { XCTAssertEqual([run.started, run.waited], [60, 60], "\(label): prefetches started and waited") }
        for run in off { XCTAssertEqual([run.started, run.waited], [0, 0], "\(label): no prefetch when off") }
        let initial = ZeROEquivalenceTests.values(try Self.fourBlockModel(name).params)
        XCTAssertGreaterThan(ZeROEquivalenceTests.relativeL2(off[0].weights, initial), 1e-3, "\(label): the steps move the weights")
        XCTAssertTrue(off[0].losses.allSatisfy(\.isFinite), "\(label): finite losses")
        for r in 0..<ranks {
            XCTAssertEqual(on[r].losses, off[r].losses, "\(label): rank \(r) losses")
            XCTAssertEqual(on[r].norms, off[r].norms, "\(label): rank \(r) gradient norms")
            XCTAssertTrue(on[r].weights == off[r].weights, "\(label): rank \(r) final weights bit-identical")
            XCTAssertTrue(on[r].weights == on[0].weights, "\(label): rank \(r) agrees with rank 0")
        }
    }

    func testPrefetchIsBitIdenticalUntied() throws {
        for ranks in [2, 3, 4] { try checkIdentical("llama_gqa_llama3rope", ranks: ranks) }
    }

    func testPrefetchIsBitIdenticalTied() throws {
        for ranks in [2, 4] { try checkIdentical("smollm_chat", ranks: ranks) }
    }

    /// Backward re-runs block l's forward while the prefetch of l-1 is in flight.
    func testPrefetchWithActivationCheckpointing() throws {
        for ranks in [2, 4] { try checkIdentical("llama_gqa_llama3rope", ranks: ranks, checkpointing: true) }
    }

    /// A rank with an empty micro-step prefetches in the same order as the others.
    func testPrefetchWithEmptyRankMicroStep() throws {
        try checkIdentical("llama_gqa_llama3rope", ranks: 2, starveLastRank: true)
    }

    /// ThreadCommunicator's default `startAllGather` (blocking, finished at once) also agrees.
    func testDefaultBlockingStartIsBitIdentical() throws {
        let off = try train("llama_gqa_llama3rope", ranks: 2, prefetch: false, deferring: false)
        let on = try train("llama_gqa_llama3rope", ranks: 2, prefetch: true, deferring: false)
        XCTAssertEqual(on, off)
    }
}
