import Foundation
import XCTest
import Distributed
import Kernels
import Models
import Tensors
@testable import Engine

/// The engine with NVMe offload (OptimizerOffload.swift) against the same run in memory: optimizer state,
/// mixed precision's master weights and ZeRO-3's weight shards streamed through a small bounded buffer
/// (a few thousand elements per chunk, so every range spans many chunks) must give bit-identical
/// weights and optimizer state, on every stage, precision and rank count tried.
final class OffloadEngineTests: XCTestCase {
    typealias Z = ZeROEquivalenceTests
    private var savedThreads = 1
    private var root = ""

    override func setUp() {
        savedThreads = Parallel.threads
        Parallel.setThreads(1)
        root = NSTemporaryDirectory() + "sf-offload-engine-\(getpid())"
    }

    override func tearDown() {
        Parallel.setThreads(savedThreads)
        try? FileManager.default.removeItem(atPath: root)
    }

    struct Setup {
        var precision: EngineOptions.Precision = .f32
        var stage = 0
        var ranks = 1
        var optimizer = true
        var param = false
    }

    struct Run: Equatable {
        var losses: [Double] = []
        var weights: [Float] = []
        var moments: [Float] = []
        var stateBytes = 0
    }

    func options(_ s: Setup, offload: Bool) -> EngineOptions {
        var o = EngineOptions()
        o.zeroStage = s.stage
        o.precision = s.precision
        if offload && s.optimizer {
            o.offloadOptimizer.device = .nvme
            o.offloadOptimizer.path = root
            o.offloadOptimizer.bufferSize = 3 * 4 * 3 * 5000  // 5000 elements per chunk
        }
        if offload && s.param {
            o.offloadParam.device = .nvme
            o.offloadParam.path = root
            o.offloadParam.bufferSize = 3 * 4 * 4 * 5000
        }
        return o
    }

    func train(_ s: Setup, offload: Bool, steps: Int = 3) throws -> [Run] {
        let path = Z.models + "/llama_gqa_llama3rope"
        let batches = Z.batches(vocab: 96, steps: steps)
        return try ThreadCommunicator.run(worldSize: s.ranks) { comm -> Run in
            let model = try TransformerModel.load(directory: path)
            let engine = try TrainingEngine(model: model, options: self.options(s, offload: offload),
                                            optimizer: .adamw(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1),
                                            maxTokens: 64, communicator: comm)
            XCTAssertEqual(engine.offloadStore != nil, offload)
            var run = Run()
            for batch in batches {
                let labels = batch.reduce(0) { $0 + $1.targets.filter { $0 != CrossEntropy.ignoreIndex }.count }
                let mine = batch[(comm.rank * 8 / s.ranks)..<((comm.rank + 1) * 8 / s.ranks)]
                let half = mine.startIndex + mine.count / 2
                engine.zeroGradients()
                var lossSum = try Z.microStep(engine, mine[mine.startIndex..<half], normalizer: Float(labels))
                lossSum += try Z.microStep(engine, mine[half...], normalizer: Float(labels))
                run.losses.append(try comm.allReduce(lossSum, op: .sum) / Double(labels))
                XCTAssertFalse(try engine.step(lr: 3e-3, maxGradNorm: 0.5).skipped)
            }
            run.stateBytes = engine.modelStateBytes
            // Every rank's checkpoint shard (paged in from the store when offloaded), read back whole:
            // what a resume sees.
            let dir = self.root + "-ckpt-\(offload)-\(s.precision)-\(s.stage)-\(s.ranks)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try engine.saveState(to: dir)
            try comm.barrier()
            let n = model.layout.totalCount
            let full = ["master": FlatBuffer(dtype: .f32, count: n), "exp_avg": FlatBuffer(dtype: .f32, count: n),
                        "exp_avg_sq": FlatBuffer(dtype: .f32, count: n)]
            XCTAssertEqual(try TrainingEngine.readState(directory: dir, layout: model.layout, into: full), steps)
            try comm.barrier()
            if comm.rank == 0 { try FileManager.default.removeItem(atPath: dir) }
            run.weights = Z.values(full["master"]!)
            run.moments = Z.values(full["exp_avg"]!) + Z.values(full["exp_avg_sq"]!)
            return run
        }
    }

    func check(_ s: Setup, file: StaticString = #filePath, line: UInt = #line) throws {
        let memory = try train(s, offload: false)
        let offloaded = try train(s, offload: true)
        let label = "\(s.precision) stage \(s.stage) on \(s.ranks) rank(s)\(s.param ? " + offload_param" : "")"
        for r in 0..<s.ranks {
            XCTAssertEqual(offloaded[r].losses, memory[r].losses, "\(label): losses", file: file, line: line)
            XCTAssertTrue(offloaded[r].weights == memory[r].weights, "\(label): weights differ", file: file, line: line)
            XCTAssertTrue(offloaded[r].moments == memory[r].moments, "\(label): optimizer state differs", file: file, line: line)
            XCTAssertLessThan(offloaded[r].stateBytes, memory[r].stateBytes, "\(label): offload must take state out of memory", file: file, line: line)
        }
        print("offload \(label): in-memory state \(memory[0].stateBytes) B -> \(offloaded[0].stateBytes) B, bit-identical")
    }

