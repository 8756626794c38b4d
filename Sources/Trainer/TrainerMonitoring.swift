import Foundation
import Formats
import Kernels

/// What the Trainer does after each optimizer step for DeepSpeed's monitors: the step's wall-clock
/// breakdown (into its record, and every `steps` steps the medians on the log) and, at
/// `flops_profiler.profile_step`, the FLOPs profile.
extension Trainer {
    func monitor(_ m: inout StepMetrics, microBatches: [TokenBatch], breakdown: inout WallClockBreakdown?,
                 progress: ProgressDisplay) throws {
        let c = configuration
        guard let times = lastStepTimes else { return }
        if c.logging.wallClockBreakdown { m.times = times }
        if let line = breakdown?.record(times, step: globalStep) {
            if c.logging.level == .debug {
                FileHandle.standardError.write(Data("[rank \(communicator.rank)] \(line)\n".utf8))
            } else if progress.style == .none {
                log(line)
            } else {
                progress.note(line)
            }
        }
        let f = c.logging.flopsProfiler
        guard f.enabled, globalStep == f.profileStep else { return }
        // The host's load changes: rank 0 takes the better of the start's peak and a fresh one.
        let peak = communicator.rank == 0 ? max(sgemmPeak ?? 0, SgemmPeak.measure()) : sgemmPeak ?? .nan
        let profile = FlopsProfile(step: globalStep, worldSize: communicator.worldSize, config: model.config, layout: model.layout,
                                   spans: microBatches.map { $0.segments.map { AttentionSpan(qStart: $0.start, qLen: $0.length) } },
                                   recompute: c.engine.activationCheckpointing, adapter: model.adapter?.layout, times: times, sgemmPeak: peak)
        lastProfile = profile
        guard communicator.rank == 0 else { return }
        let text = profile.text(moduleDepth: f.moduleDepth, topModules: f.topModules, detailed: f.detailed)
        log(text)
        try profile.json.write(to: (c.output.dir as NSString).appendingPathComponent("flops_profile.json"))
        if let file = f.outputFile { try AtomicFile.write(Data((text + "\n").utf8), to: file) }
    }
}
