import XCTest
@testable import Formats

final class YAMLOverrideTests: XCTestCase {
    private let text = """
    model: {path: /base}
    training:
      learning_rate: 2.0e-5
      epochs: 1
    lora:
    data:
      train:
        - {path: a.jsonl}
        - {path: b.jsonl}
    """

    func tree() throws -> YAMLNode { try YAMLParser.parse(text, source: "r.yaml") }

    func testOverridesSetTypedValuesAndCreateMappings() throws {
        var node = try tree()
        try node.applyOverrides([
            "training.learning_rate=3e-4",
            "lora.target_modules=[q_proj,v_proj]",
            "lora.r=8",
            "model.path=/x:y@z",
            "optimizer.betas=[0.9, 0.95]",
            "data.train.1.path=c.jsonl",
            "data.train.2={path: d.jsonl}",
            "training.epochs=",
            "+seed=7",
            "~model",
        ])
        XCTAssertEqual(node["training"]?["learning_rate"]?.value, .double(3e-4))
        XCTAssertEqual(node["lora"]?["target_modules"]?.jsonValue, .array([.string("q_proj"), .string("v_proj")]))
        XCTAssertEqual(node["lora"]?["r"]?.value, .int(8))
        XCTAssertNil(node["model"])
        XCTAssertEqual(node["optimizer"]?["betas"]?.jsonValue, .array([.double(0.9), .double(0.95)]))
        XCTAssertEqual(node.node(at: ["data", "train", "1", "path"])?.stringValue, "c.jsonl")
        XCTAssertEqual(node.node(at: ["data", "train", "2", "path"])?.stringValue, "d.jsonl")
        XCTAssertEqual(node["training"]?["epochs"]?.value, .null)
        XCTAssertEqual(node["seed"]?.value, .int(7))
        let mark = node["training"]?["learning_rate"]?.mark
        XCTAssertEqual(mark?.description, "command line override 'training.learning_rate=3e-4'")
        XCTAssertTrue(mark?.isOverride ?? false)
        XCTAssertEqual(node.node(at: ["lora", "target_modules", "0"])?.mark.isOverride, true)
    }

    func testPlainStringOverrideKeepsText() throws {
        var node = try tree()
        try node.applyOverride("model.path=/x")
        XCTAssertEqual(node["model"]?["path"]?.value, .string("/x"))
    }

    func testOverrideProblemsAreAllReportedAndGoodOnesApplied() throws {
        var node = try tree()
        XCTAssertThrowsError(try node.applyOverrides([
            "training.learning_rate.x=1", "data.train.5.path=z", "noequals", "lora.target_modules=[a, b", "a..b=1", "seed=3",
            "~nothere",
        ])) { error in
            let lines = (error as? YAMLError)?.problems.map(\.description) ?? []
            XCTAssertEqual(lines, [
                "command line override 'training.learning_rate.x=1': cannot set 'training.learning_rate.x': 'training.learning_rate' is the number 2e-05 (r.yaml:3:18), not a mapping",
                "command line override 'data.train.5.path=z': 'data.train' (r.yaml:8:5) is a list of 2 items; '5' is not an index in it",
                "command line override 'noequals': an override is written key.path=value",
                "command line override 'lora.target_modules=[a, b': the value is not valid YAML flow: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 1)",
                "command line override 'a..b=1': 'a..b' is not a key path (expected names separated by dots, like training.learning_rate)",
                "command line override '~nothere': cannot delete 'nothere': no such key",
            ])
        }
        XCTAssertEqual(node["seed"]?.intValue, 3)
    }

    func testOverrideErrorsReachTheDecoderWithTheirMark() {
        struct T: Decodable { var learning_rate: Double }
        struct R: Decodable { var training: T }
        let r = YAMLLoader.load(R.self, text: "training: {learning_rate: 1.0}\n", source: "r.yaml", overrides: ["training.learning_rate=fast"])
        XCTAssertEqual(r.problems.map(\.description),
                       ["command line override 'training.learning_rate=fast': training.learning_rate: expected a number, found the string 'fast'"])
    }

