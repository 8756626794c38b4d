import Foundation
import Formats
import Tokenizers

/// One message of a conversation: its role and text, plus the whole message as the chat template sees it
/// (extra keys such as `name` or `tool_calls` pass through in their original order).
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public var fields: TemplateObject

    public init(role: String, content: String, fields: TemplateObject? = nil) {
        self.role = role
        self.content = content
        self.fields = fields ?? TemplateObject([("role", .string(role)), ("content", .string(content))])
    }
}

/// One training example before tokenisation. `alpaca` lines become a prompt and a completion (the prompt
/// is the Alpaca template filled in), `sharegpt` lines become chat messages with OpenAI roles.
public enum DataRecord: Sendable, Equatable {
    case text(String)
    case promptCompletion(prompt: String, completion: String)
    case chat([ChatMessage])
}

/// Where a record came from, for error messages and for tracing an example back to its line.
public struct DataLocation: Sendable, Equatable, Hashable {
    public var source: String
    public var line: Int
    public init(source: String, line: Int) {
        self.source = source
        self.line = line
    }
}

/// The Alpaca prompts, as torchtune's `AlpacaToMessages` (and alpaca-lora, and the `text` column of
/// tatsu-lab/alpaca) write them: Stanford's train.py has the same text without the newline after
/// "### Response:". The input variant is used when `input` is present and non-empty.
public enum AlpacaTemplate {
    public static let withInput = "Below is an instruction that describes a task, paired with an input that provides further context. "
        + "Write a response that appropriately completes the request.\n\n"
        + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
    public static let withoutInput = "Below is an instruction that describes a task. "
        + "Write a response that appropriately completes the request.\n\n"
        + "### Instruction:\n{instruction}\n\n### Response:\n"

    public static func prompt(instruction: String, input: String?) -> String {
        if let input, !input.isEmpty {
            return withInput.replacingOccurrences(of: "{instruction}", with: instruction)
                .replacingOccurrences(of: "{input}", with: input)
        }
        return withoutInput.replacingOccurrences(of: "{instruction}", with: instruction)
    }
}

/// Reads JSONL files (plain, `.jsonl.gz`/`.zst`/..., or members of `.tar*`/`.zip` archives) line by line
/// and turns each line into a `DataRecord` of the given format. Blank lines are skipped; any other line
/// that does not fit the format stops reading with a `DataError.malformedLine` naming file, line and key.
public enum DataFileReader {
    public static let chatRoles: Set<String> = ["system", "user", "assistant", "tool"]
    /// ShareGPT speaker names → chat roles. `user`/`assistant` appear in some ShareGPT exports too.
    public static let shareGPTRoles: [String: String] = [
        "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
    ]

    /// Every record of `path` in file order.
    public static func readAll(path: String, format: DataOptions.Format, member: String? = nil) throws -> [(DataRecord, DataLocation)] {
        var out: [(DataRecord, DataLocation)] = []
        try forEachRecord(path: path, format: format, member: member) { out.append(($0, $1)) }
        return out
    }

    /// Streams the records of `path`; for an archive without `member`, every `.jsonl` member in order.
    public static func forEachRecord(path: String, format: DataOptions.Format, member: String? = nil,
                                     _ body: (DataRecord, DataLocation) throws -> Void) throws {
        var linesRead = 0
        func consume(_ reader: LineReader) throws {
            while let line = try wrapIO(reader.name, { try reader.next() }) {
                linesRead += 1
                if line.text.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
                let location = DataLocation(source: reader.name, line: line.number)
                try body(try parse(line.text, format: format, at: location, linesRead: linesRead), location)
            }
        }
        guard FileManager.default.fileExists(atPath: path) else { throw DataError.unreadable(source: path, reason: "no such file") }
        if isArchive(path) {
            if let member {
                try consume(try wrapIO(path) { try LineReader.open(archive: path, member: member) })
                return
            }
            let archive = try wrapIO(path) { try ArchiveReader(path: path, mode: .archive) }
            var found = false
            while let entry = try wrapIO(path, { try archive.nextEntry() }) {
                guard entry.kind == .file, entry.name.lowercased().hasSuffix(".jsonl") else { continue }
                found = true
                try consume(archive.lines())
            }
            if !found { throw DataError.unreadable(source: path, reason: "the archive has no .jsonl member") }
        } else {
            if let member { throw DataError.invalidOptions("member '\(member)' given, but \(path) is not an archive") }
            try consume(try wrapIO(path) { try LineReader.open(path: path) })
        }
    }

