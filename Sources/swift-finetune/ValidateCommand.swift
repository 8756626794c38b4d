import Foundation
import SwiftFinetune

/// `swift-finetune validate RECIPE.yaml [key.path=value ...]`: every problem of a recipe at once.
enum ValidateCommand {
    static func run(_ args: [String]) throws {
        let a = try Arguments(command: "validate", args, flagNames: [])
        try a.finish(positionals: 1...Int.max)
        let path = a.positionals[0]
        let (recipe, problems) = Recipe.check(path: path, overrides: Array(a.positionals.dropFirst()))
        if problems.isEmpty, recipe != nil {
            print("\(path): ok")
            return
        }
        for p in problems { print(p) }
        throw CLIError.failed("\(path): \(problems.count) problem\(problems.count == 1 ? "" : "s")")
    }
}
