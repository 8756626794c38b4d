import Foundation
import XCTest
import SwiftFinetune

/// What a LoRA run leaves, read by PEFT and by our own commands. The adapters in
/// Tests/Fixtures/lora/ours_<base> were trained by our CLI and loaded by PeftModel.from_pretrained
/// (Scripts/reference/gen_lora_ours.py, peft 0.21.2), which recorded its logits and merge_and_unload's
/// weights. Tolerances: logits 1e-4 relative; merged weights 1e-5 relative per tensor; eval loss of the
/// unmerged adapter vs the merged export 1e-5 relative; greedy text identical.
final class LoRAOutputTests: XCTestCase {
    static let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
    static let cases = ["smollm_chat", "qwen3_gqa"]
    let scratch = NSTemporaryDirectory() + "sf-lora-out-\(getpid())"

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    static func adapter(_ name: String) -> String { CLI.fixtures + "/lora/ours_\(name)/adapter" }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 0
        return zip(a, b).map { abs($0 - $1) }.max()! / max(scale, 1e-30)
    }

    func testPEFTLogitsOfOurAdapterMatchOurs() throws {
        for name in Self.cases {
            let model = try TransformerModel.load(directory: CLI.fixtures + "/models/" + name)
            try AdapterTraining.attach(Self.adapter(name), to: model)
            let expected = try SafeTensorsFile(path: CLI.fixtures + "/lora/ours_\(name)/expected.safetensors")
            let ids = try expected.int64s("input_ids").map(Int32.init)
            let T = ids.count / 2
            let logits = model.logits(batch: [Array(ids[0..<T]), Array(ids[T...])])
            let err = Self.relativeError(logits, try expected.floats("logits"))
            XCTAssertLessThan(err, 1e-4, "\(name): our logits vs PEFT's on our adapter")
            print("ours_\(name): logits rel error vs PEFT \(err)")
        }
    }

    /// `export ADAPTER OUT` finds the base through base_model_name_or_path (relative to the working
    /// directory, as PEFT resolves it) and writes merge_and_unload's weights.
    func testMergedExportEqualsMergeAndUnload() throws {
        for name in Self.cases {
            let out = scratch + "/merged-" + name
            let r = try CLI.run(["export", Self.adapter(name), out, "--dtype", "f32"], cwd: Self.root)
            XCTAssertEqual(r.status, 0, r.stderr)
            let merged = try SafeTensorsFile(path: out + "/model.safetensors")
            let expected = try SafeTensorsFile(path: CLI.fixtures + "/lora/ours_\(name)/expected.safetensors")
            let names = expected.names.filter { $0.hasPrefix("merged.") }
            XCTAssertEqual(Set(merged.names), Set(names.map { String($0.dropFirst("merged.".count)) }), name)
            var worst: Float = 0
            for n in names {
                let err = Self.relativeError(try merged.floats(String(n.dropFirst("merged.".count))), try expected.floats(n))
                XCTAssertLessThan(err, 1e-5, "\(name): \(n)")
                worst = max(worst, err)
            }
            print("ours_\(name): merged export worst rel error vs merge_and_unload \(worst)")
        }
    }

    /// eval and generate with `--adapter` (unmerged) agree with the merged export.
    func testEvalAndGenerateWithTheAdapterUnmerged() throws {
        let name = "smollm_chat", base = CLI.fixtures + "/models/" + name
        let merged = scratch + "/merged"
        XCTAssertEqual(try CLI.run(["export", Self.adapter(name), merged, "--dtype", "f32"], cwd: Self.root).status, 0)
        let data = CLI.fixtures + "/models/\(name)/eval.jsonl"
        let withAdapter = try CLI.run(["eval", "--model", base, "--adapter", Self.adapter(name), "--data", data])
        let mergedEval = try CLI.run(["eval", "--model", merged, "--data", data])
        let plain = try CLI.run(["eval", "--model", base, "--data", data])
        XCTAssertEqual(withAdapter.status, 0, withAdapter.stderr)
        // "eval_loss 7.999109  perplexity ...": six decimals.
        func loss(_ r: CLI.Result) throws -> Double {
            try XCTUnwrap(r.stdout.split(separator: " ").dropFirst().first.flatMap { Double($0) }, r.stdout)
        }
        let a = try loss(withAdapter), m = try loss(mergedEval), p = try loss(plain)
        XCTAssertEqual(a, m, accuracy: max(1e-5 * m, 2e-6), "unmerged adapter vs merged export (printed to 6 decimals)")
        XCTAssertGreaterThan(abs(a - p), 1e-3, "the adapter changes the loss")
        let prompt = ["--prompt", "Hello", "--max-new-tokens", "12"]
        let g1 = try CLI.run(["generate", "--model", base, "--adapter", Self.adapter(name)] + prompt)
        let g2 = try CLI.run(["generate", "--model", merged] + prompt)
        XCTAssertEqual(g1.status, 0, g1.stderr)
        XCTAssertEqual(g1.stdout, g2.stdout)
    }

    func testAnAdapterWithoutAReachableBaseNamesTheKey() throws {
        let copy = scratch + "/moved"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.adapter("smollm_chat"), toPath: copy)
        // Run from elsewhere: the relative base path does not resolve.
        let r = try CLI.run(["export", copy, scratch + "/out"], cwd: scratch)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("adapter_config.json: base_model_name_or_path"), r.stderr)
        XCTAssertTrue(r.stderr.contains("--base"), r.stderr)
        let given = try CLI.run(["export", copy, scratch + "/out", "--base", CLI.fixtures + "/models/smollm_chat"], cwd: scratch)
        XCTAssertEqual(given.status, 0, given.stderr)
        // A wrong base is refused by the adapter's tensor shapes, naming the file.
        let wrong = try CLI.run(["export", copy, scratch + "/out2", "--base", CLI.fixtures + "/models/qwen3_gqa"], cwd: scratch)
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("adapter_model.safetensors") || wrong.stderr.contains("lora"), wrong.stderr)
    }
}
