import Foundation
import XCTest

/// Generated malformed inputs (seeded, so every run tries the same cases) through the commands that read
/// them. Each case has a rule saying whether the mutated input is still valid; an invalid one must end
/// with exit 1 and a message (`CLI.Result.isCleanFailure`) — never a signal, a timeout or exit 0.
/// Every run has a 10 s timeout; the runner reads both pipes to their end, so a crash handler (the Swift
/// backtracer) that kept a pipe open past the process would show here as a timeout too.
final class FuzzTests: XCTestCase {
    let model = CLI.fixtures + "/models/smollm_chat"

    /// A linear congruential generator (Knuth's MMIX constants): deterministic, no clock.
    struct LCG {
        var state: UInt64
        mutating func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
    }

    /// Tally of one generator's cases; failures carry the case name and what happened.
    final class Tally {
        var tried = 0, refused = 0, accepted = 0
        var failures: [String] = []
        func check(_ name: String, _ r: CLI.Result, valid: Bool) {
            tried += 1
            if r.timedOut { failures.append("\(name): timed out"); return }
            if valid {
                if r.status == 0 { accepted += 1 } else { failures.append("\(name): valid input refused (\(r.status)): \(r.stderr.prefix(300))") }
            } else if r.isCleanFailure {
                refused += 1
            } else {
                failures.append("\(name): exit \(r.status), stderr: \(r.stderr.prefix(300))")
            }
        }
    }

    func report(_ what: String, _ t: Tally, file: StaticString = #filePath, line: UInt = #line) {
        print("fuzz \(what): \(t.tried) cases, \(t.refused) clean errors, \(t.accepted) valid and accepted, \(t.failures.count) failures")
        XCTAssertTrue(t.failures.isEmpty, "\(what):\n" + t.failures.prefix(20).joined(separator: "\n"), file: file, line: line)
    }

    /// A scratch copy of the fixture model whose `file` is replaced by `bytes`.
    func withModel(replacing file: String, by bytes: Data, _ body: (String) throws -> Void) throws {
        let dir = try CLI.scratch("fuzz-model")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in try FileManager.default.contentsOfDirectory(atPath: model) where f != file {
            try FileManager.default.copyItem(atPath: model + "/" + f, toPath: dir + "/" + f)
        }
        try bytes.write(to: URL(fileURLWithPath: dir + "/" + file))
        try body(dir)
    }

    func generate(_ dir: String, chat: Bool = false) throws -> CLI.Result {
        try CLI.run(["generate", "--model", dir, "--prompt", "Hi", "--max-new-tokens", "1"] + (chat ? ["--chat"] : []), timeout: 10)
    }

    // MARK: safetensors

    /// The tensor entries of a safetensors header (without `__metadata__`), or nil when it is not a JSON
    /// object: the oracle for whether a mutated header still describes the same tensors.
    static func tensorEntries(_ header: Data) -> NSDictionary? {
        guard let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else { return nil }
        return object.filter { $0.key != "__metadata__" } as NSDictionary
    }

