import Foundation
import XCTest
import Formats
import SafeTensors

/// The same recipe and global batch (8 rows per optimizer step) trained through the command line as one
/// process and under mpirun with data parallelism and ZeRO-1/2/3 on 2 and 4 ranks: per-step losses and
/// the exported weights agree within 1e-5 relative.
final class TrainingEquivalenceTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    struct Result { let losses: [Double]; let weights: [String: [Float]] }

    func train(ranks: Int, stage: Int, work: String, lora: String? = nil) throws -> Result {
        try Self.train(ranks: ranks, stage: stage, work: work, lora: lora)
    }

    /// `stages` > 1 trains a pipeline of `stages` × ranks/stages; `model` is the recipe's model line,
    /// `engine` extra engine keys; `name` names the output folder.
    static func train(ranks: Int, stage: Int, work: String, lora: String? = nil, stages: Int = 1,
                      model: String = "{path: \(root)/Tests/Fixtures/models/smollm_chat}", engine: String = "",
                      name: String? = nil, extra: String = "", environment: [String: String] = [:]) throws -> Result {
        let (recipe, out) = try writeRecipe(ranks: ranks, stage: stage, work: work, lora: lora, stages: stages, model: model,
                                            engine: engine, name: name, extra: extra)
        let bin = BoundedProcess.binary
        let args = ranks == 1 ? [bin, recipe] : ["mpirun", "-np", "\(ranks)", "--oversubscribe", bin, recipe]
        let run = try BoundedProcess.run(args, environment: environment, timeout: 120)
        XCTAssertFalse(run.failed, "\(ranks) ranks, stage \(stage), \(stages) pipeline stages: \(run.stderr)")
        return try result(of: out, adapter: lora != nil)
    }

    /// A finished run's per-step losses (metrics.jsonl, in order) and final weights (the model, or the
    /// adapter of a LoRA run).
    static func result(of out: String, adapter: Bool = false) throws -> Result {
        let losses = try lossesByStep(out).sorted { $0.key < $1.key }.map(\.value)
        let file = try SafeTensorsFile(path: out + (adapter ? "/final/adapter_model.safetensors" : "/final/model.safetensors"))
        var weights: [String: [Float]] = [:]
        for name in file.names { weights[name] = try file.floats(name) }
        return Result(losses: losses, weights: weights)
    }

    /// The loss of every step metrics.jsonl logged, by step.
    static func lossesByStep(_ out: String) throws -> [Int: Double] {
        var byStep: [Int: Double] = [:]
        for line in try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            let v = try JSONValue.parse(String(line))
            if let s = v["step"]?.intValue, let l = v["loss"]?.doubleValue { byStep[s] = l }
        }
        return byStep
    }

    /// The recipe `train` runs (4 steps of 8 rows, a checkpoint at step 2) and its output folder.
    static func writeRecipe(ranks: Int, stage: Int, work: String, lora: String? = nil, stages: Int = 1,
                            model: String = "{path: \(root)/Tests/Fixtures/models/smollm_chat}", engine: String = "",
                            name: String? = nil, extra: String = "", steps: Int = 4) throws -> (recipe: String, out: String) {
        let out = work + "/" + (name ?? "np\(ranks)-z\(stage)")
        let recipe = work + "/recipe.yaml"
        let accumulation = 8 / (2 * ranks / stages)
        try Data("""
        model: \(model)
        data:
          train: {path: \(Self.root)/Recipes/data/quickstart_chat.jsonl, format: chat}
          max_seq_len: 64
          packing: true
        training: {max_steps: \(steps), micro_batch_size: 2, gradient_accumulation_steps: \(accumulation), learning_rate: 3.0e-3, max_grad_norm: 0.5}
        optimizer: {type: adamw, weight_decay: 0.1}
        scheduler: {type: linear, warmup_steps: 1}
        engine: {zero_stage: \(stage), pipeline: {stages: \(stages)}\(engine)}
        output: {dir: \(out), save_steps: 2}
        logging: {progress: none}
        seed: 3
        \(lora.map { "lora: \($0)" } ?? "")
        \(extra)
        """.utf8).write(to: URL(fileURLWithPath: recipe))
        return (recipe, out)
    }

    func testOneProcessDataParallelAndZeROStagesAgree() throws {
        try checkAgreement(runs: [(2, 0), (2, 1), (2, 2), (2, 3), (4, 1), (4, 2), (4, 3)], lora: nil)
    }

    /// LoRA (PEFT's adapter with non-zero B, all-linear, bf16-stored base, a checkpoint at step 2 written
    /// by every rank) through mpirun: the final PEFT adapter agrees with one process's. (From a fresh
    /// adapter B starts at 0 and AdamW's first steps move near-zero-gradient elements by ±lr whatever
    /// the gradient's last bits, so its tensors are compared where they are non-trivial instead.)
    func testLoRAOnTwoRanksAgreesWithOneProcess() throws {
        try checkAgreement(runs: [(2, 0), (2, 2), (2, 3)],
                           lora: "{init_adapter: \(Self.root)/Tests/Fixtures/lora/smollm_chat/adapter, base_dtype: bf16}")
    }

    func checkAgreement(runs: [(Int, Int)], lora: String?) throws {
        let work = NSTemporaryDirectory() + "sf-equivalence-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let reference = try train(ranks: 1, stage: 0, work: work, lora: lora)
        XCTAssertEqual(reference.losses.count, 4)
        if lora != nil { XCTAssertTrue(reference.weights.keys.allSatisfy { $0.contains("lora_") }, "\(reference.weights.keys)") }
        for (ranks, stage) in runs {
            let r = try train(ranks: ranks, stage: stage, work: work, lora: lora)
            XCTAssertEqual(r.losses.count, 4, "\(ranks) ranks, stage \(stage)")
            // Tolerance: 1e-5 relative for per-step losses and for every exported tensor (max |a−b| / max |b|).
            for (a, b) in zip(r.losses, reference.losses) {
                XCTAssertLessThan(abs(a - b) / abs(b), 1e-5, "\(ranks) ranks, stage \(stage): losses \(r.losses) vs \(reference.losses)")
            }
            for (name, ref) in reference.weights {
                let w = try XCTUnwrap(r.weights[name], name)
                let err = zip(w, ref).map { abs($0 - $1) }.max()! / ref.map(abs).max()!
                XCTAssertLessThan(err, 1e-5, "\(ranks) ranks, stage \(stage): \(name)")
            }
        }
    }
}

