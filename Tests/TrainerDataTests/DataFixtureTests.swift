import Foundation
import Formats
import Tokenizers
import XCTest
@testable import Trainer

/// Shared locations and helpers for the data tests.
enum DataFixtures {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let dir = repo.appendingPathComponent("Tests/Fixtures/data")
    static func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer.load(directory: repo.appendingPathComponent("Tokenizers/\(name)").path)
    }

    /// A scratch file with `text`, removed when the test ends.
    static func scratch(_ test: XCTestCase, _ text: String, name: String = "data.jsonl") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// Ids and labels of every format against transformers (Scripts/reference/gen_data.py): exact equality.
final class DataFixtureTests: XCTestCase {
    struct Expected { var inputIds: [Int32]; var labels: [Int32] }

    func expected(_ tokenizer: String, _ format: String) throws -> [Expected] {
        let json = try JSONValue.read(path: DataFixtures.path("expected.json"))
        let rows = try XCTUnwrap(json[tokenizer]?[format]?.arrayValue, "\(tokenizer)/\(format) missing from expected.json")
        return rows.map { r in
            Expected(inputIds: r["input_ids"]!.arrayValue!.map { Int32($0.intValue!) },
                     labels: r["labels"]!.arrayValue!.map { Int32($0.intValue!) })
        }
    }

    func tokenize(_ tokenizer: Tokenizer, _ format: DataOptions.Format, file: String? = nil, trainOnPrompt: Bool = false) throws -> [TokenizedExample] {
        let t = try ExampleTokenizer(tokenizer: tokenizer, trainOnPrompt: trainOnPrompt)
        return try DataPipeline.tokenizeFile(path: DataFixtures.path(file ?? "\(format.rawValue).jsonl"), format: format, member: nil, with: t)
    }

    /// 5 tokenizers × their formats (3–5 each), 3–5 examples per file: ids and labels equal.
    func testEveryFormatMatchesTransformers() throws {
        let cases: [(String, [DataOptions.Format])] = [
            ("qwen2", [.text, .prompt_completion, .alpaca, .chat, .sharegpt]),
            ("smollm", [.text, .prompt_completion, .alpaca, .chat, .sharegpt]),
            ("llama3", [.text, .prompt_completion, .alpaca, .chat, .sharegpt]),
            ("llama2-metaspace", [.text, .prompt_completion, .alpaca]),
            ("gpt2", [.text, .prompt_completion, .alpaca]),
        ]
        var compared = 0
        for (name, formats) in cases {
            let tokenizer = try DataFixtures.tokenizer(name)
            for format in formats {
                let got = try tokenize(tokenizer, format)
                let want = try expected(name, format.rawValue)
                XCTAssertEqual(got.count, want.count, "\(name)/\(format)")
                for (i, (g, w)) in zip(got, want).enumerated() {
                    XCTAssertEqual(g.inputIds, w.inputIds, "\(name)/\(format) example \(i) ids")
                    XCTAssertEqual(g.labels, w.labels, "\(name)/\(format) example \(i) labels")
                    XCTAssertEqual(g.location.line, i + 1)
                    compared += 1
                }
            }
        }
        XCTAssertEqual(compared, 3 * (5 + 4 + 4 + 4 + 3) + 2 * (5 + 4 + 4))
    }

    func testTrainOnPromptTrainsEveryToken() throws {
        let tokenizer = try DataFixtures.tokenizer("llama3")
        for format in [DataOptions.Format.prompt_completion, .alpaca, .chat] {
            let masked = try tokenize(tokenizer, format)
            let full = try tokenize(tokenizer, format, trainOnPrompt: true)
            for (m, f) in zip(masked, full) {
                XCTAssertEqual(m.inputIds, f.inputIds, "\(format): train_on_prompt must not change the ids")
                XCTAssertEqual(f.labels, f.inputIds, "\(format)")
                XCTAssertLessThanOrEqual(m.targetCount, f.targetCount, "\(format)")
            }
            // Equal only for the empty prompt, whose one masked token (BOS) is never a target anyway.
            XCTAssertLessThan(masked.reduce(0) { $0 + $1.targetCount }, full.reduce(0) { $0 + $1.targetCount }, "\(format)")
        }
    }

    /// Chat masks: every trained token lies in an assistant turn; what is trained decodes to the assistant
    /// contents plus end-of-turn markers, and system/user text never appears in it.
    func testChatMaskCoversOnlyAssistantText() throws {
        let tokenizer = try DataFixtures.tokenizer("qwen2")
        let records = try DataFileReader.readAll(path: DataFixtures.path("chat.jsonl"), format: .chat)
        let examples = try tokenize(tokenizer, .chat)
        for ((record, _), example) in zip(records, examples) {
            guard case .chat(let messages) = record else { return XCTFail("not chat") }
            let trained = example.labels.filter { $0 != ignoreLabel }.map(Int.init)
            let expected = messages.filter { $0.role == "assistant" }.map { $0.content + "<|im_end|>\n" }.joined()
            XCTAssertEqual(try tokenizer.decode(trained), expected)
        }
    }

    func testShareGPTEqualsTheSameChat() throws {
        let tokenizer = try DataFixtures.tokenizer("smollm")
        let chat = try tokenize(tokenizer, .chat)
        let share = try tokenize(tokenizer, .sharegpt)
        XCTAssertEqual(share.count, 3)
        for (a, b) in zip(chat, share) {
            XCTAssertEqual(a.inputIds, b.inputIds)
            XCTAssertEqual(a.labels, b.labels)
        }
    }

