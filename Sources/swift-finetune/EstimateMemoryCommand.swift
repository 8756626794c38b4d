import Foundation
import SwiftFinetune

/// `swift-finetune estimate-memory RECIPE.yaml [--nproc N] [key.path=value ...]`: model-state bytes per
/// rank for every ZeRO stage, as DeepSpeed's estimators print them, from the recipe's model config.
enum EstimateMemoryCommand {
    static func run(_ args: [String]) throws {
        var a = try Arguments(command: "estimate-memory", args, flagNames: [])
        let nproc = try a.int("nproc") ?? 1
        try a.finish(positionals: 1...Int.max)
        guard nproc >= 1 else { throw CLIError.usage("estimate-memory", "--nproc must be at least 1") }
        let recipe = try Recipe.load(path: a.positionals[0], overrides: Array(a.positionals.dropFirst()))
        // With a ds_config its precision counts; its problems are validate's to report.
        let c = recipe.configuration.mergingDeepSpeed(worldSize: nproc).0
        let configPath: String
        if let p = c.model.path { configPath = (try ModelPath.folder(p) as NSString).appendingPathComponent("config.json") }
        else { configPath = c.model.initialize!.config }
        let config = try ModelRegistry.config(path: configPath)
        let parameters = ModelRegistry.layout(for: config).totalCount
        let dtype: DType = c.engine.precision == .f32 ? .f32 : c.engine.precision == .bf16 ? .bf16 : .f16
        print("\(configPath): \(groupedDigits(parameters)) trainable parameters, \(c.engine.precision.rawValue) compute, \(nproc) rank(s)")
        print("model state per rank (parameters, gradients, optimizer state), excluding activations:")
        for stage in 0...3 {
            let bytes = MemoryEstimate.modelStateBytes(parameters: parameters, stage: stage, ranks: nproc, computeDType: dtype)
            let mark = stage == c.engine.zeroStage ? "  <- this recipe" : ""
            print("  ZeRO-\(stage): " + byteText(bytes).leftPadded(to: 10) + mark)
        }
    }
}

/// 1.23 GB, 456.7 MB or 12.3 kB: decimal units, as DeepSpeed's estimators print them.
func byteText(_ bytes: Int) -> String {
    let b = Double(bytes)
    if b >= 1e9 { return String(format: "%.2f GB", b / 1e9) }
    if b >= 1e6 { return String(format: "%.1f MB", b / 1e6) }
    return String(format: "%.1f kB", b / 1e3)
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
