import Foundation
import XCTest
import Formats
import SafeTensors

/// A graceful stop under mpirun. Slurm and preemptible schedulers signal the ranks themselves; here only
/// world rank 1 gets SIGTERM, and every rank must still stop after the same optimizer step (the request
/// is all-reduced once per step), write one complete checkpoint together (ZeRO-2: each rank its own
/// optimizer shard) and exit 143. `resume: auto` on the same 2 ranks then ends exactly where an
/// uninterrupted 2-rank run ends: the same per-step losses and the same final weights (tolerance 0).
final class GracefulStopMPITests: XCTestCase {
    typealias T = TrainingEquivalenceTests

    func testSIGTERMToOneRankStopsEveryRankAtOneStepAndTheResumedRunIsIdentical() throws {
        let work = try scratchDirectory("graceful-mpi")
        let steps = 120
        let overrides = ["output.save_steps=null", "training.max_steps=\(steps)"]
        let mpirun = ["mpirun", "-np", "2", "--oversubscribe", BoundedProcess.binary]

        let (wholeRecipe, wholeOut) = try T.writeRecipe(ranks: 2, stage: 2, work: work, name: "whole", steps: steps)
        let whole = try BoundedProcess.run(mpirun + [wholeRecipe] + overrides, timeout: 300)
        XCTAssertFalse(whole.failed, whole.stderr)

        let (recipe, out) = try T.writeRecipe(ranks: 2, stage: 2, work: work, name: "stopped", steps: steps)
        let tag = UUID().uuidString
        let signaller = StageKiller(tag: tag, worldRank: 1, startedWhen: out + "/metrics.jsonl", signal: SIGTERM, afterLines: 5)
        let thread = Thread { signaller.run() }
        thread.start()
        let stopped = try BoundedProcess.run(mpirun + [recipe] + overrides, environment: ["SF_PIPELINE_TEST_TAG": tag], timeout: 300)
        XCTAssertNotNil(signaller.secondsBeforeKill, "rank 1 was never found running: \(stopped.stderr)")
        XCTAssertTrue(stopped.failed && !stopped.timedOut, "exit \(stopped.exitCode): \(stopped.stderr)")
        XCTAssertTrue(stopped.stderr.contains("exit code 143") || stopped.exitCode == 143, "exit \(stopped.exitCode): \(stopped.stderr)")
        let latest = try String(contentsOfFile: out + "/latest", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let step = try XCTUnwrap(Int(latest.dropFirst("global_step".count)), latest)
        XCTAssertTrue((5..<steps).contains(step), "stopped at \(latest), after the signal and before the end")
        XCTAssertTrue(stopped.stderr.contains("SIGTERM: stopped after step \(step) of \(steps) and saved \(out)/\(latest)"), stopped.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: out + "/" + latest)
        XCTAssertTrue(files.contains("zero_rank0_optim_states.safetensors") && files.contains("zero_rank1_optim_states.safetensors"),
                      "both ranks saved the same step: \(files)")
        // No rank went on past the step the other stopped at.
        XCTAssertEqual(try T.lossesByStep(out).keys.max(), step)

        let resumed = try BoundedProcess.run(mpirun + [recipe] + overrides + ["resume=auto"], timeout: 300)
        XCTAssertFalse(resumed.failed, resumed.stderr)
        let a = try T.lossesByStep(wholeOut), b = try T.lossesByStep(out)
        XCTAssertEqual(a.count, steps)
        XCTAssertEqual(a, b, "the stopped and resumed run logs every step with the uninterrupted run's loss")
        let wa = try SafeTensorsFile(path: wholeOut + "/final/model.safetensors"), wb = try SafeTensorsFile(path: out + "/final/model.safetensors")
        XCTAssertEqual(wa.names.sorted(), wb.names.sorted())
        for name in wa.names { XCTAssertEqual(try wa.floats(name), try wb.floats(name), name) }
        print("SIGTERM to rank 1 of 2 after \(String(format: "%.2f", signaller.secondsBeforeKill ?? 0)) s: both stopped after step \(step), resumed to \(steps) identically")
    }
}