/// `estimate-memory` prints DeepSpeed's per-rank formula, and the engine of a real run reports the same
/// figure (within 5%) for the stage it trains with.
final class EstimateMemoryTests: XCTestCase {
    func testEstimateMatchesWhatTheEngineHolds() throws {
        let bin = BoundedProcess.binary
        let recipe = TrainingEquivalenceTests.root + "/Recipes/quickstart_tiny.yaml"
        let estimate = try BoundedProcess.run([bin, "estimate-memory", recipe, "--nproc", "2", "engine.zero_stage=2"], timeout: 60)
        XCTAssertFalse(estimate.failed, estimate.stderr)
        XCTAssertTrue(estimate.stdout.contains("1,747,392 trainable parameters"), estimate.stdout)
        // f32 AdamW, Ψ = 1,747,392 on 2 ranks: stage 0 16Ψ, 1 8Ψ + 8Ψ/2, 2 4Ψ + 12Ψ/2, 3 16Ψ/2.
        for (stage, mb) in [(0, "28.0 MB"), (1, "21.0 MB"), (2, "17.5 MB"), (3, "14.0 MB")] {
            let line = estimate.stdout.split(separator: "\n").first { $0.contains("ZeRO-\(stage):") } ?? ""
            XCTAssertTrue(line.contains(mb), estimate.stdout)
        }
        let out = NSTemporaryDirectory() + "sf-mem-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try BoundedProcess.run(["mpirun", "-np", "2", "--oversubscribe", bin, recipe, "engine.zero_stage=2",
                                          "training.max_steps=1", "output.dir=\(out)", "logging.sample_prompts=[]",
                                          "training.eval_steps=null", "training.early_stopping=null", "data.eval=null"],
                                         timeout: 120)
        XCTAssertFalse(run.failed, run.stderr)
        let line = try XCTUnwrap(run.stderr.split(separator: "\n").first { $0.contains("model state on each rank") })
        let mb = try XCTUnwrap(Double(line.split(separator: " ")[5]))
        // Tolerance: 5% (shards are padded to equal sizes per layer group).
        XCTAssertEqual(mb, 17.47, accuracy: 17.47 * 0.05, String(line))
    }
}

/// A checkpoint written by 2 ranks under ZeRO-2 resumes in one process at stage 0 (and the reverse
/// direction is the same code path): the resumed steps match the original run within 1e-5.
final class ResumeAcrossWorldSizesTests: XCTestCase {
    func testZeRO2OnTwoRanksResumesAsOneProcess() throws {
        let root = TrainingEquivalenceTests.root
        let work = NSTemporaryDirectory() + "sf-resume-world-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        func recipe(accumulation: Int, stage: Int, out: String, resume: String?) throws -> String {
            let path = work + "/r-\(stage)-\(accumulation).yaml"
            try Data("""
            model: {path: \(root)/Tests/Fixtures/models/smollm_chat}
            data:
              train: {path: \(root)/Recipes/data/quickstart_chat.jsonl, format: chat}
              max_seq_len: 64
              packing: true
            training: {max_steps: 4, micro_batch_size: 2, gradient_accumulation_steps: \(accumulation), learning_rate: 3.0e-3}
            engine: {zero_stage: \(stage)}
            output: {dir: \(out), save_steps: 2}
            logging: {progress: none}
            seed: 5
            \(resume.map { "resume: \($0)" } ?? "")
            """.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let bin = BoundedProcess.binary
        let first = try BoundedProcess.run(["mpirun", "-np", "2", "--oversubscribe", bin,
                                            try recipe(accumulation: 2, stage: 2, out: work + "/two", resume: nil)], timeout: 120)
        XCTAssertFalse(first.failed, first.stderr)
        // One optimizer shard per rank, each holding only that rank's pieces (no gather at save time).
        let shardSizes = try (0..<2).map { r -> Int in
            let path = work + "/two/global_step2/zero_rank\(r)_optim_states.safetensors"
            return (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        }
        let modelSize = (try FileManager.default.attributesOfItem(atPath: work + "/two/global_step2/model.safetensors")[.size] as? Int) ?? 0
        for size in shardSizes { XCTAssertLessThan(size, 2 * modelSize, "a rank's shard holds about half of 3 f32 copies") }
        let resumed = try BoundedProcess.run([bin, try recipe(accumulation: 4, stage: 0, out: work + "/one", resume: work + "/two/global_step2")],
                                             timeout: 120)
        XCTAssertFalse(resumed.failed, resumed.stderr)
        let a = try TrainingEquivalenceTests.lossesByStep(work + "/two"), b = try TrainingEquivalenceTests.lossesByStep(work + "/one")
        XCTAssertEqual(Array(b.keys).sorted(), [3, 4], "the resumed run continues at step 3")
        // Tolerance: 1e-5 relative (another world size sums gradients in another order).
        for step in [3, 4] { XCTAssertEqual(b[step]!, a[step]!, accuracy: 1e-5 * a[step]!, "step \(step)") }
    }
}
