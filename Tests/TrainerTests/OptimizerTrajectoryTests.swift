import XCTest
import Formats
import Kernels
import SafeTensors
import Tensors
@testable import Trainer
@testable import Engine

/// 20 steps of PyTorch's AdamW / SGD on a tiny Llama's parameters, in transformers Trainer's loop
/// (clip_grad_norm_ → optimizer.step → scheduler.step), with the decay / no-decay groups and frozen
/// parameters transformers builds, replayed on flat buffers from Tests/Fixtures/optim.
/// Tolerances: every tensor's final parameters within 1e-6 relative (max |Δ| / max |reference|);
/// AdamW's exp_avg, exp_avg_sq, max_exp_avg_sq likewise; each step's pre-clip norm within 1e-6
/// relative; the lr fed to each step within 1e-12 relative.
final class OptimizerTrajectoryTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/optim")

    struct Fixture {
        let json: JSONValue
        let file: SafeTensorsFile
        let layout: ParameterLayout

        init() throws {
            json = try JSONValue.read(path: OptimizerTrajectoryTests.fixtures.appendingPathComponent("trajectory.json").path)
            file = try SafeTensorsFile(path: OptimizerTrajectoryTests.fixtures.appendingPathComponent("trajectory.safetensors").path)
            var layout = ParameterLayout()
            for p in json["parameters"]!.arrayValue! {
                layout.append(p["name"]!.stringValue!, shape: p["shape"]!.arrayValue!.map { $0.intValue! }, group: 0)
            }
            self.layout = layout
        }

        func floats(_ name: String) throws -> [Float] {
            let raw = try file.rawBytes(name)
            return Array(raw.bindMemory(to: Float.self))
        }

        /// The fixture tensors `prefix.<param>` laid out as one flat buffer.
        func flat(_ prefix: String) throws -> FlatBuffer {
            let buffer = FlatBuffer(dtype: .f32, count: layout.totalCount)
            for e in layout.entries {
                let values = try floats("\(prefix).\(e.name)")
                values.withUnsafeBufferPointer { buffer.store($0, at: e.offset) }
            }
            return buffer
        }
    }

    /// The largest relative error seen per fixture prefix, printed for the record.
    var worst: [String: Float] = [:]

    func assertTensorsClose(_ got: FlatBuffer, _ prefix: String, _ f: Fixture, names: [String]? = nil,
                            rel: Float = 1e-6, file: StaticString = #filePath, line: UInt = #line) throws {
        for e in f.layout.entries where names?.contains(e.name) ?? true {
            let ref = try f.floats("\(prefix).\(e.name)")
            let mine = Array(got.floats(e.range))
            let scale = max(ref.map(abs).max() ?? 0, 1e-30)
            let err = zip(mine, ref).map { abs($0 - $1) }.max() ?? 0
            worst[prefix] = max(worst[prefix] ?? 0, err / scale)
            XCTAssertLessThanOrEqual(err / scale, rel, "\(prefix).\(e.name): max |Δ| \(err), scale \(scale)",
                                     file: file, line: line)
        }
    }

    func schedule(_ spec: JSONValue, baseLR: Double) -> LRSchedule {
        switch spec["type"]!.stringValue! {
        case "linear":
            return .linear(baseLR: baseLR, LinearScheduleConfig(numWarmupSteps: spec["num_warmup_steps"]!.intValue!,
                                                                numTrainingSteps: spec["num_training_steps"]!.intValue!))
        case "cosine":
            return .cosine(baseLR: baseLR, CosineScheduleConfig(numWarmupSteps: spec["num_warmup_steps"]!.intValue!,
                                                                numTrainingSteps: spec["num_training_steps"]!.intValue!))
        default:
            return .constant(baseLR: baseLR, ConstantScheduleConfig())
        }
    }

    func testTrajectoriesMatchPyTorch() throws {
        let f = try Fixture()
        let steps = f.json["steps"]!.intValue!, maxNorm = f.json["max_norm"]!.doubleValue!
        let decayNames = Set(f.json["decay"]!.arrayValue!.map { $0.stringValue! })
        let n = f.layout.totalCount
        var runsChecked = 0
        for run in f.json["runs"]!.arrayValue! {
            let name = run["name"]!.stringValue!, args = run["args"]!
            let frozen = Set(run["frozen"]!.arrayValue!.map { $0.stringValue! })
            let groups = ParameterGroups(layout: f.layout, weightDecay: args["weight_decay"]!.doubleValue!, frozen: frozen)
            XCTAssertEqual(Set(groups.decay.names), decayNames.subtracting(frozen), "\(name): decay group")
            let lrSchedule = schedule(run["schedule"]!, baseLR: args["lr"]!.doubleValue!)
            let expectedLRs = run["lrs"]!.arrayValue!.map { $0.doubleValue! }
            let expectedNorms = run["grad_norms"]!.arrayValue!.map { $0.doubleValue! }

            let params = try f.flat("init"), grads = FlatBuffer(dtype: .f32, count: n)
            let m = FlatBuffer(dtype: .f32, count: n), v = FlatBuffer(dtype: .f32, count: n)
            let amsgrad = args["amsgrad"]?.boolValue ?? false
            let maxV = FlatBuffer(dtype: .f32, count: n)
            for t in 0..<steps {
                let g = try f.flat("grad.\(t)")
                _ = grads.floats.update(fromContentsOf: UnsafeBufferPointer(g.floats))
                let lr = lrSchedule.lr(step: t)
                XCTAssertEqual(lr, expectedLRs[t], accuracy: 1e-12 * abs(expectedLRs[t]), "\(name) lr at step \(t)")
                let clip = GradientClipping.clip(grads.floats, ranges: groups.trainableRanges, maxNorm: maxNorm)
                XCTAssertEqual(Double(clip.norm), expectedNorms[t], accuracy: 1e-6 * expectedNorms[t], "\(name) norm at step \(t)")
                for seg in groups.segments(within: 0..<n) {
                    let r = seg.range
                    if run["optimizer"]!.stringValue! == "adamw" {
                        let betas = args["betas"]!.arrayValue!.map { $0.doubleValue! }
                        let c = AdamWCoefficients(lr: lr, beta1: betas[0], beta2: betas[1], eps: args["eps"]!.doubleValue!,
                                                  weightDecay: seg.weightDecay, step: t + 1)
                        AdamW.step(AdamWRange(params: params.floats.baseAddress! + r.lowerBound,
                                              grads: grads.floats.baseAddress! + r.lowerBound,
                                              expAvg: m.floats.baseAddress! + r.lowerBound,
                                              expAvgSq: v.floats.baseAddress! + r.lowerBound,
                                              maxExpAvgSq: amsgrad ? maxV.floats.baseAddress! + r.lowerBound : nil,
                                              count: r.count), c)
                    } else {
                        let c = SGDCoefficients(lr: lr, momentum: args["momentum"]!.doubleValue!,
                                                dampening: args["dampening"]!.doubleValue!, weightDecay: seg.weightDecay,
                                                nesterov: args["nesterov"]!.boolValue!)
                        SGD.step(SGDRange(params: params.floats.baseAddress! + r.lowerBound,
                                          grads: grads.floats.baseAddress! + r.lowerBound,
                                          momentumBuffer: m.floats.baseAddress! + r.lowerBound, count: r.count),
                                 c, isFirstStep: t == 0)
                    }
                }
            }
            try assertTensorsClose(params, "\(name).final", f)
            if run["optimizer"]!.stringValue! == "adamw" {
                let trainable = f.layout.entries.map(\.name).filter { !frozen.contains($0) }
                try assertTensorsClose(m, "\(name).exp_avg", f, names: trainable)
                try assertTensorsClose(v, "\(name).exp_avg_sq", f, names: trainable)
                if amsgrad { try assertTensorsClose(maxV, "\(name).max_exp_avg_sq", f, names: trainable) }
            }
            for e in f.layout.entries where frozen.contains(e.name) {
                XCTAssertEqual(Array(params.floats(e.range)), try f.floats("init.\(e.name)"), "\(name): frozen \(e.name) moved")
                XCTAssertTrue(m.floats(e.range).allSatisfy { $0 == 0 }, "\(name): frozen \(e.name) got state")
            }
            runsChecked += 1
        }
        XCTAssertEqual(runsChecked, 5)
        for (k, w) in worst.sorted(by: { $0.key < $1.key }) { print("worst relative error \(k): \(w)") }
    }

    /// One step from a non-zero state, no clipping, 1003 elements (SIMD body and scalar tail), both
    /// branches of PyTorch's lerp and both SGD momentum forms. Tolerances: AdamW's m and v, and SGD's
    /// parameters and momentum buffer, bit-identical (they involve no sqrt, see AdamW.swift); AdamW's
    /// parameters within 2 ulp of the reference (PyTorch's f32 sqrt is off by one ulp in places).
    func testSingleStepsMatchPyTorchBitForBit() throws {
        let f = try Fixture()
        let p0 = try f.floats("single.p"), g = try f.floats("single.g")
        let m0 = try f.floats("single.m"), v0 = try f.floats("single.v")
        let cases = f.json["single_steps"]!.arrayValue!
        XCTAssertEqual(cases.count, 4)
        for c in cases {
            let name = c["name"]!.stringValue!
            var p = p0, m = m0, v = v0
            p.withUnsafeMutableBufferPointer { pp in m.withUnsafeMutableBufferPointer { mp in
                v.withUnsafeMutableBufferPointer { vp in g.withUnsafeBufferPointer { gp in
                    if c["optimizer"]!.stringValue! == "adamw" {
                        let betas = c["betas"]!.arrayValue!.map { $0.doubleValue! }
                        let k = AdamWCoefficients(lr: c["lr"]!.doubleValue!, beta1: betas[0], beta2: betas[1],
                                                  eps: c["eps"]!.doubleValue!, weightDecay: c["weight_decay"]!.doubleValue!,
                                                  step: c["step"]!.intValue!)
                        AdamW.step(AdamWRange(params: pp.baseAddress!, grads: gp.baseAddress!, expAvg: mp.baseAddress!,
                                              expAvgSq: vp.baseAddress!, count: gp.count), k)
                    } else {
                        let k = SGDCoefficients(lr: c["lr"]!.doubleValue!, momentum: c["momentum"]!.doubleValue!,
                                                dampening: c["dampening"]!.doubleValue!,
                                                weightDecay: c["weight_decay"]!.doubleValue!, nesterov: c["nesterov"]!.boolValue!)
                        SGD.step(SGDRange(params: pp.baseAddress!, grads: gp.baseAddress!, momentumBuffer: mp.baseAddress!,
                                          count: gp.count), k, isFirstStep: false)
                    }
                } }
            } }
            let refP = try f.floats("single.\(name).p"), refM = try f.floats("single.\(name).m")
            XCTAssertEqual(zip(m, refM).filter { $0.0.bitPattern != $0.1.bitPattern }.count, 0, "\(name): m bits")
            if c["optimizer"]!.stringValue! == "adamw" {
                let refV = try f.floats("single.\(name).v")
                XCTAssertEqual(zip(v, refV).filter { $0.0.bitPattern != $0.1.bitPattern }.count, 0, "\(name): v bits")
                let worst = zip(p, refP).map { abs(Int64($0.0.bitPattern) - Int64($0.1.bitPattern)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 2, "\(name): parameters in ulp")
            } else {
                XCTAssertEqual(zip(p, refP).filter { $0.0.bitPattern != $0.1.bitPattern }.count, 0, "\(name): p bits")
            }
        }
    }
}