    func testWholeReferenceKeepsTypeAndEmbeddedInterpolates() throws {
        let node = try YAMLParser.parse("""
        training: {lr: 3.0e-4, steps: 10}
        scheduler: {peak: "${training.lr}", total: '${training.steps}'}
        output: {dir: "runs/lr-${training.lr}-s${ training.steps }", literal: "\\\\${not.a.ref}"}
        copy: ${training}
        chain: {a: "${chain.b}", b: "${training.steps}"}
        items: ["${data.0}"]
        data: [x, y]
        """, source: "r.yaml").resolvingReferences()
        XCTAssertEqual(node["scheduler"]?["peak"]?.value, .double(3e-4))
        XCTAssertEqual(node["scheduler"]?["total"]?.value, .int(10))
        XCTAssertEqual(node["output"]?["dir"]?.stringValue, "runs/lr-0.0003-s10")
        XCTAssertEqual(node["output"]?["literal"]?.stringValue, "${not.a.ref}")
        XCTAssertEqual(node["copy"]?.jsonValue, node["training"]?.jsonValue)
        XCTAssertEqual(node["chain"]?["a"]?.value, .int(10))
        XCTAssertEqual(node["items"]?.items?.first?.stringValue, "x")
        XCTAssertEqual(node["scheduler"]?["peak"]?.mark.line, 2)
    }

    func testReferenceErrorsNameKeyAndLine() throws {
        let node = try YAMLParser.parse("""
        model: {path: /m}
        a: ${model.pth}
        b: ${b}
        c: {d: "${c}"}
        e: "x${model}"
        f: ${g}
        g: ${f}
        h: "${oc.env:HOME}"
        i: "${unclosed"
        """, source: "r.yaml")
        XCTAssertThrowsError(try node.resolvingReferences()) { error in
            let lines = (error as? YAMLError)?.problems.map(\.description) ?? []
            XCTAssertEqual(lines, [
                "r.yaml:2:4: a: '${model.pth}' refers to 'model.pth', which does not exist under 'model' (r.yaml:1:8) (did you mean 'path'?)",
                "r.yaml:3:4: b: reference cycle: b -> b",
                "r.yaml:4:8: c.d: reference cycle: c.d -> c",
                "r.yaml:5:4: e: '${model}' is a mapping, which cannot be placed inside a string",
                "r.yaml:6:4: f: reference cycle: f -> g -> f",
                "r.yaml:7:4: g: reference cycle: g -> f -> g",
                "r.yaml:8:4: h: '${oc.env:HOME}': resolvers (like oc.env:) are not supported; only ${key.path} references",
                "r.yaml:9:4: i: unclosed '${' in '${unclosed'",
            ])
        }
    }

    func testReferencesSeeOverriddenValues() {
        struct R: Decodable { var lr: Double; var peak: Double }
        let r = YAMLLoader.load(R.self, text: "lr: 1.0\npeak: ${lr}\n", source: "r.yaml", overrides: ["lr=0.5"])
        XCTAssertEqual(r.problems, [])
        XCTAssertEqual(r.value?.peak, 0.5)
    }

    func testBrokenReferenceIsNotAlsoReportedAsTypeMismatch() {
        struct R: Decodable { var lr: Double; var peak: Double; var other: Int }
        let r = YAMLLoader.load(R.self, text: "lr: 1.0\npeak: ${lrr}\nother: x\n", source: "r.yaml")
        XCTAssertEqual(r.problems.map(\.description), [
            "r.yaml:2:7: peak: '${lrr}' refers to 'lrr', which does not exist at the top level (did you mean 'lr'?)",
            "r.yaml:3:8: other: expected an integer, found the string 'x'",
        ])
    }
}
