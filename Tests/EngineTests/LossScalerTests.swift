import Foundation
import XCTest
@testable import Engine

/// The fp16 loss scaler against DeepSpeed 0.19.8's own `DynamicLossScaler` / static `LossScaler`
/// (fixtures from Scripts/reference/gen_loss_scaler.py). Scales are powers of two times the initial scale
/// or clamps to min_loss_scale, so every comparison is exact equality (tolerance 0), counters included.
final class LossScalerTests: XCTestCase {
    struct Fixture: Decodable {
        let source: String
        let patterns: [Pattern]
    }

    struct Pattern: Decodable {
        let name: String
        let options: EngineOptions.LossScaler
        let dynamic: Bool
        let overflows: String
        let initial: State
        let steps: [Step]
        let error: ErrorRecord?
    }

    /// Counters are null for DeepSpeed's static scaler, which keeps none.
    struct State: Decodable {
        let loss_scale: Double
        let cur_hysteresis: Int?
        let cur_iter: Int?
        let last_overflow_iter: Int?
    }

    struct Step: Decodable {
        let step: Int
        let overflow: Bool
        let scale_used: Double
        let skipped: Bool
        let skipped_steps: Int
        let loss_scale: Double
        let cur_hysteresis: Int?
        let cur_iter: Int?
        let last_overflow_iter: Int?
        var state: State { State(loss_scale: loss_scale, cur_hysteresis: cur_hysteresis, cur_iter: cur_iter, last_overflow_iter: last_overflow_iter) }
    }

    struct ErrorRecord: Decodable {
        let step: Int
        let message: String
        let state_after: State
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/loss_scaler")

    func loadFixture() throws -> Fixture {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("dynamic_loss_scaler.json"))
        return try JSONDecoder().decode(Fixture.self, from: data)
    }

    /// Exact equality of the scale and, for the dynamic scaler, of DeepSpeed's three counters. The static
    /// scaler's counters must stay at their initial values.
    func assertState(_ scaler: LossScaler, _ expected: State, _ context: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(scaler.scale, expected.loss_scale, "scale, \(context)", file: file, line: line)
        if scaler.isDynamic {
            XCTAssertEqual(scaler.curHysteresis, expected.cur_hysteresis, "cur_hysteresis, \(context)", file: file, line: line)
            XCTAssertEqual(scaler.curIter, expected.cur_iter, "cur_iter, \(context)", file: file, line: line)
            XCTAssertEqual(scaler.lastOverflowIter, expected.last_overflow_iter, "last_overflow_iter, \(context)", file: file, line: line)
        } else {
            XCTAssertNil(expected.cur_iter, context, file: file, line: line)
            XCTAssertEqual(scaler.curIter, 0, context, file: file, line: line)
            XCTAssertEqual(scaler.lastOverflowIter, -1, context, file: file, line: line)
            XCTAssertEqual(scaler.curHysteresis, scaler.hysteresis, context, file: file, line: line)
        }
    }

    func testReplaysEveryDeepSpeedPattern() throws {
        let fixture = try loadFixture()
        XCTAssertTrue(fixture.source.hasPrefix("deepspeed 0.19.8"), fixture.source)
        XCTAssertEqual(fixture.patterns.count, 16)
        var stepsChecked = 0, raises = 0, staticPatterns = 0, reductions = 0, growths = 0
        for pattern in fixture.patterns {
            var scaler = LossScaler(options: pattern.options)
            XCTAssertEqual(scaler.isDynamic, pattern.dynamic, pattern.name)
            staticPatterns += pattern.dynamic ? 0 : 1
            assertState(scaler, pattern.initial, "\(pattern.name) initial")
            var skippedSteps = 0
            for step in pattern.steps {
                let context = "\(pattern.name) step \(step.step)"
                XCTAssertEqual(scaler.scale, step.scale_used, context)
                let before = scaler.scale
                let skip = try scaler.update(overflow: step.overflow)
                XCTAssertEqual(skip, step.skipped, context)
                skippedSteps += skip ? 1 : 0
                XCTAssertEqual(skippedSteps, step.skipped_steps, context)
                assertState(scaler, step.state, context)
                reductions += scaler.scale < before ? 1 : 0
                growths += scaler.scale > before ? 1 : 0
                stepsChecked += 1
            }
            let flags = Array(pattern.overflows)
            if let error = pattern.error {
                raises += 1
                XCTAssertEqual(error.step, pattern.steps.count, pattern.name)
                XCTAssertEqual(flags[error.step], "x", pattern.name)
                let before = scaler
                XCTAssertThrowsError(try scaler.update(overflow: true), pattern.name) { thrown in
                    guard case let .scaleAtMinimum(scale, minimum, iteration)? = thrown as? LossScalerError else {
                        return XCTFail("\(pattern.name): unexpected \(thrown)")
                    }
                    XCTAssertEqual(scale, error.state_after.loss_scale, pattern.name)
                    XCTAssertEqual(minimum, pattern.options.minLossScale, pattern.name)
                    XCTAssertEqual(iteration, error.state_after.cur_iter, pattern.name)
                    XCTAssertTrue("\(thrown)".contains("engine.loss_scaler.min_loss_scale"), "\(thrown)")
                    XCTAssertTrue("\(thrown)".contains(error.message), "DeepSpeed's message quoted: \(thrown)")
                }
                XCTAssertEqual(scaler, before, "\(pattern.name): a throwing update changes nothing")
                assertState(scaler, error.state_after, "\(pattern.name) after the raise")
            } else {
                XCTAssertEqual(pattern.steps.count, flags.count, pattern.name)
            }
        }
        // The fixture really exercises every branch.
        XCTAssertEqual(stepsChecked, 562)
        XCTAssertEqual(raises, 3)
        XCTAssertEqual(staticPatterns, 2)
        XCTAssertGreaterThan(reductions, 20)
        XCTAssertGreaterThan(growths, 40)
    }

