import Foundation
import XCTest
import Distributed
import Kernels
import Models
import Tensors
@testable import Engine

/// `TrainingEngine.modelStateBytes` (what a rank really allocates and keeps) against DeepSpeed's formulas
/// in `MemoryEstimate`, within 5 %, on a fixture model with real ranks and on the SmolLM2-135M shape.
final class MemoryEstimateTests: XCTestCase {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models").path

    func testFormulas() {
        let psi = 1_000_000
        // Mixed precision, K = 12 (FORMATS.md): 16Ψ, 4Ψ + 12Ψ/N, 2Ψ + 14Ψ/N, 16Ψ/N.
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 0, ranks: 4, computeDType: .bf16), 16 * psi)
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 1, ranks: 4, computeDType: .bf16), 4 * psi + 3 * psi)
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 2, ranks: 4, computeDType: .f16), 2 * psi + 14 * psi / 4)
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 3, ranks: 4, computeDType: .bf16), 4 * psi)
        // f32: 4-byte weights and gradients, no separate master copy (K = 8).
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 0, ranks: 2), 16 * psi)
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 1, ranks: 2), 8 * psi + 4 * psi)
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 2, ranks: 2), 4 * psi + 6 * psi)
        XCTAssertEqual(MemoryEstimate.modelStateBytes(parameters: psi, stage: 3, ranks: 2), 8 * psi)
    }

    /// Every rank of real 1-, 2- and 4-rank jobs on the fixture model (Ψ = 23 552), stages 0-3.
    func testFixtureEnginesMatchFormula() throws {
        let path = Self.models + "/llama_gqa_llama3rope"
        for ranks in [1, 2, 4] {
            for stage in 0...3 {
                let bytes = try ThreadCommunicator.run(worldSize: ranks) { comm -> (Int, Int) in
                    let model = try TransformerModel.load(directory: path)
                    var options = EngineOptions()
                    options.zeroStage = stage
                    let engine = try TrainingEngine(model: model, options: options,
                                                    optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                                    maxTokens: 8, communicator: comm)
                    return (engine.modelStateBytes, model.parameterCount)
                }
                for (measured, psi) in bytes {
                    let formula = MemoryEstimate.modelStateBytes(parameters: psi, stage: stage, ranks: ranks)
                    XCTAssertEqual(Double(measured), Double(formula), accuracy: 0.05 * Double(formula), "stage \(stage), \(ranks) ranks")
                }
            }
        }
    }

    /// SmolLM2-135M's shape (Ψ = 134 515 008), engines built as rank 0 of 2 and 4 with a communicator
    /// whose collectives do nothing: buffers are mmap-backed, so the full-size ones cost no memory
    /// until touched. Prints the figures the report quotes.
    func testSmolLM135MEnginesMatchFormula() throws {
        let model = try Self.smolLM135M()
        XCTAssertEqual(model.parameterCount, 134_515_008)
        for ranks in [2, 4] {
            for stage in 0...3 {
                let engine = try TrainingEngine(model: model, options: { var o = EngineOptions(); o.zeroStage = stage; return o }(),
                                                optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                                maxTokens: 4, communicator: SilentCommunicator(worldSize: ranks))
                let formula = MemoryEstimate.modelStateBytes(parameters: model.parameterCount, stage: stage, ranks: ranks)
                let measured = engine.modelStateBytes
                print(String(format: "135M stage %d, %d ranks: engine %.1f MB, formula %.1f MB (%+.4f%%)", stage, ranks,
                             Double(measured) / 1e6, Double(formula) / 1e6, 100 * (Double(measured) / Double(formula) - 1)))
                XCTAssertEqual(Double(measured), Double(formula), accuracy: 0.05 * Double(formula), "stage \(stage), \(ranks) ranks")
            }
        }
    }

    /// Pages of `buffer` the kernel holds in memory (mincore), in bytes.
    static func residentBytes(_ buffer: FlatBuffer) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = (buffer.byteCount + page - 1) / page
        var flags = [UInt8](repeating: 0, count: pages)
        guard mincore(buffer.raw, pages * page, &flags) == 0 else { return -1 }
        return flags.reduce(0) { $0 + Int($1 & 1) } * page
    }

    /// After a micro-step on the 135M shape (one rank of 4, collectives silent), ZeRO-2 keeps none of the
    /// full-size gradient pages and ZeRO-3 none of the full-size weight pages, beyond partial pages at
    /// group edges (≤ 2 pages per group); stage 0 keeps all gradient pages written by backward.
    func testReleasedPagesLeaveMemory() throws {
        let model = try Self.smolLM135M()
        let groupsEdge = 2 * 32 * Int(sysconf(Int32(_SC_PAGESIZE)))
        let tokens: [Int32] = [1, 5, 9, 13], positions: [Int32] = [0, 1, 2, 3], targets: [Int32] = [5, 9, 13, -100]
        var resident: [Int: (params: Int, grads: Int)] = [:]
        for stage in [0, 2, 3] {
            let engine = try TrainingEngine(model: model, options: { var o = EngineOptions(); o.zeroStage = stage; return o }(),
                                            optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                            maxTokens: 4, communicator: SilentCommunicator(worldSize: 4))
            try engine.microStep(tokens: tokens, positions: positions, spans: [AttentionSpan(qStart: 0, qLen: 4)],
                                 targets: targets, normalizer: 3)
            resident[stage] = (Self.residentBytes(model.params), Self.residentBytes(engine.grads))
        }
        print("resident after a micro-step (params, grads) bytes: stage 0 \(resident[0]!), stage 2 \(resident[2]!), stage 3 \(resident[3]!)")
        XCTAssertGreaterThan(resident[0]!.grads, model.params.byteCount * 9 / 10)
        XCTAssertLessThanOrEqual(resident[2]!.grads, groupsEdge)
        XCTAssertLessThanOrEqual(resident[3]!.grads, groupsEdge)
        XCTAssertLessThanOrEqual(resident[3]!.params, groupsEdge)
    }

    static func smolLM135M() throws -> TransformerModel {
        let config = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
         "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
         "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000.0, "tie_word_embeddings": true,
         "hidden_act": "silu", "attention_bias": false, "mlp_bias": false}
        """
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zero-135m-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let configPath = dir.appendingPathComponent("config.json").path
        try Data(config.utf8).write(to: URL(fileURLWithPath: configPath))
        return TransformerModel(config: try ModelRegistry.config(path: configPath))
    }
}

/// Rank 0 of a job whose collectives do nothing: enough to build an engine and read its allocations.
private final class SilentCommunicator: Communicator {
    let rank = 0
    let worldSize: Int
    init(worldSize: Int) { self.worldSize = worldSize }
    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws {}
    func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws {}
    func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {}
    func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {}
    func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {}
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {}
    func send(_ buffer: UnsafeRawPointer, bytes: Int, to rank: Int, tag: Int) throws {}
    func receive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from rank: Int, tag: Int) throws {}
    func barrier() throws {}
    func abort(message: String, code: Int32) -> Never { fatalError(message) }
}
