import Foundation
import SwiftFinetune

/// Checkpoint save and load of the 135M model with AdamW state: the Hugging Face model folder
/// (model.safetensors, f32) plus the engine state file (f32 master weights, exp_avg, exp_avg_sq by
/// name), as the trainer writes `global_stepN/`; then loading both back, as a resume does. Files go to
/// the temporary directory; the page cache makes loads of just-written files memory-speed, so the
/// load figure is the parsing and copying cost, not the disk's.
enum CheckpointBenchmark {
    static func run() throws {
        let c = try BenchModel.config135M()
        let model = TransformerModel(config: c)
        model.initializeRandom(seed: 0)
        let engine = try TrainingEngine(model: model, options: EngineOptions(),
                                        optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.0), maxTokens: 16)
        let dir = NSTemporaryDirectory() + "swift-finetune-bench-checkpoint"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes = 0
        let saves = try Measure.times(runs: 3) {
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try model.save(directory: dir, dtype: .f32)
            try engine.saveState(to: dir)
            bytes = try FileManager.default.contentsOfDirectory(atPath: dir).reduce(0) {
                $0 + ((try FileManager.default.attributesOfItem(atPath: dir + "/" + $1)[.size] as? Int) ?? 0)
            }
        }
        let loads = try Measure.times(runs: 3) {
            let loaded = try TransformerModel.load(directory: dir)
            let resumed = try TrainingEngine(model: loaded, options: EngineOptions(),
                                             optimizer: .adamw(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.0), maxTokens: 16)
            try resumed.loadState(from: dir)
        }
        let (save, load) = (Measure.median(saves), Measure.median(loads))
        let gb = Double(bytes) / 1e9
        print("\n== Checkpoint save and load, 135M, f32 weights + AdamW state (\(Measure.fmt(gb, 2)) GB on disk)")
        Measure.line("save (model folder + engine state)", "\(Measure.fmt(save, 2)) s = \(Measure.fmt(gb / save, 2)) GB/s (median of 3)")
        Measure.line("load (model + engine state)", "\(Measure.fmt(load, 2)) s = \(Measure.fmt(gb / load, 2)) GB/s (median of 3)")
    }
}
