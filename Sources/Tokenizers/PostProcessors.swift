import Formats

/// Adds special tokens around encoded sequences (HF `post_processor`). Only ids matter here: offsets and
/// type ids are not exposed.
protocol PostProcessor: Sendable {
    func process(_ a: [Int], _ b: [Int]?, addSpecialTokens: Bool) -> [Int]
}

/// `TemplateProcessing`: `single`/`pair` are lists of `{"SpecialToken": {"id": name}}` and
/// `{"Sequence": {"id": "A"|"B"}}`; a special token may expand to several ids.
struct TemplateProcessor: PostProcessor {
    enum Piece { case sequenceA, sequenceB, special([Int]) }
    let single: [Piece]
    let pair: [Piece]

    init(_ r: ComponentReader) throws {
        var specials: [String: [Int]] = [:]
        if let s = r.child("special_tokens") {
            guard let object = s.value.objectValue else { throw r.fail("special_tokens", "an object") }
            for (name, v) in object {
                let tr = ComponentReader(file: r.file, path: s.path + "." + name, value: v)
                specials[name] = try tr.array("ids").map { guard let i = $0.intValue else { throw tr.fail("ids", "integers") }; return i }
            }
        }
        func parse(_ key: String) throws -> [Piece] {
            guard r.child(key) != nil else { return [] }
            return try r.elements(key).map { e in
                if let seq = e.child("Sequence") {
                    return try seq.string("id") == "B" ? .sequenceB : .sequenceA
                }
                if let sp = e.child("SpecialToken") {
                    let name = try sp.string("id")
                    guard let ids = specials[name] else {
                        throw TokenizerError.inconsistentModel(file: r.file, message: "\(sp.path): special token \(name.debugDescription) is not in special_tokens")
                    }
                    return .special(ids)
                }
                throw TokenizerError.invalidField(file: r.file, path: e.path, expected: "{\"Sequence\": ...} or {\"SpecialToken\": ...}", found: e.value.kindName)
            }
        }
        single = try parse("single")
        pair = try parse("pair")
    }

    func process(_ a: [Int], _ b: [Int]?, addSpecialTokens: Bool) -> [Int] {
        guard addSpecialTokens else { return a + (b ?? []) }
        var out: [Int] = []
        for p in (b == nil ? single : pair) {
            switch p {
            case .sequenceA: out += a
            case .sequenceB: out += b ?? []
            case .special(let ids): out += ids
            }
        }
        return out
    }
}

/// `BertProcessing` (`[CLS] A [SEP] B [SEP]`) and `RobertaProcessing` (`<s> A </s></s> B </s>`).
struct ClsSepProcessor: PostProcessor {
    let cls: Int, sep: Int
    let doubleSeparator: Bool

    init(_ r: ComponentReader, doubleSeparator: Bool) throws {
        func id(_ key: String) throws -> Int {
            guard let a = r.value[key]?.arrayValue, a.count == 2, let i = a[1].intValue else { throw r.fail(key, "[token, id]") }
            return i
        }
        cls = try id("cls")
        sep = try id("sep")
        self.doubleSeparator = doubleSeparator
    }

    func process(_ a: [Int], _ b: [Int]?, addSpecialTokens: Bool) -> [Int] {
        guard addSpecialTokens else { return a + (b ?? []) }
        var out = [cls] + a + [sep]
        if let b { out += (doubleSeparator ? [sep] : []) + b + [sep] }
        return out
    }
}

/// `ByteLevel` as a post-processor only trims offsets, which do not affect ids.
struct PassThroughProcessor: PostProcessor {
    func process(_ a: [Int], _ b: [Int]?, addSpecialTokens: Bool) -> [Int] { a + (b ?? []) }
}

struct SequenceProcessor: PostProcessor {
    let steps: [PostProcessor]

    func process(_ a: [Int], _ b: [Int]?, addSpecialTokens: Bool) -> [Int] {
        // Every processor but the ones that add tokens is a pass-through, so applying the token-adding ones in
        // order to the already-joined result reproduces HF for the single-sequence case.
        var ids = a
        var second = b
        for s in steps where !(s is PassThroughProcessor) {
            ids = s.process(ids, second, addSpecialTokens: addSpecialTokens)
            second = nil
        }
        return second.map { ids + $0 } ?? ids
    }
}

func makePostProcessor(_ r: ComponentReader) throws -> PostProcessor {
    switch try r.type(stage: "post-processor") {
    case "TemplateProcessing": return try TemplateProcessor(r)
    case "BertProcessing": return try ClsSepProcessor(r, doubleSeparator: false)
    case "RobertaProcessing": return try ClsSepProcessor(r, doubleSeparator: true)
    case "ByteLevel": return PassThroughProcessor()
    case "Sequence": return SequenceProcessor(steps: try r.elements("processors").map(makePostProcessor))
    default: try r.unknown("post-processor")
    }
}
