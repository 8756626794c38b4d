import Foundation
import XCTest
import Formats
import Models
import SwiftFinetune

/// Scripts/reference/gen_gguf_export.py exported fixture models with this CLI (`export --format gguf`)
/// and proved the gguf package reads the files (llama.cpp names, shapes, types, metadata) and transformers
/// loads them (F32: state dict identical to the source). Here: today's export writes the same bytes, our own
/// reading of each file gives transformers' logits, the F16/BF16/Q8_0 rounding stays within stated bounds of
/// the source model, and our convert of each file gives transformers' tokenizer.
final class GGUFExportTests: XCTestCase {
    static let root = CLI.fixtures + "/gguf_export"

    struct Case {
        let name: String
        let source: String
        let dtype: String
    }

    func cases() throws -> [Case] {
        let verdict = try XCTUnwrap(JSONValue.read(path: Self.root + "/verdict.json").objectValue)
        XCTAssertEqual(verdict.count, 8)
        return try verdict.map { name, v in
            for flag in ["gguf_reads", "names_llama_cpp", "shapes_ok", "types_ok", "metadata_ok", "tokenizer_arrays_ok"] {
                XCTAssertEqual(v[flag], .bool(true), "\(name): \(flag)")
            }
            return Case(name: name, source: try XCTUnwrap(v["source"]?.stringValue), dtype: try XCTUnwrap(v["dtype"]?.stringValue))
        }
    }

    /// The source as a model folder: fixture folders as they are, .gguf fixtures converted by our CLI.
    func folder(_ source: String, scratch: String) throws -> String {
        guard source.hasSuffix(".gguf") else { return CLI.fixtures + "/" + source }
        let out = scratch + "/" + ((source as NSString).lastPathComponent as NSString).deletingPathExtension
        if !FileManager.default.fileExists(atPath: out) {
            let r = try CLI.run(["convert", CLI.fixtures + "/" + source, out])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        return out
    }

    func scratch() -> String {
        let dir = NSTemporaryDirectory() + "sf-gguf-export-\(getpid())-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testExportsAreByteIdenticalToTheFilesTheGGUFPackageAndTransformersRead() throws {
        let tmp = scratch()
        for c in try cases() {
            let out = tmp + "/\(c.name).gguf"
            let r = try CLI.run(["export", try folder(c.source, scratch: tmp), out, "--format", "gguf", "--dtype", c.dtype])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("GGUF"), r.stdout)
            XCTAssertEqual(FileManager.default.contents(atPath: out), FileManager.default.contents(atPath: Self.root + "/\(c.name).gguf"), c.name)
        }
    }

    func testOurLogitsOfEachExportedFileMatchTransformersAndTheRoundingIsBounded() throws {
        let tmp = scratch()
        let expected = try SafeTensorsFile(path: Self.root + "/expected.safetensors")
        let ids = try expected.int64s("input_ids").map(Int32.init)
        let rows = [Array(ids[0..<10]), Array(ids[10..<20])]
        // Relative (to the largest |logit|) bounds on what the stored type's rounding may change against the
        // f32 source; measured: f16 1.4e-3, bf16 2.2e-3, q8_0 4.1e-2.
        let rounding: [String: Float] = ["f32": 0, "f16": 5e-3, "bf16": 1e-2, "q8_0": 0.1]
        for c in try cases() {
            let converted = tmp + "/\(c.name)-converted"
            let r = try CLI.run(["convert", Self.root + "/\(c.name).gguf", converted])
            XCTAssertEqual(r.status, 0, r.stderr)
            let ours = try TransformerModel.load(directory: converted).logits(batch: rows)
            let reference = try expected.floats("logits.\(c.name)")
            let scale = reference.map(abs).max()!
            let err = zip(ours, reference).map { abs($0 - $1) }.max()! / scale
            // Tolerance: 1e-4 relative (fp32 logits of the same weights).
            XCTAssertLessThan(err, 1e-4, "\(c.name): logits against transformers' loading of the file")
            let source = try TransformerModel.load(directory: try folder(c.source, scratch: tmp)).logits(batch: rows)
            let drift = zip(ours, source).map { abs($0 - $1) }.max()! / scale
            XCTAssertLessThanOrEqual(drift, rounding[c.dtype]!, "\(c.name): \(c.dtype) rounding against the f32 source")
            print("gguf export \(c.name): logits vs transformers \(err), vs source \(drift)")
        }
    }

