import XCTest

final class InspectCommandTests: XCTestCase {
    func testModelFolderSummary() throws {
        let r = try CLI.run(["inspect", CLI.fixtures + "/models/mistral_sharded"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("mistral, 2 layers, hidden 64, intermediate 88"), r.stdout)
        XCTAssertTrue(r.stdout.contains("4 heads, 2 KV heads, head_dim 16"), r.stdout)
        XCTAssertTrue(r.stdout.contains("model.safetensors.index.json"), r.stdout)
        XCTAssertTrue(r.stdout.contains("weights: match config.json (70,976 trainable parameters)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("F32 ") && r.stdout.contains("model.layers.1.mlp.down_proj.weight"), r.stdout)
    }

    func testSingleFileAndBF16() throws {
        let r = try CLI.run(["inspect", CLI.fixtures + "/models/llama_bf16/model.safetensors"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("BF16"), r.stdout)
        XCTAssertTrue(r.stdout.contains("70,976 parameters"), r.stdout)
    }

    func testErrorsNameThePathAndExitNonZero() throws {
        let missing = try CLI.run(["inspect", "/nonexistent/model"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model: no such file or folder"), missing.stderr)
        let unknown = try CLI.run(["inspect", "--verbose", "x"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("needs a value") || unknown.stderr.contains("unknown option"), unknown.stderr)
        let command = try CLI.run(["frobnicate"])
        XCTAssertTrue(command.stderr.contains("unknown command 'frobnicate'"), command.stderr)
    }
}