    /// Archive names as libarchive's readers expect them; single compressed streams are not archives.
    static func isArchive(_ path: String) -> Bool {
        let name = (path as NSString).lastPathComponent.lowercased()
        let suffixes = [".tar", ".tgz", ".tbz2", ".txz", ".tzst", ".zip", ".7z", ".tar.gz", ".tar.zst", ".tar.xz", ".tar.bz2", ".tar.lz4"]
        return suffixes.contains(where: name.hasSuffix)
    }

    private static func wrapIO<T>(_ source: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as DataError {
            throw e
        } catch let e as LineReaderError {
            switch e {
            case .invalidUTF8(let s, let line, _), .lineTooLong(let s, let line, _):
                throw DataError.malformedLine(source: s, line: line, key: nil, message: "\(e)", linesRead: line)
            case .io(let s, _, _):
                throw DataError.unreadable(source: s, reason: "\(e)")
            }
        } catch {
            throw DataError.unreadable(source: source, reason: "\(error)")
        }
    }

    /// One line of `format` as a record.
    public static func parse(_ text: String, format: DataOptions.Format, at location: DataLocation, linesRead: Int) throws -> DataRecord {
        func fail(_ key: String?, _ message: String) -> DataError {
            .malformedLine(source: location.source, line: location.line, key: key, message: message, linesRead: linesRead)
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(text, source: location.source)
        } catch let JSONError.parse(_, message) {
            throw fail(nil, "invalid JSON: \(message)")
        }
        guard json.objectValue != nil else { throw fail(nil, "expected a JSON object, found \(json.kindName)") }

        func string(_ value: JSONValue?, _ key: String, optional: Bool = false) throws -> String? {
            guard let value, !(optional && value.isNull) else {
                if optional { return nil }
                throw fail(key, "missing (the \(format.rawValue) format needs it)")
            }
            guard let s = value.stringValue else { throw fail(key, "expected a string, found \(value.kindName)") }
            return s
        }
        func list(_ key: String) throws -> [JSONValue] {
            guard let value = json[key] else { throw fail(key, "missing (the \(format.rawValue) format needs it)") }
            guard let items = value.arrayValue else { throw fail(key, "expected a list of messages, found \(value.kindName)") }
            guard !items.isEmpty else { throw fail(key, "the conversation is empty") }
            return items
        }

        switch format {
        case .text:
            return .text(try string(json["text"], "text")!)
        case .prompt_completion:
            return .promptCompletion(prompt: try string(json["prompt"], "prompt")!, completion: try string(json["completion"], "completion")!)
        case .alpaca:
            let instruction = try string(json["instruction"], "instruction")!
            let input = try string(json["input"], "input", optional: true)
            let output = try string(json["output"], "output")!
            return .promptCompletion(prompt: AlpacaTemplate.prompt(instruction: instruction, input: input), completion: output)
        case .chat:
            let messages = try list("messages").enumerated().map { i, m -> ChatMessage in
                let key = "messages[\(i)]"
                guard let object = m.objectValue else { throw fail(key, "expected a message object, found \(m.kindName)") }
                let role = try string(m["role"], key + ".role")!
                guard chatRoles.contains(role) else {
                    throw fail(key + ".role", "unknown role \"\(role)\" (expected one of \(chatRoles.sorted().joined(separator: ", ")))")
                }
                let content = try string(m["content"], key + ".content")!
                return ChatMessage(role: role, content: content, fields: TemplateObject(object.map { ($0.key, TemplateValue($0.value)) }))
            }
            try requireAssistant(messages, key: "messages", fail: fail)
            return .chat(messages)
        case .sharegpt:
            let messages = try list("conversations").enumerated().map { i, m -> ChatMessage in
                let key = "conversations[\(i)]"
                guard m.objectValue != nil else { throw fail(key, "expected a message object, found \(m.kindName)") }
                let speaker = try string(m["from"], key + ".from")!
                guard let role = shareGPTRoles[speaker] else {
                    throw fail(key + ".from", "unknown speaker \"\(speaker)\" (expected one of \(shareGPTRoles.keys.sorted().joined(separator: ", ")))")
                }
                return ChatMessage(role: role, content: try string(m["value"], key + ".value")!)
            }
            try requireAssistant(messages, key: "conversations", fail: fail)
            return .chat(messages)
        }
    }

    /// A conversation without an assistant turn has nothing to learn under assistant-only loss; it is far
    /// more likely a mislabelled role than intended, so it is an error rather than a silent drop.
    private static func requireAssistant(_ messages: [ChatMessage], key: String, fail: (String?, String) -> DataError) throws {
        guard messages.contains(where: { $0.role == "assistant" }) else {
            throw fail(key, "the conversation has no assistant message")
        }
    }
}