    func testCodableRoundTripKeepsStateAndContinuesIdentically() throws {
        var options = EngineOptions.LossScaler()
        options.initialScalePower = 12
        options.lossScaleWindow = 3
        options.hysteresis = 3
        options.consecutiveHysteresis = true
        options.minLossScale = 4
        var scaler = LossScaler(options: options)
        let flags = Array("xx.xxx....x.x..xxx.......x").map { $0 == "x" }
        for flag in flags.prefix(11) { _ = try scaler.update(overflow: flag) }

        let data = try JSONEncoder().encode(scaler)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(Set(object.keys), Set(LossScaler.CodingKeys.allCases.map(\.rawValue)))
        XCTAssertEqual(object["cur_scale"] as? Double, scaler.scale)
        XCTAssertEqual(object["cur_iter"] as? Int, 11)
        var restored = try JSONDecoder().decode(LossScaler.self, from: data)
        XCTAssertEqual(restored, scaler)
        for flag in flags.dropFirst(11) {
            XCTAssertEqual(try restored.update(overflow: flag), try scaler.update(overflow: flag))
            XCTAssertEqual(restored, scaler)
        }

        // A checkpoint DeepSpeed's config validator would reject does not decode.
        var corrupt = object
        corrupt["scale_window"] = 0
        let corruptData = try JSONSerialization.data(withJSONObject: corrupt)
        XCTAssertThrowsError(try JSONDecoder().decode(LossScaler.self, from: corruptData))
    }

    func testRaisesAtMinimumOnlyWhenHysteresisIsExhausted() throws {
        var options = EngineOptions.LossScaler()
        options.initialScalePower = 1
        options.hysteresis = 2
        options.minLossScale = 1
        var scaler = LossScaler(options: options)
        XCTAssertTrue(try scaler.update(overflow: true))  // hysteresis 2 -> 1, scale stays 2
        XCTAssertEqual(scaler.scale, 2)
        XCTAssertTrue(try scaler.update(overflow: true))  // halves to the minimum
        XCTAssertEqual(scaler.scale, 1)
        XCTAssertEqual(scaler.curHysteresis, 1)
        let before = scaler
        XCTAssertThrowsError(try scaler.update(overflow: true)) { error in
            XCTAssertEqual(error as? LossScalerError, .scaleAtMinimum(scale: 1, minLossScale: 1, iteration: 2))
            let message = "\(error)"
            XCTAssertTrue(message.contains("engine.loss_scaler.min_loss_scale (1.0)"), message)
            XCTAssertTrue(message.contains("iteration 2"), message)
        }
        XCTAssertEqual(scaler, before)
        XCTAssertFalse(try scaler.update(overflow: false))

        // The static scaler skips overflowing steps and never raises.
        var fixed = EngineOptions.LossScaler()
        fixed.lossScale = 1
        var staticScaler = LossScaler(options: fixed)
        XCTAssertFalse(staticScaler.isDynamic)
        for _ in 0..<5 { XCTAssertTrue(try staticScaler.update(overflow: true)) }
        XCTAssertEqual(staticScaler.scale, 1)
    }

