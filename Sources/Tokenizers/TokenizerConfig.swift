import Foundation
import Formats

/// The parts of `tokenizer_config.json` that change behaviour, in both the transformers-4 form (special tokens
/// as `{"content": ...}` objects, inline `chat_template`, possibly a list of named templates) and the
/// transformers-5 form (plain strings, template in a sibling `chat_template.jinja`, which wins).
public struct TokenizerConfig: Sendable {
    public var bosToken: String?
    public var eosToken: String?
    public var padToken: String?
    public var unkToken: String?
    /// As written in the file. transformers 5 does not act on these for fast tokenizers (the post-processor in
    /// tokenizer.json decides what encode adds), so neither does `Tokenizer`; they are exposed for callers.
    public var addBosToken: Bool?
    public var addEosToken: Bool?
    /// nil when absent or when it is transformers' "no limit" sentinel (a huge float).
    public var modelMaxLength: Int?
    /// transformers' `clean_up_tokenization_spaces` (default false); applied on decode except for BPE models.
    public var cleanUpTokenizationSpaces: Bool
    /// The default chat template (the sibling `chat_template.jinja`, else the inline one, else the one named
    /// "default" in a list).
    public var chatTemplate: String?
    /// Every named template when the file carries a list of `{"name", "template"}`.
    public var namedChatTemplates: [String: String]
    public var tokenizerClass: String?
    /// The whole file, for fields not modelled here.
    public var raw: JSONValue

    public init(json: JSONValue, source: String, chatTemplateFile: String? = nil) throws {
        guard json.objectValue != nil else {
            throw TokenizerError.malformed(file: source, message: "expected a JSON object at the top level, found \(json.kindName)")
        }
        let r = ComponentReader(file: source, path: "tokenizer_config", value: json)
        func token(_ key: String) throws -> String? {
            guard let v = json[key], !v.isNull else { return nil }
            if let s = v.stringValue { return s }
            if let c = v["content"]?.stringValue { return c }
            throw r.fail(key, "a string or an object with \"content\"")
        }
        bosToken = try token("bos_token")
        eosToken = try token("eos_token")
        padToken = try token("pad_token")
        unkToken = try token("unk_token")
        addBosToken = json["add_bos_token"]?.boolValue
        addEosToken = json["add_eos_token"]?.boolValue
        modelMaxLength = json["model_max_length"].flatMap { v in v.intValue.flatMap { $0 < (1 << 53) ? $0 : nil } }
        cleanUpTokenizationSpaces = try r.bool("clean_up_tokenization_spaces", default: false)
        tokenizerClass = try r.string("tokenizer_class", default: nil)
        raw = json
        namedChatTemplates = [:]
        chatTemplate = nil
        if let t = json["chat_template"], !t.isNull {
            if let s = t.stringValue {
                chatTemplate = s
            } else if let list = t.arrayValue {
                for (i, e) in list.enumerated() {
                    guard let name = e["name"]?.stringValue, let body = e["template"]?.stringValue else {
                        throw TokenizerError.invalidField(file: source, path: "chat_template[\(i)]", expected: "{\"name\": ..., \"template\": ...}", found: e.kindName)
                    }
                    namedChatTemplates[name] = body
                }
                chatTemplate = namedChatTemplates["default"]
            } else {
                throw r.fail("chat_template", "a string or a list of named templates")
            }
        }
        if let file = chatTemplateFile { chatTemplate = file }
    }

    /// Reads `tokenizer_config.json` and `chat_template.jinja` from `directory`; nil when neither exists.
    public static func load(directory: String) throws -> TokenizerConfig? {
        let dir = URL(fileURLWithPath: directory)
        let configPath = dir.appendingPathComponent("tokenizer_config.json").path
        let jinjaPath = dir.appendingPathComponent("chat_template.jinja").path
        var jinja: String? = nil
        if FileManager.default.fileExists(atPath: jinjaPath) {
            let data = try RegularFile.contents(jinjaPath) { TokenizerError.malformed(file: jinjaPath, message: "cannot read: \($0)") }
            guard let text = String(data: data, encoding: .utf8) else {
                throw TokenizerError.malformed(file: jinjaPath, message: "not UTF-8")
            }
            jinja = text
        }
        guard FileManager.default.fileExists(atPath: configPath) else {
            if jinja == nil { return nil }
            return try TokenizerConfig(json: .object(JSONObject()), source: configPath, chatTemplateFile: jinja)
        }
        return try TokenizerConfig(json: try readJSONFile(configPath), source: configPath, chatTemplateFile: jinja)
    }
}

/// Reads a JSON file; unreadable or invalid files become `TokenizerError.malformed` naming the file.
func readJSONFile(_ path: String) throws -> JSONValue {
    do {
        return try JSONValue.read(path: path)
    } catch {
        throw TokenizerError.malformed(file: path, message: "\(error)")
    }
}

/// transformers 5's `LlamaTokenizer` keeps only the vocabulary, merges and post-processor of tokenizer.json
/// and rebuilds the rest: no normalizer, `Metaspace(▁, split: false)` prepending per `add_prefix_space`
/// (default true; "always" when `legacy` is true, else "first"; "never" without the prefix space), and the
/// Replace/ByteFallback/Fuse(/Strip) decoder.
struct LlamaClassPipeline {
    let preTokenizer: PreTokenizer
    let decoder: Decoder

    init?(config: TokenizerConfig) {
        guard let cls = config.tokenizerClass, cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast" else { return nil }
        let addPrefixSpace = config.raw["add_prefix_space"]?.boolValue ?? true
        let legacy = config.raw["legacy"]?.boolValue ?? false
        let scheme: MetaspacePreTokenizer.PrependScheme = addPrefixSpace ? (legacy ? .always : .first) : .never
        preTokenizer = MetaspacePreTokenizer(replacement: 0x2581, prependScheme: scheme, splitWords: false)
        var steps: [Decoder] = [ReplaceDecoder(matcher: LiteralMatcher(needle: [0x2581]), content: [0x20]),
                                ByteFallbackDecoder(), FuseDecoder()]
        if addPrefixSpace { steps.append(StripDecoder(content: 0x20, start: 1, stop: 0)) }
        decoder = SequenceDecoder(steps: steps)
    }
}
