import Foundation

/// Command-line `key.path=value` overrides, applied to the tree before references are resolved
/// and before decoding, so an override is checked exactly like a value written in the file.
extension YAMLNode {
    /// Applies each override in order. The value is read as YAML flow (`[q_proj, v_proj]`,
    /// `{r: 8}`, `3e-4`, `null`); text that is not valid YAML is taken as a string (`/x:y@z`).
    /// Missing intermediate mappings are created; `list.0.key` indexes lists; `~key.path`
    /// deletes a key. Every override that cannot be applied is reported; the others still apply.
    public mutating func applyOverrides(_ overrides: [String]) throws {
        var problems: [YAMLProblem] = []
        for text in overrides {
            do { try applyOverride(text) } catch let error as YAMLError { problems += error.problems }
        }
        if !problems.isEmpty { throw YAMLError(problems) }
    }

    public mutating func applyOverride(_ text: String) throws {
        let mark = YAMLMark.override(text)
        var keyText: Substring
        var valueText: Substring?
        if text.hasPrefix("~") {
            keyText = text.dropFirst()
        } else {
            guard let eq = text.firstIndex(of: "=") else {
                throw YAMLError(mark: mark, message: "an override is written key.path=value")
            }
            keyText = text[..<eq]
            valueText = text[text.index(after: eq)...]
            if keyText.hasPrefix("+") { keyText = keyText.dropFirst() }  // Hydra's "add a new key"
        }
        let path = keyText.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.isEmpty, path.allSatisfy({ !$0.isEmpty && !$0.contains(where: \.isWhitespace) }) else {
            throw YAMLError(mark: mark, message: "'\(keyText)' is not a key path (expected names separated by dots, like training.learning_rate)")
        }
        let newValue = try valueText.map { try Self.overrideValue(String($0), mark: mark) }
        try Self.set(&self, path: path[...], done: [], value: newValue, mark: mark)
    }

    private static func overrideValue(_ text: String, mark: YAMLMark) throws -> YAMLNode {
        if text.allSatisfy(\.isWhitespace) { return YAMLNode(.null, mark: mark) }  // `key=` clears a value
        do {
            let node = try YAMLParser.parse(text, source: mark.source).remarked(mark)
            // `---` or `#x` parse as an empty document (null); only a null spelled out clears a value.
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if node.isNull, !["~", "null", "Null", "NULL"].contains(trimmed) { return YAMLNode(.string(text), mark: mark) }
            return node
        } catch let error as YAMLError {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("[") || trimmed.hasPrefix("{") {
                let why = error.problems.first?.message ?? "invalid YAML"
                throw YAMLError(mark: mark, message: "the value is not valid YAML flow: \(why)")
            }
            return YAMLNode(.string(text), mark: mark)
        }
    }

    /// `value == nil` deletes the key.
    private static func set(_ node: inout YAMLNode, path: ArraySlice<String>, done: [String], value: YAMLNode?, mark: YAMLMark) throws {
        let part = path.first!
        let rest = path.dropFirst()
        let here = done + [part]
        func notFound() -> YAMLError {
            YAMLError(mark: mark, message: "cannot delete '\(here.joined(separator: "."))': no such key")
        }
        if node.isNull, value != nil, !rest.isEmpty || Int(part) == nil {
            node = YAMLNode(.mapping([]), mark: node.mark)  // `lora:` left empty in the file
        }
        switch node.value {
        case .mapping(var entries):
            if let i = entries.firstIndex(where: { $0.key == part }) {
                if rest.isEmpty {
                    if let value { entries[i].value = value } else { entries.remove(at: i) }
                } else {
                    try set(&entries[i].value, path: rest, done: here, value: value, mark: mark)
                }
            } else {
                guard let value else { throw notFound() }
                var child = YAMLNode(.mapping([]), mark: mark)
                if rest.isEmpty { child = value } else { try set(&child, path: rest, done: here, value: value, mark: mark) }
                entries.append(YAMLEntry(key: part, keyMark: mark, value: child))
            }
            node.value = .mapping(entries)
        case .sequence(var items):
            guard let i = Int(part), i >= 0, i <= items.count, i < items.count || (rest.isEmpty && value != nil) else {
                throw YAMLError(mark: mark, message: "'\(done.joined(separator: "."))' (\(node.mark)) is a list of \(items.count) items; '\(part)' is not an index in it")
            }
            if rest.isEmpty {
                if let value { if i == items.count { items.append(value) } else { items[i] = value } } else { items.remove(at: i) }
            } else {
                try set(&items[i], path: rest, done: here, value: value, mark: mark)
            }
            node.value = .sequence(items)
        default:
            if value == nil { throw notFound() }
            throw YAMLError(mark: mark, message: "cannot set '\(here.joined(separator: "."))': '\(done.joined(separator: "."))' is \(node.foundDescription) (\(node.mark)), not a mapping")
        }
    }
}

