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
        try printPipelineSplits(config: config, recipe: c, nproc: nproc, dtype: dtype)
    }

    /// Every pipeline split of the ranks (P > 1 dividing N, at most one stage per block): each stage's
    /// per-rank model state at the recipe's ZeRO stage 0 or 1 (ZeRO-2/3 do not compose with a pipeline).
    static func printPipelineSplits(config: TransformerConfig, recipe c: TrainingConfiguration, nproc: Int, dtype: DType) throws {
        let layout = ModelRegistry.layout(for: config)
        let splits = (2...Swift.max(2, nproc)).filter { nproc % $0 == 0 && $0 <= config.numLayers }
        guard !splits.isEmpty else { return }
        let zero = Swift.min(c.engine.zeroStage, 1)
        print("with pipeline parallelism (engine.pipeline.stages P; \(nproc) ranks = P stages × D replicas), ZeRO-\(zero) (a stage always shards its optimizer state over D, as ZeRO-1), partition by \(c.engine.pipeline.partition):")
        for P in splits {
            let perStage = try MemoryEstimate.pipelineModelStateBytes(layout: layout, blocks: config.numLayers, stages: P, ranks: nproc,
                                                                      zeroStage: zero, computeDType: dtype, partition: c.engine.pipeline.partition)
            let mark = P == c.engine.pipeline.stages ? "  <- this recipe" : ""
            print("  P=\(P) × D=\(nproc / P): largest stage " + byteText(perStage.max()!).leftPadded(to: 10)
                  + " (stages: \(perStage.map(byteText).joined(separator: ", ")))" + mark)
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
