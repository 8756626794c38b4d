import Foundation
import XCTest
import Distributed
import Models
@testable import Trainer

/// The wall-clock breakdown: the parts of a step add up to the step, collectives land in their kind,
/// and every `steps_per_print` steps the medians are one line.
final class StepTimingTests: XCTestCase {
    func testMedianLineEveryNSteps() {
        var b = WallClockBreakdown(every: 3)
        func times(_ f: Double) -> StepTimes {
            var t = StepTimes()
            t.forward = f; t.backward = 2 * f; t.optimizer = 0.001; t.communication = [.reduceScatter: f / 10]; t.step = 3.2 * f
            return t
        }
        XCTAssertNil(b.record(times(0.010), step: 1))
        XCTAssertNil(b.record(times(0.030), step: 2))
        let line = b.record(times(0.020), step: 3)
        XCTAssertEqual(line, "step 3: wall-clock breakdown, median of 3 step(s), ms: forward 20.00, backward 40.00, communication 2.00 "
                       + "(all-reduce 0.00, reduce-scatter 2.00, gather 0.00, send/receive 0.00, other 0.00), optimizer step 1.00, other 0.00, step 64.00")
        XCTAssertNil(b.record(times(0.010), step: 4), "a new window")
        XCTAssertEqual(WallClockBreakdown.median([4, 1, 3, 2]), 2.5)
    }

    /// Two ranks in threads, ZeRO-2: every rank's step splits into parts that sum to its step time, with
    /// the gradients' reduce-scatter under communication and compute in forward and backward.
    func testStepPartsAddUpOnTwoRanksUnderZeRO2() throws {
        let out = NSTemporaryDirectory() + "sf-timing-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        final class Times: TrainerCallback {
            weak var trainer: Trainer?
            var steps: [StepTimes] = []
            func trainer(didStep m: StepMetrics) {
                if let t = trainer?.lastStepTimes { steps.append(t) }
                XCTAssertEqual(m.times, trainer?.lastStepTimes, "the step's record carries its breakdown")
            }
        }
        let runs = try ThreadCommunicator.run(worldSize: 2) { comm -> [StepTimes] in
            var c = TrainerAPITests.configuration(output: out)
            c.training.maxSteps = 3
            c.training.evalSteps = nil
            c.data.eval = nil
            c.output.saveSteps = nil
            c.engine.zeroStage = 2
            c.logging.wallClockBreakdown = true
            let trainer = try Trainer(configuration: c, communicator: comm, log: { _ in })
            let times = Times()
            times.trainer = trainer
            trainer.addCallback(times)
            _ = try trainer.train()
            return times.steps
        }
        for steps in runs {
            XCTAssertEqual(steps.count, 3)
            for t in steps {
                XCTAssertEqual(t.partsSum, t.step, accuracy: 1e-9, "the parts are the step")
                XCTAssertGreaterThan(t.forward, 0)
                XCTAssertGreaterThan(t.backward, t.forward / 4, "backward does about twice forward's work")
                XCTAssertGreaterThan(t.optimizer, 0)
                XCTAssertGreaterThan(t.communication[.reduceScatter] ?? 0, 0, "ZeRO-2 reduce-scatters gradients")
                XCTAssertGreaterThanOrEqual(t.other, -1e-9)
                let blocks = t.pieces.keys.filter { if case .block = $0 { return true }; return false }
                XCTAssertEqual(blocks.count, 4, "the quickstart model's blocks: \(t.pieces.keys)")
                XCTAssertNotNil(t.pieces[.embedding])
                XCTAssertNotNil(t.pieces[.headAndLoss])
            }
        }
    }
}