    func testOptionsDeepSpeedRejectsThrowNamingTheKey() {
        func expectInvalid(_ key: String, _ change: (inout EngineOptions.LossScaler) -> Void) {
            var options = EngineOptions.LossScaler()
            change(&options)
            XCTAssertThrowsError(try LossScaler.validate(options), key) { error in
                guard case let .invalidOption(thrownKey, _, _)? = error as? LossScalerError else { return XCTFail("\(error)") }
                XCTAssertEqual(thrownKey, key)
                XCTAssertTrue("\(error)".hasPrefix("engine.loss_scaler.\(key) = "), "\(error)")
            }
            var scaler = LossScaler(options: options)
            XCTAssertThrowsError(try scaler.update(overflow: false), key)
        }
        expectInvalid("loss_scale_window") { $0.lossScaleWindow = 0 }
        expectInvalid("min_loss_scale") { $0.minLossScale = 0 }
        expectInvalid("initial_scale_power") { $0.initialScalePower = 1024 }
        expectInvalid("loss_scale") { $0.lossScale = -1 }
        expectInvalid("loss_scale") { $0.lossScale = .infinity }
        // Window and minimum are only checked when dynamic, as DeepSpeed does.
        var staticOptions = EngineOptions.LossScaler()
        staticOptions.lossScale = 8
        staticOptions.lossScaleWindow = 0
        XCTAssertNoThrow(try LossScaler.validate(staticOptions))
        XCTAssertNoThrow(try LossScaler.validate(EngineOptions.LossScaler()))
        XCTAssertEqual(LossScaler(options: EngineOptions.LossScaler()).scale, 65536)
    }

    /// SplitMix64, so the random cases are the same on every run.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func testHasOverflowMatchesReference() {
        var rng = SeededGenerator(state: 42)
        let poisons: [Float] = [.infinity, -.infinity, .nan, -.nan, .signalingNaN, Float(bitPattern: 0x7FC0_0001), Float(bitPattern: 0xFF80_0001)]
        // Finite extremes that must never count as overflow.
        let finite: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0, 65504, -.ulpOfOne]
        var cases = 0, positives = 0
        func check(_ values: [Float], expect: Bool, _ context: String) {
            values.withUnsafeBufferPointer { buffer in
                XCTAssertEqual(LossScaler.hasOverflowReference(buffer), expect, "reference, \(context)")
                XCTAssertEqual(LossScaler.hasOverflow(buffer), expect, "SIMD, \(context)")
                // Unaligned start: the same values one element in.
                if buffer.count > 1 {
                    let shifted = UnsafeBufferPointer(rebasing: buffer[1...])
                    XCTAssertEqual(LossScaler.hasOverflow(shifted), LossScaler.hasOverflowReference(shifted), "shifted, \(context)")
                }
            }
            cases += 1
            positives += expect ? 1 : 0
        }
        // Every length up to 3 SIMD widths plus one, clean and with a poison at every position.
        for count in 0...49 {
            var values = (0..<count).map { _ in Float.random(in: -1e4...1e4, using: &rng) }
            for i in 0..<count where i % 7 == 0 { values[i] = finite[(i / 7) % finite.count] }
            check(values, expect: false, "clean, count \(count)")
            for position in 0..<count {
                var poisoned = values
                poisoned[position] = poisons[(position + count) % poisons.count]
                check(poisoned, expect: true, "count \(count), \(poisoned[position]) at \(position)")
            }
        }
        // Long buffers crossing the early-exit blocks, poison at random and at edge positions.
        for count in [1023, 1024, 1025, 2048 + 17, 5000] {
            let values = (0..<count).map { _ in Float.random(in: -65504...65504, using: &rng) }
            check(values, expect: false, "clean, count \(count)")
            let randomPositions = (0..<6).map { _ in Int.random(in: 0..<count, using: &rng) }
            for position in [0, 15, 16, min(1023, count - 1), count - 16, count - 1] + randomPositions {
                for poison in poisons.prefix(3) {
                    var poisoned = values
                    poisoned[position] = poison
                    check(poisoned, expect: true, "count \(count), \(poison) at \(position)")
                }
            }
        }
        XCTAssertEqual(cases, 50 + (0...49).reduce(0, +) + 5 + 5 * 12 * 3)
        XCTAssertGreaterThan(positives, 1000)
    }
}