// MARK: - ${a.b.c} references

extension YAMLNode {
    /// Replaces `${a.b.c}` references inside string scalars. A scalar that is exactly one
    /// reference takes the referenced node with its type (`${training.lr}` stays a float); a
    /// reference embedded in text is interpolated as a string. `\${` is a literal `${`.
    /// Missing keys and cycles are reported, all of them, naming the key and where it is used.
    public func resolvingReferences() throws -> YAMLNode {
        var resolver = ReferenceResolver(root: self)
        let (result, _) = resolver.resolve(self, path: [], visiting: [])
        if !resolver.problems.isEmpty { throw YAMLError(sortedByPosition(resolver.problems)) }
        return result
    }
}

private struct ReferenceResolver {
    let root: YAMLNode
    var problems: [YAMLProblem] = []
    private var reported = Set<String>()
    /// Each key path resolved once (with its expanded node count): a chain of references that each use
    /// the previous one twice would otherwise be resolved 2^n times.
    private var resolved: [[String]: (node: YAMLNode, size: Int)] = [:]
    /// Expanded nodes produced so far, against `YAMLLimits.maxNodes`.
    private var expanded = 0
    /// Set once a limit is hit (expansion or depth).
    private var overBudget = false

    init(root: YAMLNode) { self.root = root }

    private enum Piece { case text(String), reference(String) }

    private mutating func report(_ mark: YAMLMark, _ path: [String], _ message: String) {
        let key = "\(mark)|\(message)"
        if reported.insert(key).inserted {
            problems.append(YAMLProblem(mark: mark, path: path.joined(separator: "."), message: message))
        }
    }

    /// The node with its references replaced, and its expanded node count.
    mutating func resolve(_ node: YAMLNode, path: [String], visiting: [[String]]) -> (YAMLNode, Int) {
        switch node.value {
        case .string(let s) where s.contains("${"):
            return resolveScalar(s, node: node, path: path, visiting: visiting)
        case .sequence(let items):
            var out = node, size = 1
            out.value = .sequence(items.enumerated().map {
                let (n, k) = resolve($0.element, path: path + ["\($0.offset)"], visiting: visiting)
                size += k
                return n
            })
            return (out, size)
        case .mapping(let entries):
            var out = node, size = 1
            out.value = .mapping(entries.map {
                let (n, k) = resolve($0.value, path: path + [$0.key], visiting: visiting)
                size += k
                return YAMLEntry(key: $0.key, keyMark: $0.keyMark, value: n)
            })
            return (out, size)
        default:
            return (node, 1)
        }
    }

    private mutating func resolveScalar(_ s: String, node: YAMLNode, path: [String], visiting: [[String]]) -> (YAMLNode, Int) {
        guard let pieces = split(s) else {
            report(node.mark, path, "unclosed '${' in '\(s)'")
            return (node, 1)
        }
        if pieces.count == 1, case .reference(let ref) = pieces[0] {
            guard let (found, size) = lookup(ref, from: node, path: path, visiting: visiting), spend(size, node.mark, path) else { return (node, 1) }
            var target = found
            target.mark = node.mark
            return (target, size)
        }
        var text = ""
        for piece in pieces {
            switch piece {
            case .text(let t): text += t
            case .reference(let ref):
                guard let (target, _) = lookup(ref, from: node, path: path, visiting: visiting) else { return (node, 1) }
                switch target.value {
                case .null: text += "null"
                case .bool(let b): text += "\(b)"
                case .int(let i): text += "\(i)"
                case .double(let d): text += YAMLScalar.format(d)
                case .string(let t): text += t
                case .sequence, .mapping:
                    report(node.mark, path, "'${\(ref)}' is \(target.foundDescription), which cannot be placed inside a string")
                    return (node, 1)
                }
            }
            if text.utf8.count > YAMLLimits.maxInterpolatedLength {
                report(node.mark, path, "the text built from the references in '\(s.prefix(80))' is longer than \(YAMLLimits.maxInterpolatedLength) bytes")
                return (node, 1)
            }
        }
        return (YAMLNode(.string(text), mark: node.mark), 1)
    }

