import Foundation
import XCTest
import Formats
import SafeTensors

/// Inputs a hostile or careless user gives the release commands: each must end with exit 1 and a message
/// naming the file, key or token and what was expected — never a signal, a hang or a wrong result.
/// Every run has a timeout, so a regression to a hang fails instead of stalling the suite.
final class HostileInputTests: XCTestCase {
    let model = CLI.fixtures + "/models/smollm_chat"

    /// A copy of the fixture model that `edit` may change.
    func modelCopy(_ name: String, _ edit: (String) throws -> Void = { _ in }) throws -> String {
        let dir = try CLI.scratch(name)
        for f in try FileManager.default.contentsOfDirectory(atPath: model) {
            try FileManager.default.copyItem(atPath: model + "/" + f, toPath: dir + "/" + f)
        }
        try edit(dir)
        return dir
    }

    func assertRefused(_ r: CLI.Result, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "hung", file: file, line: line)
        XCTAssertEqual(r.status, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(expected), "expected '\(expected)' in: \(r.stderr)", file: file, line: line)
    }

    func testAnAddedTokenBeyondTheVocabularyIsRefusedByEvalAndGenerate() throws {
        for id in [5000, 100_000_000] {
            let dir = try modelCopy("addedtoken") { dir in
                var t = try XCTUnwrap(JSONValue.read(path: dir + "/tokenizer.json").objectValue)
                var added = t["added_tokens"]?.arrayValue ?? []
                added.append(.object(JSONObject([("id", .int(Int64(id))), ("content", .string("<extra>")), ("single_word", .bool(false)),
                                                 ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)),
                                                 ("special", .bool(true))])))
                t["added_tokens"] = .array(added)
                try JSONValue.object(t).write(to: dir + "/tokenizer.json")
            }
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let message = "tokenizer.json: token \"<extra>\" has id \(id), outside the model's vocab_size 900"
            assertRefused(try CLI.run(["eval", "--model", dir, "--data", dir + "/eval.jsonl"], timeout: 120), message)
            assertRefused(try CLI.run(["generate", "--model", dir, "--prompt", "Hi <extra>", "--max-new-tokens", "2"], timeout: 120), message)
        }
    }

    /// A Split regex that backtracks catastrophically on the text (the issue's hang): tokenize and eval end
    /// in exit 1 naming the pattern, within the runs' timeouts, instead of running for hours.
    func testCatastrophicBacktrackingInAUserRegexEndsWithAnError() throws {
        let dir = try modelCopy("regex") { dir in
            var t = try XCTUnwrap(JSONValue.read(path: dir + "/tokenizer.json").objectValue)
            let split = JSONValue.object(JSONObject([("type", .string("Split")), ("behavior", .string("Isolated")), ("invert", .bool(false)),
                                                     ("pattern", .object(JSONObject([("Regex", .string("(a|aa)+$"))])))]))
            t["pre_tokenizer"] = .object(JSONObject([("type", .string("Sequence")), ("pretokenizers", .array([split, t["pre_tokenizer"] ?? .null]))]))
            try JSONValue.object(t).write(to: dir + "/tokenizer.json")
            try Data((#"{"text": "\#(String(repeating: "a", count: 60))!"}"# + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/hostile.jsonl"))
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let message = "tokenizer.json: regex pattern \"(a|aa)+$\" needed more than 10000000 backtracking steps on a text of 61 characters"
        assertRefused(try CLI.run(["tokenize", "--model", dir, "--text", String(repeating: "a", count: 60) + "!"], timeout: 60), message)
        assertRefused(try CLI.run(["eval", "--model", dir, "--data", dir + "/hostile.jsonl"], timeout: 60), message)
        let fine = try CLI.run(["tokenize", "--model", dir, "--text", "Hello aa world"], timeout: 60)
        XCTAssertEqual(fine.status, 0, fine.stderr)
    }

    /// A NaN or infinity in the weights (a corrupt file, a diverged run) is refused by every command that
    /// loads the folder, naming the tensor, before any loss or token is computed from it; so is one in a
    /// LoRA adapter.
    func testNonFiniteWeightsAreRefusedByEveryCommandNamingTheTensor() throws {
        let tensor = "model.layers.0.mlp.gate_proj.weight"
        func poisoned(_ file: String, _ name: String, _ value: Float, into dir: String) throws {
            let st = try SafeTensorsFile(path: file)
            var w = SafeTensorsWriter()
            for n in st.names {
                var v = try st.floats(n)
                if n == name { v[3] = value }
                try w.add(n, dtype: .f32, shape: st.info(n)!.shape, source: .floats(v))
            }
            try w.write(to: dir)
        }
        for bad in [Float.nan, .infinity] {
            let dir = try modelCopy("nonfinite")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try poisoned(model + "/model.safetensors", tensor, bad, into: dir + "/model.safetensors")
            let message = "tensor '\(tensor)' holds \(bad) at element 3; weights must be finite numbers"
            assertRefused(try CLI.run(["eval", "--model", dir, "--data", dir + "/eval.jsonl"], timeout: 120), message)
            assertRefused(try CLI.run(["generate", "--model", dir, "--prompt", "Hi", "--max-new-tokens", "2"], timeout: 120), message)
            assertRefused(try CLI.run(["export", dir, dir + "-out"], timeout: 120), message)
        }
        let adapter = try CLI.scratch("nonfinite-adapter")
        defer { try? FileManager.default.removeItem(atPath: adapter) }
        let source = CLI.fixtures + "/lora/smollm_chat/adapter"
        for f in try FileManager.default.contentsOfDirectory(atPath: source) where f != "adapter_model.safetensors" {
            try FileManager.default.copyItem(atPath: source + "/" + f, toPath: adapter + "/" + f)
        }
        let name = try XCTUnwrap(SafeTensorsFile(path: source + "/adapter_model.safetensors").names.sorted().first)
        try poisoned(source + "/adapter_model.safetensors", name, .nan, into: adapter + "/adapter_model.safetensors")
        assertRefused(try CLI.run(["eval", "--model", model, "--adapter", adapter, "--data", model + "/eval.jsonl"], timeout: 120),
                      "tensor '\(name)' holds nan at element 3")
    }

    func testHugeGenerationLengthsAreRefused() throws {
        for n in ["9223372036854775000", "100000000000"] {
            assertRefused(try CLI.run(["generate", "--model", model, "--prompt", "Hi", "--max-new-tokens", n], timeout: 120),
                          "--max-new-tokens must be at most 16777216, got \(n)")
        }
    }

    func testEndlessStandardInputIsRefused() throws {
        assertRefused(try CLI.run(["tokenize", "--model", model], stdinPath: "/dev/zero", timeout: 300), "<stdin>: more than 268435456 bytes")
        assertRefused(try CLI.run(["tokenize", "--model", model, "--jsonl"], stdinPath: "/dev/zero", timeout: 300), "<stdin>:1: line is longer than 268435456 bytes")
    }

    func testNamedPipesAndFoldersWhereAFileBelongsAreRefusedWithoutBlocking() throws {
        for file in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"] {
            let dir = try modelCopy("fifo") { dir in
                try FileManager.default.removeItem(atPath: dir + "/" + file)
                XCTAssertEqual(mkfifo(dir + "/" + file, 0o644), 0)
            }
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let expected = "\(dir)/\(file)"
            for args in [["inspect", dir], ["eval", "--model", dir, "--data", dir + "/eval.jsonl"]] where !(args[0] == "inspect" && file.hasPrefix("tokenizer")) {
                let r = try CLI.run(args, timeout: 60)
                assertRefused(r, expected)
                XCTAssertTrue(r.stderr.contains("a named pipe (FIFO), expected a regular file"), "\(args[0]) \(file): \(r.stderr)")
            }
        }
        let folder = try modelCopy("dirconfig") { dir in
            try FileManager.default.removeItem(atPath: dir + "/config.json")
            try FileManager.default.createDirectory(atPath: dir + "/config.json", withIntermediateDirectories: false)
        }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        assertRefused(try CLI.run(["eval", "--model", folder, "--data", folder + "/eval.jsonl"], timeout: 60), "config.json: cannot read: a folder, expected a file")
    }

    func testSymlinkLoopsAndTruncatedJSONSayWhatIsWrong() throws {
        let loop = try modelCopy("symlinkloop") { dir in
            try FileManager.default.removeItem(atPath: dir + "/config.json")
            try FileManager.default.createSymbolicLink(atPath: dir + "/config.json", withDestinationPath: dir + "/config.json")
        }
        defer { try? FileManager.default.removeItem(atPath: loop) }
        assertRefused(try CLI.run(["eval", "--model", loop, "--data", loop + "/eval.jsonl"], timeout: 60), "config.json: cannot read: a loop of symbolic links")
        let truncated = try modelCopy("truncated") { dir in
            let text = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
            try String(text.prefix(40)).write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: truncated) }
        let r = try CLI.run(["eval", "--model", truncated, "--data", truncated + "/eval.jsonl"], timeout: 60)
        assertRefused(r, "config.json: invalid JSON: the document ends before it is complete (truncated?) at line 3")
        XCTAssertFalse(r.stderr.contains("continue"), r.stderr)
    }

    func testSwitchesWithAValueMeanWhatTheySay() throws {
        let args = ["generate", "--model", model, "--prompt", "Hi", "--max-new-tokens", "4"]
        let chat = try CLI.run(args + ["--chat"], timeout: 120), plain = try CLI.run(args, timeout: 120)
        XCTAssertNotEqual(chat.stdout, plain.stdout, "the fixture must tell chat from plain")
        XCTAssertEqual(try CLI.run(args + ["--chat=yes"], timeout: 120).stdout, chat.stdout)
        XCTAssertEqual(try CLI.run(args + ["--chat=true"], timeout: 120).stdout, chat.stdout)
        XCTAssertEqual(try CLI.run(args + ["--chat=false"], timeout: 120).stdout, plain.stdout)
        assertRefused(try CLI.run(args + ["--chat=maybe"], timeout: 120), "--chat is a switch: write --chat, or --chat=true / --chat=false; got 'maybe'")
    }

    func testIntegersBeyondInt64AreNotShownAsInt64Max() throws {
        let dir = try modelCopy("hugeint") { dir in
            let text = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
            try text.replacingOccurrences(of: "\"vocab_size\": 900", with: "\"vocab_size\": 99999999999999999999")
                .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["inspect", dir], timeout: 60)
        assertRefused(r, "config.json: vocab_size: expected an integer")
        XCTAssertFalse(r.stderr.contains("9223372036854775807"), r.stderr)
    }

    func testExportNeverDeletesFilesItDidNotWrite() throws {
        let out = try CLI.scratch("exportout")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try Data("mine".utf8).write(to: URL(fileURLWithPath: out + "/notes.txt"))
        assertRefused(try CLI.run(["export", model, out], timeout: 120), "\(out): already holds files an export does not write (notes.txt)")
        XCTAssertEqual(try String(contentsOfFile: out + "/notes.txt", encoding: .utf8), "mine")
        // An empty folder, and then the earlier export in it, may be written over.
        try FileManager.default.removeItem(atPath: out + "/notes.txt")
        for _ in 0..<2 {
            let r = try CLI.run(["export", model, out], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        // Onto its own source (also through a symlink): refused, the source untouched.
        let before = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        assertRefused(try CLI.run(["export", out, out], timeout: 120), "\(out): is the folder being exported")
        let link = out + "-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: out)
        defer { try? FileManager.default.removeItem(atPath: link) }
        assertRefused(try CLI.run(["export", link, out], timeout: 120), "is the folder being exported")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), before)
        // A file where the folder would go.
        let file = out + "/config.json"
        assertRefused(try CLI.run(["export", model, file], timeout: 120), "\(file): exists and is not a folder")
        // Below a file: a plain sentence, not a Foundation error dump.
        let below = try CLI.run(["export", model, file + "/x/y"], timeout: 120)
        assertRefused(below, "cannot create the folder '\(file)/x': '\(file)' is a file")
        XCTAssertFalse(below.stderr.contains("NSCocoaErrorDomain"), below.stderr)
    }
}
