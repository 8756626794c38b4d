import Foundation
import SwiftFinetune

/// `swift-finetune RECIPE.yaml [--deepspeed ds_config.json] [key.path=value ...]`: fine-tune as the recipe says.
enum TrainCommand {
    static func run(recipePath: String, _ given: [String]) throws {
        let args = try Arguments.deepSpeedOverrides("train", given)
        let unknown = args.filter { !$0.contains("=") }
        if let first = unknown.first { throw CLIError.usage("train", "expected key.path=value overrides after the recipe, got '\(first)'") }
        let communicator = try Distributed.current()
        // Checked here as well as by the Trainer so that problems are reported at their recipe lines.
        let recipe = try Recipe.loadForTraining(path: recipePath, overrides: args, worldSize: communicator.worldSize)
        let c = recipe.configuration
        let trainer = try Trainer(configuration: c, communicator: communicator)
        if communicator.rank == 0 {
            try AtomicFile.createFolder(c.output.dir)
            // The recipe as it ran (overrides and references resolved), for the record; written once the
            // Trainer accepted it, so a refused run leaves an earlier run's copy alone.
            try YAMLEmitter.write(recipe.node, to: (c.output.dir as NSString).appendingPathComponent("recipe.yaml"),
                                  header: "Resolved from \(recipePath)")
        }
        let started = Date()
        GracefulStop.install()
        let summary: TrainingSummary
        do {
            summary = try trainer.train()
        } catch TrainerError.interrupted(let signal, let step, let total, let checkpoint) {
            // Every rank agreed on the step and the checkpoint is complete: exit as the signal asked (128 + n).
            if communicator.rank == 0 {
                FileHandle.standardError.write(Data(("\(GracefulStop.name(signal)): stopped after step \(step) of \(total) and saved \(checkpoint)\n"
                    + "continue with: swift-finetune \(recipePath) \((args + ["resume=auto"]).joined(separator: " "))\n").utf8))
            }
            exit(128 + signal)
        }
        guard communicator.rank == 0 else { return }
        var line = "trained \(summary.steps) steps in \(String(format: "%.1f", Date().timeIntervalSince(started))) s"
        if let l = summary.finalLoss { line += String(format: ", final loss %.4f", l) }
        if let e = summary.finalEvalLoss { line += String(format: ", eval loss %.4f", e) }
        if summary.stoppedEarly { line += " (stopped early)" }
        print(line)
        print("model: \(summary.exportedModel)")
    }
}