    /// Rules: a cut file, a wrong header length, a dimension or offset changed is always invalid; a flipped
    /// header byte is valid only when the header still parses to the same tensor entries (a change inside
    /// `__metadata__` or to insignificant whitespace), judged by Foundation's JSON parser.
    func testMalformedSafeTensors() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: model + "/model.safetensors"))
        let headerLength = Int(original.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = original.subdata(in: 8..<8 + headerLength)
        let entries = try XCTUnwrap(Self.tensorEntries(header))
        var rng = LCG(state: 15)
        let t = Tally()
        func run(_ name: String, _ bytes: Data, valid: Bool) throws {
            guard bytes != original else { return }
            try withModel(replacing: "model.safetensors", by: bytes) { t.check("safetensors \(name)", try generate($0), valid: valid) }
        }
        for i in 0..<40 {
            let cut = i < 5 ? [0, 3, 8, 9, 8 + headerLength][i] : rng.below(original.count)
            try run("cut at \(cut)", original.prefix(cut), valid: false)
        }
        for i in 0..<60 {
            var bytes = original
            let at = 8 + rng.below(headerLength), bit = UInt8(1) << UInt8(rng.below(8))
            bytes[at] ^= bit
            let same = Self.tensorEntries(bytes.subdata(in: 8..<8 + headerLength)).map { $0.isEqual(entries) } ?? false
            try run("flip \(i) at \(at)", bytes, valid: same)
        }
        for length in [0, 1, 2, headerLength - 1, headerLength + 1, original.count, Int(Int32.max), Int(UInt32.max) + 7] {
            var bytes = original
            withUnsafeBytes(of: UInt64(length).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
            try run("header length \(length)", bytes, valid: false)
        }
        var bytes = original
        bytes.replaceSubrange(0..<8, with: [UInt8](repeating: 0xff, count: 8))
        try run("header length 2^64-1", bytes, valid: false)
        let text = String(decoding: header, as: UTF8.self)
        let replacements: [(String, String)] = [
            ("[900,64]", "[900,6400000000000]"), ("[900,64]", "[4611686018427387904,4]"), ("[900,64]", "[-900,64]"),
            ("[900,64]", "[900.5,64]"), ("[900,64]", "\"900\""), ("[0,230400]", "[0,230401]"), ("[0,230400]", "[0,99999999999]"),
            ("[0,230400]", "[230400,0]"), ("[0,230400]", "[-4,230400]"), ("[0,230400]", "[0]"), ("[230400,230656]", "[0,256]"),
            ("\"F32\"", "\"F99\""), ("\"F32\"", "\"F16\""), ("\"F32\"", "7"), ("\"dtype\"", "\"dtypo\""), ("\"shape\"", "\"shap\""),
            ("{\"dtype\"", "[{\"dtype\""), ("\"data_offsets\"", "\"data_offsetz\""),
        ]
        for (from, to) in replacements {
            guard let range = text.range(of: from) else { XCTFail("fixture header has no \(from)"); continue }
            var h = Data(text.replacingCharacters(in: range, with: to).utf8)
            // Keep the header the same length so only the named change differs (spaces are JSON padding).
            if h.count < headerLength { h.append(contentsOf: [UInt8](repeating: 0x20, count: headerLength - h.count)) }
            var b = Data()
            withUnsafeBytes(of: UInt64(h.count).littleEndian) { b.append(contentsOf: $0) }
            b.append(h)
            b.append(original.suffix(from: 8 + headerLength))
            try run("\(from) -> \(to)", b, valid: false)
        }
        report("safetensors", t)
    }

    // MARK: GGUF

    /// Rules: every mutation here is invalid — a cut before the last tensor's data ends, a wrong magic or
    /// version, huge counts or string lengths, and a tensor's dims, type or offset out of range.
    func testMalformedGGUF() throws {
        let path = CLI.fixtures + "/gguf/llama_bpe.gguf"
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        let scratch = try CLI.scratch("fuzz-gguf")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var rng = LCG(state: 6)
        let t = Tally()
        func run(_ name: String, _ bytes: Data) throws {
            guard bytes != original else { return }
            let file = scratch + "/in.gguf"
            try bytes.write(to: URL(fileURLWithPath: file))
            try? FileManager.default.removeItem(atPath: scratch + "/out")
            t.check("gguf \(name)", try CLI.run(["convert", file, scratch + "/out"], timeout: 10), valid: false)
        }
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout Data) {
            withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0) }
        }
        for i in 0..<40 {
            let cut = i < 4 ? [0, 4, 8, 24][i] : rng.below(original.count - 1)
            try run("cut at \(cut)", original.prefix(cut))
        }
        var b = original; b[0] ^= 0x20; try run("magic", b)
        for version in [UInt32(0), 1, 4, 0xffff_ffff] { b = original; put(version, at: 4, in: &b); try run("version \(version)", b) }
        for count in [UInt64(21), 1 << 40, UInt64.max] { b = original; put(count, at: 8, in: &b); try run("tensor_count \(count)", b) }
        for count in [UInt64(1000), 1 << 40, UInt64.max] { b = original; put(count, at: 16, in: &b); try run("kv_count \(count)", b) }
        for length in [UInt64(0), 1 << 33, UInt64.max] { b = original; put(length, at: 24, in: &b); try run("first key length \(length)", b) }
        // token_embd.weight's tensor info: name, u32 n_dims, n_dims u64 dims, u32 type, u64 offset.
        let name = try XCTUnwrap(original.range(of: Data("token_embd.weight".utf8)))
        let dims = name.upperBound + 4, type = dims + 16, offset = type + 4
        for n in [UInt32(0), 3, 5, 1 << 20] { b = original; put(n, at: name.upperBound, in: &b); try run("n_dims \(n)", b) }
        for d in [UInt64(0), 33, 1 << 40, 1 << 62, UInt64.max] { b = original; put(d, at: dims, in: &b); try run("dim \(d)", b) }
        for ty in [UInt32(4), 5, 99, 0xffff_ffff] { b = original; put(ty, at: type, in: &b); try run("type \(ty)", b) }
        for o in [UInt64(1), 32, 1 << 40, UInt64.max - 31] { b = original; put(o, at: offset, in: &b); try run("offset \(o)", b) }
        b = original; put(UInt64(1 << 40), at: name.lowerBound - 8, in: &b); try run("tensor name length", b)
        // The other families' files (fused Phi-3 tensors, Qwen3's head norms, Gemma's shifted norms), cut.
        for family in ["qwen3_bpe", "gemma3_spm", "phi3_spm"] {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: CLI.fixtures + "/gguf/\(family).gguf"))
            for _ in 0..<8 { let cut = 1 + rng.below(bytes.count - 2); try run("\(family) cut at \(cut)", bytes.prefix(cut)) }
        }
        report("gguf", t)
    }

    // MARK: config.json, tokenizer.json, chat template

    /// Rules: each dimension or number the model reads, set to a wrong type, zero, negative, fractional,
    /// huge or a non-finite literal, is invalid; a whole-file cut is invalid JSON.
    func testMalformedConfigs() throws {
        let text = try String(contentsOfFile: model + "/config.json", encoding: .utf8)
        let t = Tally()
        let integers = ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads",
                        "vocab_size", "max_position_embeddings", "head_dim"]
        let floats = ["rms_norm_eps", "rope_theta"]
        var cases: [(String, String)] = []
        for key in integers {
            for v in ["\"64\"", "[64]", "{}", "true", "0", "-2", "1.5", "1e30", "9223372036854775807", "99999999999999999999", "NaN"] { cases.append((key, v)) }
        }
        for key in floats { for v in ["\"1\"", "[]", "0", "-1", "NaN", "Infinity", "1e400", "-1e400"] { cases.append((key, v)) } }
        for (key, value) in cases {
            let pattern = try NSRegularExpression(pattern: "\"\(key)\": [^,\\n]+")
            let range = NSRange(text.startIndex..., in: text)
            XCTAssertEqual(pattern.numberOfMatches(in: text, range: range), 1, key)
            let mutated = pattern.stringByReplacingMatches(in: text, range: range, withTemplate: "\"\(key)\": \(value)")
            try withModel(replacing: "config.json", by: Data(mutated.utf8)) { t.check("config \(key)=\(value)", try generate($0), valid: false) }
        }
        var rng = LCG(state: 7)
        for _ in 0..<15 {
            let cut = rng.below(text.utf8.count - 2)
            try withModel(replacing: "config.json", by: Data(text.utf8.prefix(cut))) { t.check("config cut at \(cut)", try generate($0), valid: false) }
        }
        for wrong in ["[]", "null", "\"llama\"", "{\"model_type\": \"llama\"}", "{\"model_type\": \"nonesuch\"}"] {
            try withModel(replacing: "config.json", by: Data(wrong.utf8)) { t.check("config \(wrong)", try generate($0), valid: false) }
        }
        report("config.json", t)
    }

    /// Rules: a cut file, the model's parts (and its type) replaced by wrong types, vocabulary ids that are
    /// negative or not below the model's vocab_size, and merges naming unknown tokens are all invalid.
    func testMalformedTokenizers() throws {
        let text = try String(contentsOfFile: model + "/tokenizer.json", encoding: .utf8)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let t = Tally()
        func run(_ name: String, _ bytes: Data) throws {
            try withModel(replacing: "tokenizer.json", by: bytes) {
                t.check("tokenizer \(name)", try CLI.run(["tokenize", "--model", $0, "--text", "Hello world"], timeout: 10), valid: false)
            }
        }
        var rng = LCG(state: 8)
        for _ in 0..<25 { let cut = rng.below(text.utf8.count - 2); try run("cut at \(cut)", Data(text.utf8.prefix(cut))) }
        func mutated(_ edit: (inout [String: Any]) -> Void) throws -> Data {
            var o = object; edit(&o); return try JSONSerialization.data(withJSONObject: o)
        }
        let wrong: [Any] = ["x", 3, [1, 2], NSNull()]
        for (i, v) in wrong.enumerated() {
            try run("model \(i)", try mutated { $0["model"] = v })
            try run("added_tokens \(i)", try mutated { $0["added_tokens"] = v is NSNull ? "x" : v })
            for key in ["vocab", "merges"] {
                try run("model.\(key) \(i)", try mutated { o in var m = o["model"] as! [String: Any]; m[key] = v is NSNull ? ["a": "b"] : v; o["model"] = m })
            }
            try run("pre_tokenizer \(i)", try mutated { $0["pre_tokenizer"] = v is NSNull ? ["type": "Nonesuch"] : v })
        }
        try run("model.type not a string", try mutated { o in var m = o["model"] as! [String: Any]; m["type"] = 3; o["model"] = m })
        // 900 is the fixture model's vocab_size: ids at or past it have no embedding row.
        for id in [-1, Int(Int32.max) + 1, 900, 905] {
            try run("vocab id \(id)", try mutated { o in
                var m = o["model"] as! [String: Any]; var vocab = m["vocab"] as! [String: Any]; vocab["Hello"] = id; m["vocab"] = vocab; o["model"] = m
            })
        }
        try run("merge of unknown tokens", try mutated { o in
            var m = o["model"] as! [String: Any]; m["merges"] = ["zzqx qqzx"]; o["model"] = m
        })
        report("tokenizer.json", t)
    }

    /// Rules: a template cut inside a tag, an unclosed or mismatched block, an unknown tag or filter,
    /// and nesting past the parser's depth limit are invalid.
    func testMalformedChatTemplates() throws {
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/tokenizer_config.json"))) as? [String: Any])
        let template = try XCTUnwrap(config["chat_template"] as? String)
        var templates: [String] = []
        // Cuts inside each tag: after its opening and before its closing delimiter.
        var search = template.startIndex
        while let open = template.range(of: "{", range: search..<template.endIndex) {
            let next = template.index(after: open.lowerBound)
            if next < template.endIndex, "{%".contains(template[next]) { templates.append(String(template[...next])) }
            search = open.upperBound
        }
        templates += ["{% if true %}x", "{% for m in messages %}", "{% if x %}{% endfor %}", "{% endif %}", "{{ messages",
                      "{% nonesuch %}", "{{ messages | nonesuch_filter }}", "{{ 'a' + }}", "{% for %}{% endfor %}", "{{ ) }}",
                      "{% set %}", "{% macro %}", "{{ messages[ }}", "{% raw %}x",
                      String(repeating: "{% if true %}", count: 5000) + String(repeating: "{% endif %}", count: 5000),
                      "{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}",
                      "{{ " + String(repeating: "[", count: 100_000) + " }}"]
        let t = Tally()
        for (i, tpl) in templates.enumerated() {
            var c = config; c["chat_template"] = tpl
            try withModel(replacing: "tokenizer_config.json", by: try JSONSerialization.data(withJSONObject: c)) {
                t.check("template \(i) \(tpl.prefix(40))", try generate($0, chat: true), valid: false)
            }
        }
        report("chat templates", t)
    }

    // MARK: recipes and data

    /// Rules: an unknown key, a value of the wrong type or out of range, broken YAML syntax, and nesting
    /// past the parser's depth limit are invalid (the unmutated recipe is checked to pass first).
    func testMalformedRecipes() throws {
        let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
        let recipe = """
        model: {path: \(model)}
        data:
          train: {path: \(root)/Recipes/data/quickstart_chat.jsonl, format: chat}
          max_seq_len: 64
        training: {max_steps: 4, micro_batch_size: 2, gradient_accumulation_steps: 2, learning_rate: 3.0e-3}
        optimizer: {type: adamw, weight_decay: 0.1}
        scheduler: {type: linear, warmup_steps: 1}
        engine: {zero_stage: 2}
        output: {dir: /nonexistent-fuzz-out, save_steps: 2}
        seed: 3
        """
        let dir = try CLI.scratch("fuzz-yaml")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = Tally()
        func run(_ name: String, _ text: String, valid: Bool = false) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/r.yaml"))
            t.check("recipe \(name)", try CLI.run(["validate", dir + "/r.yaml"], timeout: 10), valid: valid)
        }
        try run("unmutated", recipe, valid: true)
        let values = ["max_steps: 4", "micro_batch_size: 2", "learning_rate: 3.0e-3", "zero_stage: 2", "max_seq_len: 64",
                      "weight_decay: 0.1", "warmup_steps: 1", "save_steps: 2", "seed: 3", "type: adamw", "type: linear", "format: chat"]
        let wrong = ["abc", "-1", "1e400", ".nan", "[1]", "{a: 1}", "99999999999999999999", "''", "---"]
        for value in values {
            let key = String(value.split(separator: ":")[0])
            // A huge but finite float and a negative seed are valid values, so those two are not mutations.
            for w in wrong where !(["learning_rate", "weight_decay"].contains(key) && w == "99999999999999999999") && !(key == "seed" && w == "-1") {
                try run("\(key)=\(w)", recipe.replacingOccurrences(of: value, with: "\(key): \(w)"))
            }
            try run("\(key) misspelt", recipe.replacingOccurrences(of: value, with: value.replacingOccurrences(of: key, with: key + "x")))
        }
        var rng = LCG(state: 9)
        let lines = recipe.split(separator: "\n", omittingEmptySubsequences: false)
        for breakage in ["{", "[", "\"", "'", ": :", "&a", "*nope"] {
            var l = lines; let i = rng.below(l.count); l[i] = l[i] + " " + breakage
            try run("line \(i) + \(breakage)", l.joined(separator: "\n"))
        }
        try run("deep flow", "model: " + String(repeating: "[", count: 100_000))
        try run("deep block", (0..<3000).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n"))
        try run("alias bomb", "a: &a [x,x,x,x,x,x,x,x,x]\n" + (1..<30).map { "a\($0): &a\($0) [" + Array(repeating: "*a\($0 == 1 ? "" : String($0 - 1))", count: 9).joined(separator: ",") + "]" }.joined(separator: "\n"))
        report("recipes", t)
    }

    /// Rules: every mutation of the `lora:` section below is invalid (a wrong value of each key, keys PEFT
    /// does not have, modules this model lacks or ties); every mutated PEFT adapter folder (config keys
    /// of the wrong type, truncated or bit-flipped weights, another base's adapter) is invalid for
    /// `generate --adapter` and `export`. Keys are checked by `validate`; what needs the model by training.
    func testMalformedLoRA() throws {
        let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
        let dir = try CLI.scratch("fuzz-lora")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = Tally()
        func recipe(_ lora: String) -> String {
            """
            model: {path: \(model)}
            data: {train: {path: \(root)/Recipes/data/quickstart_chat.jsonl, format: chat}, max_seq_len: 32}
            training: {max_steps: 1, micro_batch_size: 1}
            output: {dir: \(dir)/out-\(lora.hashValue & 0xffff), overwrite: true}
            logging: {progress: none}
            lora: \(lora)
            """
        }
        func run(_ name: String, _ lora: String, train: Bool = false, valid: Bool = false) throws {
            try Data(recipe(lora).utf8).write(to: URL(fileURLWithPath: dir + "/r.yaml"))
            t.check("lora \(name)", try CLI.run(train ? [dir + "/r.yaml"] : ["validate", dir + "/r.yaml"], timeout: 20), valid: valid)
        }
        try run("unmutated", "{r: 4, alpha: 8, target_modules: all-linear}", valid: true)
        for (key, wrongs) in [("r", ["0", "-1", "abc", "1.5", "[4]", "99999999999999999999"]), ("alpha", ["0", "-8", ".nan", ".inf", "x"]),
                              ("dropout", ["1", "-0.1", "1.5", ".nan", "yes"]), ("rslora", ["3", "maybe"]),
                              ("target_modules", ["5", "[]", "[all-linear, q_proj]", "{a: 1}"]), ("modules_to_save", ["5", "{a: 1}"]),
                              ("base_dtype", ["f64", "int8", "1"]), ("init_adapter", ["/nonexistent", "\(dir)", "5"]), ("lora_alpha", ["8"])] {
            for w in wrongs { try run("\(key)=\(w)", "{r: 4, target_modules: all-linear, \(key): \(w)}") }
        }
        for (name, lora) in [("no projection", "{r: 4, target_modules: [nonesuch]}"), ("tied saved module", "{r: 4, modules_to_save: [embed_tokens]}"),
                             ("no saved module", "{r: 4, modules_to_save: [nonesuch]}"),
                             ("adapter disagreeing", "{init_adapter: \(CLI.fixtures)/lora/smollm_chat/adapter, r: 8}"),
                             ("adapter disagreeing targets", "{init_adapter: \(CLI.fixtures)/lora/smollm_chat/adapter, target_modules: [q_proj]}"),
                             ("another base's adapter", "{init_adapter: \(CLI.fixtures)/lora/qwen3_gqa/adapter}")] {
            try run(name, lora, train: true)
        }
        // Adapter folders: config values of the wrong type, truncated and bit-flipped weights.
        let source = CLI.fixtures + "/lora/smollm_chat/adapter"
        let config = try String(contentsOfFile: source + "/adapter_config.json", encoding: .utf8)
        let weights = try Data(contentsOf: URL(fileURLWithPath: source + "/adapter_model.safetensors"))
        var folders: [(String, String, Data)] = []
        for (key, wrong) in [("\"r\": 4", "\"r\": \"four\""), ("\"r\": 4", "\"r\": 0"), ("\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\""),
                             ("\"lora_alpha\": 8", "\"lora_alpha\": \"8\""), ("\"use_dora\": false", "\"use_dora\": true"),
                             ("\"bias\": \"none\"", "\"bias\": \"all\""), ("\"modules_to_save\": null", "\"modules_to_save\": 5"),
                             ("\"target_modules\": [", "\"target_modules\": 5, \"x\": [")] {
            XCTAssertTrue(config.contains(key), key)
            folders.append(("config \(wrong)", config.replacingOccurrences(of: key, with: wrong), weights))
        }
        folders.append(("config cut", String(config.prefix(config.count / 2)), weights))
        var rng = LCG(state: 21)
        for i in 0..<6 { folders.append(("weights cut \(i)", config, weights.prefix(rng.below(weights.count)))) }
        let header = Int(weights.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        for i in 0..<6 {
            var w = weights
            let at = 8 + rng.below(header)
            w[at] ^= UInt8(1 << rng.below(8))
            guard w != weights else { continue }
            folders.append(("header flip \(i) at \(at)", config, w))
        }
        for (n, (name, c, w)) in folders.enumerated() {
            let folder = dir + "/adapter\(n)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data(c.utf8).write(to: URL(fileURLWithPath: folder + "/adapter_config.json"))
            try w.write(to: URL(fileURLWithPath: folder + "/adapter_model.safetensors"))
            let r = try CLI.run(["generate", "--model", model, "--adapter", folder, "--prompt", "hi", "--max-new-tokens", "1"], timeout: 10)
            // A header flip may leave the JSON meaning the same (a space turned into another blank, say):
            // then the folder still loads, which is right; judged by Foundation's JSON parser.
            func parsed(_ d: Data) -> NSDictionary? {
                (try? JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + header)))) as? NSDictionary
            }
            let flipStillValid = name.hasPrefix("header flip") && parsed(w) != nil && parsed(w) == parsed(weights)
            t.check("adapter folder \(name)", r, valid: flipStillValid)
        }
        let e = try CLI.run(["export", CLI.fixtures + "/lora/qwen3_gqa/adapter", dir + "/merged", "--base", model], timeout: 10)
        t.check("export of another base's adapter", e, valid: false)
        XCTAssertTrue(e.stderr.contains("qwen3_gqa/adapter/adapter_config.json: modules_to_save"), e.stderr)
        report("LoRA sections and adapter folders", t)
    }

    /// Rules: a ds_config (every mapped section, a 2-stage pipeline) is invalid with any key misspelt, any
    /// value of the wrong type, a cut file, or pipeline settings DeepSpeed or this build refuse (the
    /// unmutated config is checked to pass first, through `validate --nproc 2`).
    func testMalformedDeepSpeedConfigs() throws {
        let root = URL(fileURLWithPath: CLI.fixtures).deletingLastPathComponent().deletingLastPathComponent().path
        let dir = try CLI.scratch("fuzz-dsconfig")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("""
        model: {path: \(model)}
        data:
          train: {path: \(root)/Recipes/data/quickstart_chat.jsonl, format: chat}
          max_seq_len: 64
        output: {dir: /nonexistent-fuzz-out}
        logging: {progress: none}
        """.utf8).write(to: URL(fileURLWithPath: dir + "/r.yaml"))
        let base = #"""
            {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 4, "gradient_clipping": 1.0,
             "optimizer": {"type": "AdamW", "params": {"lr": 3e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.01}},
             "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0, "warmup_max_lr": 3e-3, "warmup_num_steps": 10}},
             "bf16": {"enabled": true}, "zero_optimization": {"stage": 1},
             "pipeline": {"stages": 2, "partition": "uniform", "activation_checkpoint_interval": 0},
             "steps_per_print": "auto", "wall_clock_breakdown": false}
            """#
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(base.utf8)) as? [String: Any])
        let t = Tally()
        func run(_ name: String, _ bytes: Data, valid: Bool = false) throws {
            try bytes.write(to: URL(fileURLWithPath: dir + "/ds.json"))
            t.check("ds_config \(name)", try CLI.run(["validate", dir + "/r.yaml", "--nproc", "2", "--deepspeed", dir + "/ds.json"], timeout: 10), valid: valid)
        }
        func json(_ o: Any) throws -> Data { try JSONSerialization.data(withJSONObject: o) }
        try run("unmutated", Data(base.utf8), valid: true)
        // Every key path, depth first: misspelt, and its value replaced by a wrong type.
        func paths(_ o: [String: Any], _ prefix: [String] = []) -> [[String]] {
            o.keys.sorted().flatMap { k -> [[String]] in
                let here = prefix + [k]
                return [here] + ((o[k] as? [String: Any]).map { paths($0, here) } ?? [])
            }
        }
        func edit(_ o: [String: Any], _ path: [String], _ change: (inout [String: Any], String) -> Void) -> [String: Any] {
            var copy = o
            if path.count == 1 { change(&copy, path[0]); return copy }
            copy[path[0]] = edit(o[path[0]] as! [String: Any], Array(path.dropFirst()), change)
            return copy
        }
        for path in paths(object) {
            let name = path.joined(separator: ".")
            try run("\(name) misspelt", try json(edit(object, path) { o, k in o[k + "x"] = o.removeValue(forKey: k) }))
            let wrong: Any = path.last == "type" || path.last == "partition" ? 7 : "x"
            try run("\(name) = \(wrong)", try json(edit(object, path) { o, k in o[k] = wrong }))
        }
        for (name, pipeline) in [("stages 0", ["stages": 0]), ("stages -1", ["stages": -1]), ("stages 3 on 2 ranks", ["stages": 3]),
                                 ("partition type:", ["stages": 2, "partition": "type:transformer"]),
                                 ("partition misspelt", ["stages": 2, "partition": "paramters"]),
                                 ("checkpoint interval 2", ["stages": 2, "activation_checkpoint_interval": 2])] as [(String, [String: Any])] {
            var o = object; o["pipeline"] = pipeline
            try run("pipeline \(name)", try json(o))
        }
        var o = object; o["zero_optimization"] = ["stage": 2]
        try run("pipeline with ZeRO-2", try json(o))
        var rng = LCG(state: 11)
        for _ in 0..<10 { let cut = 1 + rng.below(base.utf8.count - 2); try run("cut at \(cut)", Data(base.utf8.prefix(cut))) }
        for top in ["[]", "3", "\"x\"", "null"] { try run("top level \(top)", Data(top.utf8)) }
        report("ds_config", t)
    }

    /// Rules: a data file with one line that is not JSON, not an object, lacks a string "text", or escapes
    /// a lone UTF-16 surrogate (not a character; serde_json refuses it too) is invalid.
    func testMalformedJSONLData() throws {
        let dir = try CLI.scratch("fuzz-jsonl")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = #"{"text": "The quick brown fox."}"#
        let bad = [#"{"text": "cut"#, #"{"txt": "x"}"#, #"{"text": 3}"#, #"{"text": null}"#, #"{"text": ["a"]}"#, "[]", "3", "\"text\"",
                   "{}", #"{"text": "a"} trailing"#, #"{"text": "a",}"#, "{'text': 'a'}", "NaN",
                   String(repeating: "[", count: 100_000), #"{"text": "\x"}"#, "\u{FEFF}{", "{\"text\": \"a\u{0}\"", "nul\u{0}",
                   #"{"text": "lone \ud800 high"}"#, #"{"text": "lone \udc00 low"}"#, #"{"text": "reversed \udc00\ud800"}"#]
        let t = Tally()
        var rng = LCG(state: 10)
        for (i, line) in bad.enumerated() {
            for position in [0, 1 + rng.below(3)] {
                var lines = [good, good, good, good]
                lines.insert(line, at: position)
                let file = dir + "/d.jsonl"
                try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: file))
                t.check("jsonl \(i) at line \(position + 1)", try CLI.run(["eval", "--model", model, "--data", file], timeout: 10), valid: false)
            }
        }
        report("jsonl", t)
    }
}
