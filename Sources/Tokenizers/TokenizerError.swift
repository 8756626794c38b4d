import Formats

/// Everything that can go wrong while loading a tokenizer. Each case names the file it came from so a user
/// with several checkpoints on disk knows which one to fix.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// A component's "type" is not one this implementation knows.
    case unknownComponent(file: String, path: String, stage: String, type: String)
    /// A required field is missing or has the wrong JSON kind.
    case invalidField(file: String, path: String, expected: String, found: String)
    /// A regex pattern Oniguruma does not compile.
    case unsupportedPattern(file: String, pattern: String, reason: String)
    /// A regex needed more backtracking steps on one text than its budget allows (catastrophic
    /// backtracking), where HF tokenizers' Oniguruma would panic.
    case patternBudgetExceeded(file: String, pattern: String, steps: Int, textLength: Int)
    /// A known component whose semantics are not implemented (e.g. Precompiled charsmaps).
    case unsupported(file: String, what: String)
    /// The file is not valid JSON or cannot be read.
    case malformed(file: String, message: String)
    /// The vocabulary and merges disagree (a merge produces a token that is not in the vocabulary, ...).
    case inconsistentModel(file: String, message: String)

    public var description: String {
        switch self {
        case .unknownComponent(let file, let path, let stage, let type):
            return "\(file): \(path): unknown \(stage) type '\(type)'"
        case .invalidField(let file, let path, let expected, let found):
            return "\(file): \(path): expected \(expected), found \(found)"
        case .unsupportedPattern(let file, let pattern, let reason):
            return "\(file): unsupported regex pattern \(pattern.debugDescription): \(reason)"
        case .patternBudgetExceeded(let file, let pattern, let steps, let length):
            return "\(file): regex pattern \(pattern.debugDescription) needed more than \(steps) backtracking steps on a text of \(length) characters "
                + "(catastrophic backtracking, usually a repetition inside a repetition such as (a+)+); rewrite the pattern"
        case .unsupported(let file, let what):
            return "\(file): unsupported: \(what)"
        case .malformed(let file, let message):
            return "\(file): malformed tokenizer file: \(message)"
        case .inconsistentModel(let file, let message):
            return "\(file): \(message)"
        }
    }
}

/// Reads fields of one component object, producing errors that carry the file and the key path.
struct ComponentReader {
    let file: String
    let path: String
    let value: JSONValue

    init(file: String, path: String, value: JSONValue) {
        self.file = file
        self.path = path
        self.value = value
    }

    func child(_ key: String) -> ComponentReader? {
        guard let v = value[key], !v.isNull else { return nil }
        return ComponentReader(file: file, path: path + "." + key, value: v)
    }

    func type(stage: String) throws -> String {
        guard let t = value["type"]?.stringValue else {
            throw TokenizerError.invalidField(file: file, path: path + ".type", expected: "a string naming the \(stage)",
                                              found: value["type"]?.kindName ?? "nothing")
        }
        return t
    }

    func unknown(_ stage: String) throws -> Never {
        throw TokenizerError.unknownComponent(file: file, path: path, stage: stage, type: (try? type(stage: stage)) ?? "?")
    }

    func fail(_ key: String, _ expected: String) -> TokenizerError {
        .invalidField(file: file, path: path + "." + key, expected: expected, found: value[key]?.kindName ?? "nothing")
    }

    func string(_ key: String) throws -> String {
        guard let s = value[key]?.stringValue else { throw fail(key, "a string") }
        return s
    }

    func string(_ key: String, default d: String?) throws -> String? {
        guard let v = value[key], !v.isNull else { return d }
        guard let s = v.stringValue else { throw fail(key, "a string") }
        return s
    }

    func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = value[key], !v.isNull else { return d }
        guard let b = v.boolValue else { throw fail(key, "a boolean") }
        return b
    }

    func int(_ key: String, default d: Int?) throws -> Int? {
        guard let v = value[key], !v.isNull else { return d }
        guard let i = v.intValue else { throw fail(key, "an integer") }
        return i
    }

    func array(_ key: String) throws -> [JSONValue] {
        guard let a = value[key]?.arrayValue else { throw fail(key, "an array") }
        return a
    }

    func elements(_ key: String) throws -> [ComponentReader] {
        try array(key).enumerated().map { ComponentReader(file: file, path: "\(path).\(key)[\($0.offset)]", value: $0.element) }
    }

    func object(_ key: String) throws -> JSONObject {
        guard let o = value[key]?.objectValue else { throw fail(key, "an object") }
        return o
    }
}
