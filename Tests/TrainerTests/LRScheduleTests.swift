import XCTest
import Formats
@testable import Trainer

/// Every schedule in Tests/Fixtures/optim/schedules.json (8 transformers configs, 8 DeepSpeed configs,
/// 60 optimizer steps each, produced by transformers 5.23 and deepspeed 0.19.8's lr_schedules.py driven
/// the way each trainer drives them). The configs are decoded from the fixture's own parameter objects
/// (the transformers / ds_config key names). Tolerance: 1e-12 relative per lr (1e-18 absolute at 0).
final class LRScheduleTests: XCTestCase {
    struct UnknownSchedule: Error { let type: String }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/optim")

    func makeSchedule(type: String, baseLR: Double, params: JSONValue) throws -> LRSchedule {
        let decoder = JSONValueDecoder(source: "schedules.json \(type)")
        switch type {
        case "constant", "constant_with_warmup":
            return .constant(baseLR: baseLR, try decoder.decode(ConstantScheduleConfig.self, from: params))
        case "linear":
            return .linear(baseLR: baseLR, try decoder.decode(LinearScheduleConfig.self, from: params))
        case "cosine", "cosine_with_min_lr":
            return .cosine(baseLR: baseLR, try decoder.decode(CosineScheduleConfig.self, from: params))
        case "WarmupLR", "WarmupDecayLR":
            return .deepSpeedWarmup(baseLR: baseLR, try decoder.decode(DeepSpeedWarmupConfig.self, from: params))
        case "WarmupCosineLR":
            return .deepSpeedWarmupCosine(baseLR: baseLR, try decoder.decode(DeepSpeedWarmupCosineConfig.self, from: params))
        default:
            throw UnknownSchedule(type: type)
        }
    }

    func testAllSchedulesMatchReferences() throws {
        let cases = try JSONValue.read(path: Self.fixtures.appendingPathComponent("schedules.json").path).arrayValue!
        var counts: [String: Int] = [:]
        for c in cases {
            let type = c["type"]!.stringValue!, base = c["base_lr"]!.doubleValue!
            let schedule = try makeSchedule(type: type, baseLR: base, params: c["params"]!).validated()
            let expected = c["lrs"]!.arrayValue!.map { $0.doubleValue! }
            XCTAssertEqual(expected.count, 60)
            for (step, want) in expected.enumerated() {
                let got = schedule.lr(step: step)
                XCTAssertEqual(got, want, accuracy: max(1e-12 * abs(want), 1e-18), "\(type) \(c["params"]!) step \(step)")
            }
            counts[c["family"]!.stringValue!, default: 0] += 1
        }
        XCTAssertEqual(counts, ["transformers": 8, "deepspeed": 8])
    }

    func testFirstStepConventions() {
        // transformers: the first optimizer step uses lambda(0), which is 0 under warmup.
        XCTAssertEqual(LRSchedule.linear(baseLR: 1, LinearScheduleConfig(numWarmupSteps: 4, numTrainingSteps: 10)).lr(step: 0), 0)
        // DeepSpeed: the first step runs at iteration −1 (warmup_min_lr), the second at iteration 0 (also min).
        let ds = LRSchedule.deepSpeedWarmup(baseLR: 1, DeepSpeedWarmupConfig(warmupMinLR: 0.25, warmupNumSteps: 4))
        XCTAssertEqual(ds.lr(step: 0), 0.25)
        XCTAssertEqual(ds.lr(step: 1), 0.25)
        XCTAssertEqual(ds.lr(step: 100), 1)
        XCTAssertEqual(LRSchedule.deepSpeedWarmupCosine(baseLR: 1, DeepSpeedWarmupCosineConfig(totalNumSteps: 10)).lr(step: 0), 0)
    }

    func testDefaultsAndValidation() throws {
        let decoder = JSONValueDecoder(source: "test")
        let ds = try decoder.decode(DeepSpeedWarmupCosineConfig.self, from: try JSONValue.parse(#"{"total_num_steps": 100}"#))
        XCTAssertEqual(ds, DeepSpeedWarmupCosineConfig(totalNumSteps: 100, warmupMinRatio: 0, warmupNumSteps: 1000,
                                                       cosMinRatio: 0.0001, warmupType: .log))
        let warm = try decoder.decode(DeepSpeedWarmupConfig.self, from: try JSONValue.parse(#"{"warmup_type": "linear"}"#))
        XCTAssertEqual(warm, DeepSpeedWarmupConfig(warmupMinLR: 0, warmupMaxLR: nil, warmupNumSteps: 1000, warmupType: .linear))
        XCTAssertThrowsError(try decoder.decode(LinearScheduleConfig.self, from: try JSONValue.parse("{}")))
        XCTAssertThrowsError(try decoder.decode(DeepSpeedWarmupConfig.self, from: try JSONValue.parse(#"{"warmup_type": "cubic"}"#)))

        XCTAssertThrowsError(try LRSchedule.deepSpeedWarmup(baseLR: 1, DeepSpeedWarmupConfig(warmupNumSteps: 0)).validated()) {
            XCTAssertTrue("\($0)".contains("warmup_num_steps = 0"), "\($0)")
        }
        XCTAssertThrowsError(try LRSchedule.deepSpeedWarmupCosine(baseLR: 1, DeepSpeedWarmupCosineConfig(totalNumSteps: 5, warmupNumSteps: -1)).validated())
        XCTAssertThrowsError(try LRSchedule.cosine(baseLR: 1, CosineScheduleConfig(numTrainingSteps: 5, minLR: 0.1, minLRRate: 0.1)).validated())
        XCTAssertNoThrow(try LRSchedule.cosine(baseLR: 1, CosineScheduleConfig(numTrainingSteps: 5, minLR: 0.1)).validated())
    }
}
