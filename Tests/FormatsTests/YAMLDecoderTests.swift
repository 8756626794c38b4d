import XCTest
@testable import Formats

private enum Precision: String, Decodable, CaseIterable { case f32, bf16, fp16 }

private struct Model: Decodable, Equatable { var path: String; var dtype: Precision? }
private struct Training: Decodable, Equatable {
    var epochs: Int
    var learning_rate: Double
    var micro_batch_size: Int
    var max_grad_norm: Double?
}
private struct Lora: Decodable, Equatable { var r: Int; var alpha: Double; var target_modules: [String] }
private struct Recipe: Decodable, Equatable {
    var model: Model
    var training: Training
    var lora: Lora?
    var seed: Int
    var tags: [String: String]?
}

/// A type with a hand-written init that reads keys conditionally: its CaseIterable keys say
/// what is known.
private struct Scheduler: Decodable {
    enum CodingKeys: String, CodingKey, CaseIterable { case type, warmup_steps, min_lr }
    var type: String
    var warmup: Int
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        warmup = type == "constant" ? 0 : try c.decode(Int.self, forKey: .warmup_steps)
        if warmup < 0 {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.warmup_steps], debugDescription: "warmup_steps must be >= 0"))
        }
    }
}

private struct Free: Decodable, YAMLAllowsUnknownKeys { var name: String }
private struct HasFree: Decodable { var free: Free; var extra: JSONValue? }

final class YAMLDecoderTests: XCTestCase {
    private let good = """
    model: {path: /m, dtype: bf16}
    training:
      epochs: 2
      learning_rate: 2e-5
      micro_batch_size: 4
    lora: {r: 8, alpha: 16, target_modules: [q_proj, v_proj]}
    seed: 42
    """

    private func decode<T: Decodable>(_ t: T.Type, _ text: String) -> (T?, [String]) {
        let r = YAMLLoader.load(t, text: text, source: "r.yaml")
        return (r.value, r.problems.map(\.description))
    }

    func testDecodesAWellFormedRecipe() throws {
        let (value, problems) = decode(Recipe.self, good)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(value, Recipe(model: Model(path: "/m", dtype: .bf16),
                                     training: Training(epochs: 2, learning_rate: 2e-5, micro_batch_size: 4, max_grad_norm: nil),
                                     lora: Lora(r: 8, alpha: 16, target_modules: ["q_proj", "v_proj"]), seed: 42, tags: nil))
    }

    func testCollectsEveryProblemWithLineKeyPathExpectedAndFound() {
        let (value, problems) = decode(Recipe.self, """
        model: {path: 3, dtype: bf17}
        training:
          epochs: two
          lerning_rate: 1e-4
          micro_batch_size: 4
          max_grad_norm: [1]
        lora: {r: 8, alpha: 16, target_modules: q_proj}
        seeed: 1
        """)
        XCTAssertNil(value)
        XCTAssertEqual(problems, [
            "r.yaml:1:15: model.path: expected a string, found the integer 3",
            "r.yaml:1:25: model.dtype: expected one of 'f32', 'bf16', 'fp16', found the string 'bf17' (did you mean 'bf16'?)",
            "r.yaml:3:3: training.learning_rate: missing required key 'learning_rate' (in the mapping starting at line 3)",
            "r.yaml:3:11: training.epochs: expected an integer, found the string 'two'",
            "r.yaml:4:3: training.lerning_rate: unknown key 'lerning_rate' (did you mean 'learning_rate'?)",
            "r.yaml:6:18: training.max_grad_norm: expected a number, found a list of 1 item",
            "r.yaml:7:41: lora.target_modules: expected a list, found the string 'q_proj'",
            "r.yaml:1:1: seed: missing required key 'seed' (in the mapping starting at line 1)",
            "r.yaml:8:1: seeed: unknown key 'seeed' (did you mean 'seed'?)",
        ].sorted { lineOf($0) < lineOf($1) })
    }

    private func lineOf(_ s: String) -> (Int, Int) {
        let parts = s.split(separator: ":")
        return (Int(parts[1])!, Int(parts[2])!)
    }

    func testMissingNestedStructIsReportedOnceAndSiblingsStillChecked() {
        let (_, problems) = decode(Recipe.self, "training: {epochs: 1, learning_rate: 0.1, micro_batch_size: x}\nseed: 1\n")
        XCTAssertEqual(problems, [
            "r.yaml:1:1: model: missing required key 'model' (in the mapping starting at line 1)",
            "r.yaml:1:61: training.micro_batch_size: expected an integer, found the string 'x'",
        ])
    }

    func testNullForRequiredValue() {
        let (_, problems) = decode(Model.self, "path:\n")
        XCTAssertEqual(problems, ["r.yaml:1:6: path: expected a string, found null"])
    }

    func testIntegerRangesAndIntegralDoubles() {
        struct Ints: Decodable { var a: Int32; var b: UInt64; var c: Int; var d: Float }
        let (v, problems) = decode(Ints.self, "a: 3000000000\nb: -1\nc: 4.0\nd: 1\n")
        XCTAssertNil(v)
        XCTAssertEqual(problems, ["r.yaml:1:4: a: expected a 32-bit integer, found the integer 3000000000",
                                  "r.yaml:2:4: b: expected a non-negative integer, found the integer -1"])
        let (ok, none) = decode(Ints.self, "a: -5\nb: 7\nc: 4.0\nd: 1\n")
        XCTAssertEqual(none, [])
        XCTAssertEqual(ok?.c, 4)
        XCTAssertEqual(ok?.d, 1)
    }

