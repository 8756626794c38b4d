import Foundation

/// One thing wrong with a YAML document: where (file:line:column or the override), at which key
/// path, and what. `validate` prints a list of these, one per line.
public struct YAMLProblem: Error, Equatable, Sendable, CustomStringConvertible {
    public var mark: YAMLMark?
    /// Dotted key path (`training.learning_rate`, `data.train[0].path`); empty for the document.
    public var path: String
    public var message: String

    public init(mark: YAMLMark?, path: String, message: String) {
        self.mark = mark
        self.path = path
        self.message = message
    }

    public var description: String {
        var s = mark.map { "\($0): " } ?? ""
        if !path.isEmpty { s += "\(path): " }
        return s + message
    }
}

/// Every problem found in a document (parse, override, reference or decoding), in document order.
public struct YAMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public var problems: [YAMLProblem]

    public init(_ problems: [YAMLProblem]) { self.problems = problems }
    public init(mark: YAMLMark?, path: String = "", message: String) {
        self.problems = [YAMLProblem(mark: mark, path: path, message: message)]
    }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Sorts problems by where they are, so a report reads top to bottom like the file.
func sortedByPosition(_ problems: [YAMLProblem]) -> [YAMLProblem] {
    problems.enumerated().sorted { a, b in
        let (ma, mb) = (a.element.mark, b.element.mark)
        let ka = (ma?.isOverride ?? true ? 1 : 0, ma?.line ?? 0, ma?.column ?? 0, a.offset)
        let kb = (mb?.isOverride ?? true ? 1 : 0, mb?.line ?? 0, mb?.column ?? 0, b.offset)
        return ka < kb
    }.map(\.element)
}

/// "did you mean 'learning_rate'?" for a misspelt key or enum value.
enum Suggestion {
    static func closest(to word: String, in candidates: [String]) -> String? {
        let limit = max(2, word.count / 3)
        var best: (String, Int)?
        for c in candidates {
            let d = distance(word.lowercased(), c.lowercased())
            if d <= limit, best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    /// Levenshtein distance with adjacent transpositions counted as one edit.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var prev2 = [Int](repeating: 0, count: y.count + 1)
        var prev = Array(0...y.count)
        var cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { cur[j] = min(cur[j], prev2[j - 2] + 1) }
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[y.count]
    }

    static func phrase(for word: String, in candidates: [String]) -> String {
        closest(to: word, in: candidates).map { " (did you mean '\($0)'?)" } ?? ""
    }
}

/// Formats a key path as `a.b[0].c`.
func joinPath(_ parts: [String]) -> String {
    var s = ""
    for p in parts {
        if p.hasPrefix("[") { s += p } else { s += s.isEmpty ? p : "." + p }
    }
    return s
}
