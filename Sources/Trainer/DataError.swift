/// What can go wrong between a JSONL file and a batch of token ids. Every case about a line names the
/// source (file, or `archive:member`) and the 1-based line, so a user can open the file at that line.
/// Reading stops at the first bad line: the trainer never skips data silently.
public enum DataError: Error, CustomStringConvertible, Equatable {
    /// A line that is not what its format requires: bad JSON, a missing key, a wrong type, an unknown role.
    /// `key` is the path of the offending value (`messages[2].role`), nil when the line is not JSON at all.
    /// `linesRead` counts every line read so far from all members, this one included.
    case malformedLine(source: String, line: Int, key: String?, message: String, linesRead: Int)
    /// The chat template failed on this conversation (it called `raise_exception`, or a Jinja error).
    case template(source: String, line: Int, message: String)
    /// Tokenising a prefix of the conversation did not give a prefix of the whole conversation's ids, so
    /// where the assistant turn starts or ends in tokens cannot be known without guessing.
    case prefixMismatch(source: String, line: Int, messageIndex: Int, detail: String)
    /// The file could not be opened or read (I/O, decompression, a missing archive member).
    case unreadable(source: String, reason: String)
    /// The tokenizer lacks something the format needs (an EOS token, a chat template).
    case tokenizer(source: String, message: String)
    /// Options that cannot work together (a split outside (0, 1), a member of a non-archive, ...).
    case invalidOptions(String)
    /// Nothing left to train on.
    case noExamples(source: String, reason: String)

    public var description: String {
        switch self {
        case .malformedLine(let source, let line, let key, let message, let linesRead):
            let at = key.map { " key \"\($0)\":" } ?? ""
            return "\(source):\(line):\(at) \(message) (stopped after reading \(linesRead) line\(linesRead == 1 ? "" : "s"))"
        case .template(let source, let line, let message):
            return "\(source):\(line): chat template failed: \(message)"
        case .prefixMismatch(let source, let line, let index, let detail):
            return "\(source):\(line): cannot locate message \(index) in tokens: \(detail); "
                + "the chat template or tokenizer merges text across the turn boundary"
        case .unreadable(let source, let reason):
            return "\(source): cannot read data: \(reason)"
        case .tokenizer(let source, let message):
            return "\(source): \(message)"
        case .invalidOptions(let message):
            return "data options: \(message)"
        case .noExamples(let source, let reason):
            return "\(source): no training examples: \(reason)"
        }
    }
}