    func testCaseIterableKeysCountAsKnownForHandWrittenInit() {
        let (v, problems) = decode(Scheduler.self, "type: constant\nmin_lr: 0.0\nwarmup_stepz: 3\n")
        XCTAssertNil(v)
        XCTAssertEqual(problems, ["r.yaml:3:1: warmup_stepz: unknown key 'warmup_stepz' (did you mean 'warmup_steps'?)"])
    }

    func testValidationErrorFromCustomInitNamesTheNode() {
        let (_, problems) = decode(Scheduler.self, "type: cosine\nwarmup_steps: -3\n")
        XCTAssertEqual(problems, ["r.yaml:2:15: warmup_steps: warmup_steps must be >= 0"])
    }

    func testArraysOfStructsReportIndexes() {
        struct Item: Decodable { var path: String; var weight: Double? }
        struct Data: Decodable { var train: [Item] }
        let (_, problems) = decode(Data.self, "train:\n  - {path: a}\n  - {path: b, weight: heavy, extra: 1}\n")
        XCTAssertEqual(problems, ["r.yaml:3:23: train[1].weight: expected a number, found the string 'heavy'",
                                  "r.yaml:3:30: train[1].extra: unknown key 'extra'"])
    }

    func testFreeFormSectionsAcceptAnyKeys() {
        let (v, problems) = decode(HasFree.self, "free: {name: x, whatever: 1}\nextra: {a: [1, {b: 2}]}\n")
        XCTAssertEqual(problems, [])
        XCTAssertEqual(v?.extra?["a"], .array([.int(1), .object(JSONObject([("b", .int(2))]))]))
    }

    func testDictionaryFieldConsumesAllKeys() {
        let text = good + "\ntags: {a: x, b: y}\n"
        let (v, problems) = decode(Recipe.self, text)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(v?.tags, ["a": "x", "b": "y"])
    }

    func testAllowUnknownKeysOption() {
        let node = try! YAMLParser.parse("path: /m\nfoo: 1\n", source: "r.yaml")
        XCTAssertThrowsError(try YAMLDecoder().decode(Model.self, from: node))
        XCTAssertEqual(try YAMLDecoder(allowUnknownKeys: true).decode(Model.self, from: node), Model(path: "/m", dtype: nil))
    }

    func testRootMustBeAMapping() {
        let (_, problems) = decode(Model.self, "- a\n- b\n")
        XCTAssertEqual(problems, ["r.yaml:1:1: expected a mapping, found a list of 2 items"])
    }

    func testJSONValuePathSharesTheJSONDecoder() throws {
        let node = try YAMLParser.parse(good, source: "r.yaml")
        let viaJSON = try JSONValueDecoder(source: "r.yaml").decode(Recipe.self, from: node.jsonValue)
        XCTAssertEqual(viaJSON.training.learning_rate, 2e-5)
    }

    func testNonIterableEnumErrorStopsOnlyItsBranch() {
        enum Plain: String, Decodable { case a, b }
        struct S: Decodable { var kind: Plain; var n: Int }
        struct Top: Decodable { var s: S; var other: Int }
        let (v, problems) = decode(Top.self, "s: {kind: c, n: 1, stray: 0}\nother: x\n")
        XCTAssertNil(v)
        // No stand-in exists for a non-CaseIterable enum, so decoding of its parents stops there
        // ('other' is not reached; CaseIterable enums do not have this limit). Mappings whose
        // decoding stopped early are not checked for unknown keys, so 'stray' is not claimed.
        XCTAssertEqual(problems, ["r.yaml:1:11: s.kind: Cannot initialize Plain from invalid String value c"])
    }

    func testLoadFromFileWithOverridesKeepsResolvedTree() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("yaml-load-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("recipe.yaml").path
        try Data((good + "\ntags: {run: \"lr-${training.learning_rate}\"}\n").utf8).write(to: URL(fileURLWithPath: path))
        let result = YAMLLoader.load(Recipe.self, path: path, overrides: ["training.learning_rate=1e-4", "lora.r=4"])
        let recipe = try result.get()
        XCTAssertEqual(recipe.training.learning_rate, 1e-4)
        XCTAssertEqual(recipe.lora?.r, 4)
        XCTAssertEqual(recipe.tags?["run"], "lr-0.0001")
        let saved = try YAMLEmitter.emit(try XCTUnwrap(result.node))
        XCTAssertEqual(try YAMLDecoder().decode(Recipe.self, from: YAMLParser.parse(saved, source: "saved.yaml")), recipe)
        let missing = YAMLLoader.load(Recipe.self, path: dir.appendingPathComponent("nope.yaml").path)
        XCTAssertEqual(missing.problems.map(\.description), ["\(dir.appendingPathComponent("nope.yaml").path): no such file"])
        XCTAssertThrowsError(try missing.get())
    }

    func testMissingSectionWithNestedRequiredStructsStillLetsSiblingsBeChecked() {
        struct Inner: Decodable { var x: Int }
        struct Middle: Decodable { var inner: Inner; var name: String }
        struct Top: Decodable { var middle: Middle; var n: Int; var m: Int }
        let (_, problems) = decode(Top.self, "n: one\nm: two\n")
        XCTAssertEqual(problems, ["r.yaml:1:1: middle: missing required key 'middle' (in the mapping starting at line 1)",
                                  "r.yaml:1:4: n: expected an integer, found the string 'one'",
                                  "r.yaml:2:4: m: expected an integer, found the string 'two'"])
    }
}