    func testAlpacaPrompts() throws {
        let records = try DataFileReader.readAll(path: DataFixtures.path("alpaca.jsonl"), format: .alpaca)
        guard case .promptCompletion(let empty, _) = records[0].0, case .promptCompletion(let with, let output) = records[1].0,
              case .promptCompletion(let absent, _) = records[3].0 else { return XCTFail("alpaca records") }
        XCTAssertFalse(empty.contains("### Input:"), "an empty input uses the no-input prompt")
        XCTAssertFalse(absent.contains("### Input:"))
        XCTAssertEqual(with, "Below is an instruction that describes a task, paired with an input that provides further context. "
            + "Write a response that appropriately completes the request.\n\n### Instruction:\nAdd the numbers.\n\n### Input:\n12 and 30\n\n### Response:\n")
        XCTAssertEqual(output, "42")
    }

    /// text.jsonl.gz and the two .jsonl members of text_parts.tar (a README member in between is skipped)
    /// give the same records as text.jsonl, with member names and per-member line numbers.
    func testCompressedAndArchivedFiles() throws {
        let plain = try DataFileReader.readAll(path: DataFixtures.path("text.jsonl"), format: .text)
        let gz = try DataFileReader.readAll(path: DataFixtures.path("text.jsonl.gz"), format: .text)
        XCTAssertEqual(plain.count, 5)
        XCTAssertEqual(gz.map(\.0), plain.map(\.0))
        XCTAssertEqual(gz.map(\.1.line), [1, 2, 3, 4, 5])
        let tarPath = DataFixtures.path("text_parts.tar")
        let tar = try DataFileReader.readAll(path: tarPath, format: .text)
        XCTAssertEqual(tar.map(\.0), plain.map(\.0))
        XCTAssertEqual(tar.map(\.1.source), Array(repeating: tarPath + ":part1.jsonl", count: 3) + Array(repeating: tarPath + ":part2.jsonl", count: 2))
        XCTAssertEqual(tar.map(\.1.line), [1, 2, 3, 1, 2])
        let member = try DataFileReader.readAll(path: tarPath, format: .text, member: "part2.jsonl")
        XCTAssertEqual(member.map(\.0), Array(plain.map(\.0)[3...]))
        XCTAssertThrowsError(try DataFileReader.readAll(path: tarPath, format: .text, member: "nope.jsonl")) { e in
            XCTAssertTrue("\(e)".contains("no member 'nope.jsonl'"), "\(e)")
        }
    }

    /// The quickstart dataset (Recipes/data, from gen_quickstart_data.py) loads whole with the ChatML and
    /// Llama-3 templates, packs, and trains on assistant tokens only.
    func testQuickstartDatasetLoads() throws {
        let path = DataFixtures.repo.appendingPathComponent("Recipes/data/quickstart_chat.jsonl").path
        for name in ["smollm", "llama3"] {
            let options = DataOptions(train: .init(path: path, format: .chat), eval: .init(split: 0.05), maxSeqLen: 256, packing: true)
            let splits = try DataPipeline.load(options, tokenizer: try DataFixtures.tokenizer(name), seed: 42)
            XCTAssertEqual(splits.train.count + (splits.eval?.count ?? 0), 460, name)
            XCTAssertEqual(splits.eval?.count, 23, name)
            XCTAssertEqual(splits.train.droppedCount, 0)
            XCTAssertTrue(splits.train.examples.allSatisfy { $0.targetCount > 0 && $0.targetCount < $0.inputIds.count / 2 }, name)
            var loader = try DataLoader(dataset: splits.train, options: DataLoaderOptions(microBatchSize: 2, gradientAccumulationSteps: 2, packing: true))
            let step = loader.nextStep()
            XCTAssertTrue(step.microBatches.allSatisfy { $0.rowCount == 2 && $0.tokenCount <= 2 * 256 })
        }
    }

    /// The whole pipeline from DataOptions: eval split, truncation report.
    func testPipelineLoadsWithEvalSplit() throws {
        let tokenizer = try DataFixtures.tokenizer("qwen2")
        var options = DataOptions(train: .init(path: DataFixtures.path("text.jsonl"), format: .text), eval: .init(split: 0.4), maxSeqLen: 8)
        let a = try DataPipeline.load(options, tokenizer: tokenizer, seed: 7)
        XCTAssertEqual(a.train.count, 3)
        XCTAssertEqual(a.eval?.count, 2)
        XCTAssertTrue(a.train.examples.allSatisfy { $0.inputIds.count <= 8 })
        let lines = Set((a.train.examples + a.eval!.examples).map(\.location.line))
        XCTAssertEqual(lines, [1, 2, 3, 4, 5], "train and eval partition the file")
        let b = try DataPipeline.load(options, tokenizer: tokenizer, seed: 7)
        XCTAssertEqual(b.eval!.examples.map(\.location.line), a.eval!.examples.map(\.location.line), "same seed, same split")
        XCTAssertGreaterThan(a.train.truncatedCount + a.eval!.truncatedCount, 0)
        options.eval = .init(path: DataFixtures.path("prompt_completion.jsonl"), format: .prompt_completion)
        let c = try DataPipeline.load(options, tokenizer: tokenizer, seed: 7)
        XCTAssertEqual(c.train.count, 5)
        XCTAssertEqual(c.eval?.examples.first?.location.source, DataFixtures.path("prompt_completion.jsonl"))
    }
}