    func testOffloadIsBitIdenticalInF32() throws {
        try check(Setup(stage: 0))
        try check(Setup(stage: 2, ranks: 2))
        try check(Setup(stage: 3, ranks: 2, param: true))
    }

    func testOffloadIsBitIdenticalInMixedPrecision() throws {
        try check(Setup(precision: .bf16, stage: 0))
        try check(Setup(precision: .bf16, stage: 1, ranks: 2))
        try check(Setup(precision: .fp16, stage: 3, ranks: 2, param: true))
    }

    /// ZeRO-1 on 2 ranks: one good step, then every write of exp_avg fails with ENOSPC (its descriptor
    /// now points at /dev/full). Each rank's step throws `EngineError.stepFailed` with its own rank and
    /// the offload file, instead of ending the process (the Trainer turns it into the job-wide abort).
    func testDiskFullMidRunIsThrownFromTheStepWithTheRank() throws {
        let batch = Z.batches(vocab: 96, steps: 1)[0]
        let labels = batch.reduce(0) { $0 + $1.targets.filter { $0 != CrossEntropy.ignoreIndex }.count }
        let outcomes = try ThreadCommunicator.run(worldSize: 2) { comm -> (error: Error?, file: String) in
            let model = try TransformerModel.load(directory: Z.models + "/llama_gqa_llama3rope")
            let engine = try TrainingEngine(model: model, options: self.options(Setup(stage: 1, ranks: 2), offload: true),
                                            optimizer: .adamw(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1),
                                            maxTokens: 64, communicator: comm)
            let store = try XCTUnwrap(engine.offloadStore)
            let mine = batch[(comm.rank * 4)..<(comm.rank * 4 + 4)]
            engine.zeroGradients()
            _ = try Z.microStep(engine, mine, normalizer: Float(labels))
            XCTAssertFalse(try engine.step(lr: 3e-3, maxGradNorm: 0.5).skipped)
            engine.zeroGradients()
            _ = try Z.microStep(engine, mine, normalizer: Float(labels))
            try store.redirectDescriptorForTesting("exp_avg", to: "/dev/full")
            defer { try? store.redirectDescriptorForTesting("exp_avg", to: store.paths[0]) }
            do {
                _ = try engine.step(lr: 3e-3, maxGradNorm: 0.5)
                return (nil, store.paths[0])
            } catch {
                return (error, store.paths[0])
            }
        }
        for (rank, outcome) in outcomes.enumerated() {
            guard case .stepFailed(let failedRank, let underlying)? = outcome.error as? EngineError,
                  case .noSpaceLeft(let path, _, _)? = underlying as? OffloadError else {
                XCTFail("rank \(rank): expected stepFailed(noSpaceLeft), got \(String(describing: outcome.error))")
                continue
            }
            XCTAssertEqual(failedRank, rank)
            XCTAssertEqual(path, outcome.file)
            XCTAssertTrue("\(outcome.error!)".hasPrefix("rank \(rank): optimizer step: no space left"), "\(outcome.error!)")
        }
    }

    func testBadOffloadPathsFailBeforeTraining() throws {
        let model = try TransformerModel.load(directory: Z.models + "/llama_gqa_llama3rope")
        // A path under a regular file can never be created.
        let file = NSTemporaryDirectory() + "sf-offload-file-\(getpid())"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        defer { try? FileManager.default.removeItem(atPath: file) }
        var o = EngineOptions()
        o.offloadOptimizer.device = .nvme
        o.offloadOptimizer.path = file + "/offload"
        XCTAssertThrowsError(try TrainingEngine(model: model, options: o, optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                                maxTokens: 16)) {
            XCTAssertTrue("\($0)".contains(file), "\($0)")
        }
        o.offloadOptimizer.path = nil
        XCTAssertThrowsError(try TrainingEngine(model: model, options: o, optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                                maxTokens: 16)) {
            XCTAssertTrue("\($0)".contains("needs a path"), "\($0)")
        }
        var p = EngineOptions()
        p.offloadParam.device = .nvme
        p.offloadParam.path = root
        XCTAssertThrowsError(try TrainingEngine(model: model, options: p, optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                                maxTokens: 16)) {
            XCTAssertTrue("\($0)".contains("zero_stage 3"), "\($0)")
        }
    }
}
