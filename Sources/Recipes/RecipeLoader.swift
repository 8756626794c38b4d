import Engine
import Foundation
import Formats
import Trainer

/// A recipe: YAML decoded into `TrainingConfiguration`, with `key.path=value` overrides and `${a.b}`
/// references applied first, and unknown keys and wrong types reported with file:line. Whether the
/// configuration can train is `TrainingConfiguration.problems`' to say (the Trainer asks the same
/// question); `check` reports those too, each at its key's line, all at once.
public struct Recipe {
    public let path: String
    public let configuration: TrainingConfiguration
    /// The resolved document (overrides applied), saved beside checkpoints.
    public let node: YAMLNode

    /// Reads and decodes the recipe; throws syntax, unknown-key and type problems. The configuration's
    /// own rules are not applied (`estimate-memory` reads recipes this build cannot train yet).
    public static func load(path: String, overrides: [String] = []) throws -> Recipe {
        let loaded = YAMLLoader.load(TrainingConfiguration.self, path: path, overrides: overrides)
        guard var config = loaded.value, let node = loaded.node, loaded.problems.isEmpty else { throw YAMLError(loaded.problems) }
        config.recipeKeys = keyPaths(node)
        return Recipe(path: path, configuration: config, node: node)
    }

    /// A recipe ready to train on `worldSize` data-parallel ranks, or every problem it has.
    public static func loadForTraining(path: String, overrides: [String] = [], worldSize: Int) throws -> Recipe {
        let (recipe, problems) = check(path: path, overrides: overrides, worldSize: worldSize)
        guard let recipe, problems.isEmpty else { throw YAMLError(problems) }
        return recipe
    }

    /// Every problem of the recipe: syntax, unknown keys, types, then what training on `worldSize` ranks
    /// would refuse (only when the document decoded, since those rules need its values).
    public static func check(path: String, overrides: [String] = [], worldSize: Int = 1) -> (Recipe?, [YAMLProblem]) {
        let loaded = YAMLLoader.load(TrainingConfiguration.self, path: path, overrides: overrides)
        guard var config = loaded.value, let node = loaded.node else { return (nil, loaded.problems) }
        // A ds_config is merged against the keys the document itself sets (`problems` and the Trainer merge it).
        config.recipeKeys = keyPaths(node)
        let rules = config.problems(worldSize: worldSize).map { located($0, in: node) }
        return (Recipe(path: path, configuration: config, node: node), loaded.problems + rules)
    }

    /// Every dotted key path the document sets (`training.learning_rate`, and `training` itself).
    static func keyPaths(_ node: YAMLNode, prefix: String = "") -> Set<String> {
        var out: Set<String> = []
        for e in node.entries ?? [] {
            let path = prefix.isEmpty ? e.key : prefix + "." + e.key
            out.insert(path)
            out.formUnion(keyPaths(e.value, prefix: path))
        }
        return out
    }

    /// A configuration problem at the line of its key, or of the nearest enclosing key the file has
    /// (a default that is wrong only with another key's value has no line of its own).
    static func located(_ problem: ConfigurationProblem, in node: YAMLNode) -> YAMLProblem {
        var keys = problem.keyPath.split(separator: ".").map(String.init)
        var mark = node.node(at: keys)?.mark
        while mark == nil && !keys.isEmpty {
            keys.removeLast()
            mark = node.node(at: keys)?.mark
        }
        return YAMLProblem(mark: mark, path: problem.keyPath, message: problem.message)
    }
}
