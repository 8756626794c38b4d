import Foundation

/// What loading a recipe-like YAML file produced: the typed value when there were no problems,
/// the resolved tree (overrides applied, references replaced) to save beside a checkpoint, and
/// every problem found, ordered by file position with command-line overrides last.
public struct YAMLLoadResult<T> {
    public var value: T?
    public var node: YAMLNode?
    public var problems: [YAMLProblem]

    /// The value, or a `YAMLError` listing every problem.
    public func get() throws -> T {
        guard let value, problems.isEmpty else { throw YAMLError(problems) }
        return value
    }
}

/// The one call a config reader needs: parse → overrides → `${...}` references → strict decode.
public enum YAMLLoader {
    public static func load<T: Decodable>(_ type: T.Type, path: String, overrides: [String] = [],
                                          decoder: YAMLDecoder = YAMLDecoder()) -> YAMLLoadResult<T> {
        do {
            return load(type, node: try YAMLParser.read(path: path), overrides: overrides, decoder: decoder)
        } catch {
            return YAMLLoadResult(value: nil, node: nil, problems: problems(of: error))
        }
    }

    public static func load<T: Decodable>(_ type: T.Type, text: String, source: String = "<string>", overrides: [String] = [],
                                          decoder: YAMLDecoder = YAMLDecoder()) -> YAMLLoadResult<T> {
        do {
            return load(type, node: try YAMLParser.parse(text, source: source), overrides: overrides, decoder: decoder)
        } catch {
            return YAMLLoadResult(value: nil, node: nil, problems: problems(of: error))
        }
    }

    /// Later stages still run when an earlier one found problems, so one run reports them all.
    public static func load<T: Decodable>(_ type: T.Type, node parsed: YAMLNode, overrides: [String] = [],
                                          decoder: YAMLDecoder = YAMLDecoder()) -> YAMLLoadResult<T> {
        var node = parsed
        var found: [YAMLProblem] = []
        do { try node.applyOverrides(overrides) } catch { found += problems(of: error) }
        do { node = try node.resolvingReferences() } catch { found += problems(of: error) }
        let (value, decodeProblems) = decoder.decodeCollectingErrors(type, from: node)
        // A value whose reference failed is still the "${...}" text; its type mismatch is noise.
        let broken = Set(found.compactMap(\.mark))
        found += decodeProblems.filter { $0.mark.map { !broken.contains($0) } ?? true }
        let all = sortedByPosition(found)
        return YAMLLoadResult(value: all.isEmpty ? value : nil, node: node, problems: all)
    }

    private static func problems(of error: Error) -> [YAMLProblem] {
        if let e = error as? YAMLError { return e.problems }
        return [YAMLProblem(mark: nil, path: "", message: "\(error)")]
    }
}
