import Foundation
import XCTest
import Formats
import SafeTensors
@testable import GGUF

/// The writing side without the CLI: quantization byte-identical to `gguf.quants.quantize` (the bytes
/// gen_gguf.py stored), the writer's layout, and the round trip GGUF → Hugging Face folder → GGUF → folder
/// on every gen_gguf model: the second folder equals the first (weights bit for bit for F32, config and
/// tokenizer files), and Q8_0 stays within its rounding bound.
final class ExportTests: XCTestCase {
    func testQuantizeIsTheGGUFPackageByteForByte() throws {
        let f = try SafeTensorsFile(path: Fixtures.path("quantize_expected.safetensors"))
        func bytes(_ type: GGMLType, _ source: [Float]) -> [UInt8] {
            var out = [UInt8](repeating: 0xAA, count: type.byteCount(elements: source.count))
            source.withUnsafeBufferPointer { s in out.withUnsafeMutableBytes { Quantize.quantize(type, s, into: $0) } }
            return out
        }
        let q8 = try f.floats("source.q8_0"), halves = try f.floats("source.half")
        XCTAssertEqual(bytes(.q8_0, q8), Array(try f.rawBytes("quantized.q8_0")))
        XCTAssertEqual(bytes(.f16, halves), Array(try f.rawBytes("quantized.f16")))
        XCTAssertEqual(bytes(.bf16, halves), Array(try f.rawBytes("quantized.bf16")))
        XCTAssertEqual(bytes(.f32, halves), halves.withUnsafeBytes { Array($0) })
    }

    func testWriterAlignsEveryTensorAndTheReaderGetsBackMetadataAndValues() throws {
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        w.add("a.list", .array(elementType: .int32, values: [.int32(-1), .int32(7)]))
        w.add("a.float", .float32(0.5))
        let values: [Float] = (0..<(3 * 32)).map { Float($0) * 0.25 - 7 }
        try w.addTensor("odd", type: .f32, shape: [3], fill: { $0.copyMemory(from: UnsafeRawBufferPointer(start: values, count: 12)) })
        try w.addTensor("m", type: .q8_0, shape: [3, 32], fill: { out in values.withUnsafeBufferPointer { Quantize.quantize(.q8_0, $0, into: out) } })
        XCTAssertThrowsError(try w.addTensor("bad", type: .q8_0, shape: [2, 20], fill: { _ in }))
        let path = (try makeTemporaryDirectory(self) as NSString).appendingPathComponent("w.gguf")
        try w.write(to: path)
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.dataOffset % 32, 0)
        XCTAssertEqual(file.tensors.map(\.offset), [0, 32])
        XCTAssertEqual(file["a.list"], .array(elementType: .int32, values: [.int32(-1), .int32(7)]))
        XCTAssertEqual(file["a.float"], .float32(0.5))
        XCTAssertEqual(try file.floats("odd"), Array(values[0..<3]))
        XCTAssertEqual(file.info("m")?.shape, [3, 32])
        XCTAssertEqual(file.fileSize, file.dataOffset + 32 + 3 * 34 + 26)  // the last tensor padded too
    }

    /// convert(X) → export → convert again gives the same folder.
    func testRoundTripThroughExportGivesTheSameFolder() throws {
        let tmp = try makeTemporaryDirectory(self)
        for name in ["llama_bpe", "qwen2_bpe", "llama_spm", "mistral_spm", "qwen3_bpe", "gemma3_spm", "phi3_spm"] {
            let first = tmp + "/\(name)-first", exported = tmp + "/\(name).gguf", second = tmp + "/\(name)-second"
            try GGUFToHuggingFace(file: try GGUFFile(path: Fixtures.path("\(name).gguf"))).write(to: first)
            let plan = try GGUFFromHuggingFace(folder: first)
            let store = try CheckpointReader(path: first)
            try plan.write(to: exported, type: .f32) { try store.readFloats($0, into: $1) }
            let file = try GGUFFile(path: exported)
            XCTAssertEqual(try file.architecture(), try GGUFFile(path: Fixtures.path("\(name).gguf")).architecture(), name)
            try GGUFToHuggingFace(file: file).write(to: second)
            for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"] {
                var a = try JSONValue.read(path: first + "/" + f), b = try JSONValue.read(path: second + "/" + f)
                if f == "config.json" {
                    // general.name is the folder's _model_name_or_path, which import writes back unchanged.
                    XCTAssertEqual(a["_model_name_or_path"], b["_model_name_or_path"], name)
                    a = .null; b = .null
                }
                XCTAssertEqual(a, b, "\(name)/\(f)")
            }
            let again = try SafeTensorsFile(path: second + "/model.safetensors")
            XCTAssertEqual(Set(again.names), Set(store.names), name)
            for t in store.names {
                XCTAssertEqual(try again.floats(t).map(\.bitPattern), try store.floats(t).map(\.bitPattern), "\(name) \(t)")
            }
        }
    }

    func testQ8_0ExportStaysWithinItsRoundingBound() throws {
        let tmp = try makeTemporaryDirectory(self)
        let first = tmp + "/first", exported = tmp + "/q8.gguf"
        try GGUFToHuggingFace(file: try GGUFFile(path: Fixtures.path("llama_spm.gguf"))).write(to: first)
        let store = try CheckpointReader(path: first)
        try GGUFFromHuggingFace(folder: first).write(to: exported, type: .q8_0) { try store.readFloats($0, into: $1) }
        let back = tmp + "/back"
        try GGUFToHuggingFace(file: try GGUFFile(path: exported)).write(to: back)
        let again = try SafeTensorsFile(path: back + "/model.safetensors")
        for t in store.names {
            let a = try store.floats(t), b = try again.floats(t)
            if store.info(t)!.shape.count == 1 { XCTAssertEqual(a, b, t); continue }
            // Per 32-block: |x − q·d| ≤ d/2 from rounding q, plus 127·|d − f16(d)| ≤ 127·d·2⁻¹¹ from storing
            // d as f16: at most 0.57·d, d = max|x|/127 of the block (rows are contiguous, so blocks are too).
            for start in stride(from: 0, to: a.count, by: 32) {
                let d = a[start..<(start + 32)].map(abs).max()! / 127
                let worst = zip(a[start..<(start + 32)], b[start..<(start + 32)]).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(worst, 0.57 * d + 1e-12, "\(t) block at \(start)")
            }
        }
    }

    func testFolderExportRefusesAMissingTensorNamingIt() throws {
        let tmp = try makeTemporaryDirectory(self)
        let first = tmp + "/first"
        try GGUFToHuggingFace(file: try GGUFFile(path: Fixtures.path("llama_bpe.gguf"))).write(to: first)
        var config = try XCTUnwrap(JSONValue.read(path: first + "/config.json").objectValue)
        config["num_hidden_layers"] = .int(3)
        var shapes: [String: [Int]] = [:]
        let store = try CheckpointReader(path: first)
        for n in store.names { shapes[n] = store.info(n)!.shape }
        XCTAssertThrowsError(try GGUFFromHuggingFace(config: config, available: shapes, tokenizerFolder: first, source: first)) {
            XCTAssertTrue("\($0)".contains("model.layers.2."), "\($0)")
        }
        config["num_hidden_layers"] = .int(2)
        shapes["model.extra.weight"] = [4]
        XCTAssertThrowsError(try GGUFFromHuggingFace(config: config, available: shapes, tokenizerFolder: first, source: first)) {
            XCTAssertTrue("\($0)".contains("model.extra.weight"), "\($0)")
        }
    }
}
