import Foundation
import SwiftFinetune

/// `swift-finetune validate RECIPE.yaml [--nproc N] [key.path=value ...]`: every problem of a recipe at
/// once, the same ones training would stop at. `--nproc` is the number of ranks the run will have
/// (train_batch_size counts them); under mpirun it defaults to the job's size, else to 1.
enum ValidateCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "validate", try Arguments.deepSpeedOverrides("validate", args), flagNames: [])
        let nproc = try a.int("nproc") ?? Distributed.announcedWorldSize()
        try a.finish(positionals: 1...Int.max)
        guard nproc >= 1 else { throw CLIError.usage("validate", "--nproc must be at least 1") }
        let path = a.positionals[0]
        let (recipe, problems) = Recipe.check(path: path, overrides: Array(a.positionals.dropFirst()), worldSize: nproc)
        if problems.isEmpty, let recipe {
            // What a ds_config holds that has no effect here, as training would say at start.
            if let note = recipe.configuration.mergingDeepSpeed(worldSize: nproc).0.deepspeedImport?.note { print(note) }
            print("\(path): ok")
            return
        }
        for p in problems { print(p) }
        throw CLIError.failed("\(path): \(problems.count) problem\(problems.count == 1 ? "" : "s")")
    }
}