    func testConvertOfAnExportedFileGivesTransformersTokenizer() throws {
        let tmp = scratch()
        for c in try cases() where FileManager.default.fileExists(atPath: Self.root + "/\(c.name).tokenizer.json") {
            let converted = tmp + "/\(c.name)"
            let r = try CLI.run(["convert", Self.root + "/\(c.name).gguf", converted])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try JSONValue.read(path: converted + "/tokenizer.json"),
                           try JSONValue.read(path: Self.root + "/\(c.name).tokenizer.json"), c.name)
        }
    }

    func testExportRefusesWhatGGUFCannotHoldNamingTheProblem() throws {
        let tmp = scratch()
        let refusals: [(String, [String], String)] = [
            ("models/gpt2", [], "model_type 'gpt2'"),
            ("models/llama_gqa_llama3rope", [], "rope_type 'llama3'"),
            ("models/qwen2_bias_tied", [], "no tokenizer.json"),
            // What a GGUF file of the family cannot carry, so transformers would load another model.
            ("models/qwen3_chat", [], "head_dim 12: transformers reads qwen3 GGUF files with head_dim 128"),
            ("models/gemma3_chat", [], "layer_types [sliding, full]"),
            ("models/smollm_chat", ["--dtype", "q4_0"], "--dtype for gguf must be"),
            ("models/smollm_chat", ["--archive"], "--archive"),
        ]
        for (source, extra, message) in refusals {
            let out = tmp + "/refused.gguf"
            let r = try CLI.run(["export", CLI.fixtures + "/" + source, out, "--format", "gguf"] + extra)
            XCTAssertNotEqual(r.status, 0, source)
            XCTAssertTrue(r.stderr.contains(message), "\(source): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(source): nothing is left behind")
        }
    }

    /// A training checkpoint exports its f32 master weights (the bf16 folder beside them is their rounding):
    /// each GGUF tensor is the `.master` tensor of the optimizer state, Q/K rows permuted as llama.cpp lays them.
    func testCheckpointExportsItsMasterWeights() throws {
        let tmp = scratch()
        let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
        let train = try CLI.run(["Recipes/quickstart.yaml", "model.path=Tests/Fixtures/models/smollm_chat", "output.dir=\(tmp)/run",
                                 "training.max_steps=2", "output.save_steps=1", "output.dtype=bf16", "logging.sample_prompts=[]",
                                 "lora=null", "training.learning_rate=2.0e-4"], cwd: root)  // a full fine-tune: its checkpoint is a model folder
        XCTAssertEqual(train.status, 0, train.stderr)
        let checkpoint = "\(tmp)/run/global_step1"
        let r = try CLI.run(["export", checkpoint, "\(tmp)/checkpoint.gguf", "--format", "gguf"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let file = try GGUFFile(path: "\(tmp)/checkpoint.gguf")
        let state = try SafeTensorsFile(path: checkpoint + "/zero_rank0_optim_states.safetensors")
        let roundedOnly = try SafeTensorsFile(path: checkpoint + "/model.safetensors")
        var differsFromTheBF16Folder = false
        for (gguf, hf) in ModelRegistry.ggufFamily(modelType: "llama")!.tensorNames(layers: 2, tied: true) {
            let master = try state.floats(hf + ".master")
            var expected = master
            if gguf.contains(".attn_q.") || gguf.contains(".attn_k.") {
                let rows = try XCTUnwrap(state.info(hf + ".master")).shape[0]
                master.withUnsafeBufferPointer { src in
                    expected.withUnsafeMutableBufferPointer { QKPermutation.forward(src, heads: rows / 16, rows: rows, into: $0) }
                }
            }
            XCTAssertEqual(try file.floats(gguf), expected, gguf)
            if try roundedOnly.floats(hf) != master { differsFromTheBF16Folder = true }
        }
        XCTAssertTrue(differsFromTheBF16Folder, "the folder's bf16 weights are not what was exported")
    }
}