    /// Counts `size` expanded nodes against the budget; false (reported once) past it.
    private mutating func spend(_ size: Int, _ mark: YAMLMark, _ path: [String]) -> Bool {
        expanded += size
        guard expanded > YAMLLimits.maxNodes else { return true }
        if !overBudget {
            overBudget = true
            report(mark, path, "the references expand the document to more than \(YAMLLimits.maxNodes) values (is a reference repeated exponentially?)")
        }
        return false
    }

    /// The referenced node, itself resolved; nil (with a problem reported) when missing or cyclic.
    private mutating func lookup(_ ref: String, from node: YAMLNode, path: [String], visiting: [[String]]) -> (YAMLNode, Int)? {
        let refPath = ref.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if ref.contains(":") {
            report(node.mark, path, "'${\(ref)}': resolvers (like oc.env:) are not supported; only ${key.path} references")
            return nil
        }
        guard !ref.isEmpty, refPath.allSatisfy({ !$0.isEmpty }) else {
            report(node.mark, path, "'${\(ref)}' is not a key path")
            return nil
        }
        if let done = resolved[refPath] { return done }
        // Past a limit the document is hostile: one report, and the rest is left unresolved.
        if overBudget { return nil }
        let chain = visiting + [path]
        guard chain.count <= YAMLLimits.maxDepth else {
            overBudget = true
            report(node.mark, path, "'${\(ref)}': references lead through more than \(YAMLLimits.maxDepth) other references")
            return nil
        }
        if let start = chain.firstIndex(where: { $0.starts(with: refPath) }) {
            // Told from the node being reported: it refers to ref, which leads back to it.
            let here = path.joined(separator: ".")
            let names = chain[start] == refPath
                ? ([here] + chain[start..<(chain.count - 1)].map { $0.joined(separator: ".") } + [here])
                : [here, ref]
            report(node.mark, path, "reference cycle: \(names.joined(separator: " -> "))")
            return nil
        }
        var current = root
        for (i, part) in refPath.enumerated() {
            guard let next = current.node(at: [part]) else {
                let parent = refPath[..<i].joined(separator: ".")
                let keys = current.entries?.map(\.key) ?? []
                let place = parent.isEmpty ? "at the top level" : "under '\(parent)' (\(current.mark))"
                report(node.mark, path, "'${\(ref)}' refers to '\(refPath[...i].joined(separator: "."))', which does not exist \(place)"
                       + Suggestion.phrase(for: part, in: keys))
                return nil
            }
            current = next
        }
        let before = problems.count
        let result = resolve(current, path: refPath, visiting: chain)
        // Only a clean resolution is reused: a failed one must be reported from each place that uses it.
        if problems.count == before { resolved[refPath] = result }
        return result
    }

    private func split(_ s: String) -> [Piece]? {
        var pieces: [Piece] = []
        var text = ""
        var rest = Substring(s)
        while let start = rest.range(of: "${") {
            if start.lowerBound > rest.startIndex, rest[rest.index(before: start.lowerBound)] == "\\" {
                text += rest[..<rest.index(before: start.lowerBound)] + "${"
                rest = rest[start.upperBound...]
                continue
            }
            text += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { return nil }
            if !text.isEmpty { pieces.append(.text(text)); text = "" }
            pieces.append(.reference(rest[start.upperBound..<end].trimmingCharacters(in: .whitespaces)))
            rest = rest[rest.index(after: end)...]
        }
        text += rest
        if !text.isEmpty || pieces.isEmpty { pieces.append(.text(text)) }
        return pieces
    }
}
