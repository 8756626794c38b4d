import Foundation
import XCTest
import Formats
@testable import Trainer

/// TensorBoard as a metrics sink. The fixture `Tests/Fixtures/tensorboard/events.out.tfevents.fixture`
/// is what this sink writes for `Self.records` with a fixed clock (checked byte for byte here), and
/// `scalars.json` is what TensorBoard 2.21's own reader (EventAccumulator, which checks every CRC) found
/// in it (Scripts/reference/gen_tensorboard.py): every scalar at its step, exactly (float32).
final class TensorBoardSinkTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tensorboard").path

    /// Five steps of an fp16 run: step 2 overflowed (skipped, no grad norm), eval at steps 2 and 5.
    static let records: [Either] = [
        .step(StepMetrics(step: 1, epoch: 0.2, loss: 3.25, learningRate: 1e-4, gradNorm: 1.5, tokens: 512, tokensPerSecond: 800.5, lossScale: 65536, elapsedSeconds: 0.6)),
        .step(StepMetrics(step: 2, epoch: 0.4, loss: 3.125, learningRate: 1e-4, gradNorm: nil, tokens: 512, tokensPerSecond: 810, lossScale: 65536, skipped: true, elapsedSeconds: 1.2)),
        .eval(EvalMetrics(step: 2, evalLoss: 3.0, evalTokens: 100)),
        .step(StepMetrics(step: 3, epoch: 0.6, loss: 2.9, learningRate: 9.5e-5, gradNorm: 1.25, tokens: 480, tokensPerSecond: 790.25, lossScale: 32768, elapsedSeconds: 1.8)),
        .step(StepMetrics(step: 4, epoch: 0.8, loss: 2.7, learningRate: 9e-5, gradNorm: 0.875, tokens: 512, tokensPerSecond: 805, lossScale: 32768, elapsedSeconds: 2.4)),
        .step(StepMetrics(step: 5, epoch: 1.0, loss: 2.5, learningRate: 8.5e-5, gradNorm: 0.75, tokens: 500, tokensPerSecond: 801, lossScale: 32768, elapsedSeconds: 3.0)),
        .eval(EvalMetrics(step: 5, evalLoss: 2.6, evalTokens: 100)),
    ]
    enum Either { case step(StepMetrics), eval(EvalMetrics) }

    /// The events the sink writes for `records`, wall times 1700000000.0, .5, 1.0, ...
    static func writeFixtureRun(into directory: String) throws -> String {
        var t = 1_700_000_000.0
        let sink = try TensorBoardMetricsSink(directory: directory, clock: { defer { t += 0.5 }; return Date(timeIntervalSince1970: t) })
        let log = MetricsLog(sinks: [sink])
        for r in records {
            switch r {
            case .step(let m): log.log(m)
            case .eval(let e): log.log(e)
            }
        }
        return sink.writer.path
    }

    func testEventFileIsTheFixtureTensorBoardRead() throws {
        let dir = NSTemporaryDirectory() + "sf-tb-fixture-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try Self.writeFixtureRun(into: dir)
        let written = try Data(contentsOf: URL(fileURLWithPath: path))
        if let out = ProcessInfo.processInfo.environment["SF_WRITE_TENSORBOARD_FIXTURE"] { try written.write(to: URL(fileURLWithPath: out)) }
        XCTAssertEqual(written, try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/events.out.tfevents.fixture")),
                       "the sink's bytes for Self.records changed: regenerate the fixture and scalars.json")

        // What TensorBoard read, against what the records say (float32 values, exactly).
        let read = try JSONValue.read(path: Self.fixtures + "/scalars.json")
        var expected: [String: [(Int, Float)]] = [:]
        let tags = TensorBoardMetricsSink.tags
        for r in Self.records {
            switch r {
            case .step(let m):
                expected[tags.loss, default: []].append((m.step, Float(m.loss)))
                expected[tags.learningRate, default: []].append((m.step, Float(m.learningRate)))
                if let g = m.gradNorm { expected[tags.gradNorm, default: []].append((m.step, Float(g))) }
                expected[tags.tokensPerSecond, default: []].append((m.step, Float(m.tokensPerSecond)))
                if let s = m.lossScale { expected[tags.lossScale, default: []].append((m.step, Float(s))) }
            case .eval(let e):
                expected[tags.evalLoss, default: []].append((e.step, Float(e.evalLoss)))
                expected[tags.perplexity, default: []].append((e.step, Float(e.perplexity)))
            }
        }
        let scalars = try XCTUnwrap(read["scalars"]?.objectValue)
        XCTAssertEqual(Set(scalars.keys), Set(expected.keys))
        for (tag, points) in expected {
            let got = try XCTUnwrap(scalars[tag]?.arrayValue, tag)
            XCTAssertEqual(got.map { $0["step"]?.intValue ?? -1 }, points.map(\.0), tag)
            XCTAssertEqual(got.map { Float($0["value"]?.doubleValue ?? .nan) }, points.map(\.1), tag)
        }
        XCTAssertEqual(read["file_version"]?.stringValue, "brain.Event:2")
        XCTAssertEqual(read["records"]?.intValue, 1 + Self.records.count, "the header, then one event per record")
    }

    /// A real run with `logging.tensorboard`: events in output_path/job_name, one per step and evaluation,
    /// each step's scalars equal to metrics.jsonl's (rank 0 is the only rank here).
    func testTrainingRunWritesEveryScalarAtItsStep() throws {
        let out = NSTemporaryDirectory() + "sf-tb-run-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var c = TrainerAPITests.configuration(output: out)
        c.training.maxSteps = 4
        c.training.evalSteps = 2
        c.output.saveSteps = nil
        c.logging.tensorboard = true
        c.logging.tensorboardJobName = "tiny_job"
        let recorder = TrainerAPITests.Recorder()
        let trainer = try Trainer(configuration: c, log: { _ in })
        trainer.addCallback(recorder)
        _ = try trainer.train()
        let folder = out + "/tiny_job"
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1)
        let events = try EventFileReader.read(path: folder + "/" + files[0])
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        let losses = events.flatMap { e in e.values.filter { $0.tag == "train/loss" }.map { (e.step, $0.value) } }
        XCTAssertEqual(losses.map(\.0), [1, 2, 3, 4])
        XCTAssertEqual(losses.map(\.1), recorder.steps.map { Float($0.loss) })
        let lrs = events.flatMap { e in e.values.filter { $0.tag == "train/learning_rate" }.map { $0.value } }
        XCTAssertEqual(lrs, recorder.steps.map { Float($0.learningRate) })
        let evals = events.flatMap { e in e.values.filter { $0.tag == "eval/loss" }.map { _ in e.step } }
        XCTAssertEqual(evals, [0, 2, 4], "before training, then every eval_steps")
    }
}

/// A reader of the records this project writes (test support): frames with both CRCs checked, Events
/// decoded for the fields the writer uses.
enum EventFileReader {
    struct Event { var wallTime = 0.0, step = 0, fileVersion: String?, values: [(tag: String, value: Float)] = [] }
    struct Corrupt: Error, CustomStringConvertible { let description: String }

    static func read(path: String) throws -> [Event] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var events: [Event] = [], i = 0
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        while i < bytes.count {
            guard i + 12 <= bytes.count else { throw Corrupt(description: "truncated header at \(i)") }
            let length = Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * $1) })
            guard u32(i + 8) == CRC32C.masked(CRC32C.checksum(bytes[i..<i + 8])) else { throw Corrupt(description: "length crc at \(i)") }
            let data = Array(bytes[i + 12..<i + 12 + length])
            guard u32(i + 12 + length) == CRC32C.masked(CRC32C.checksum(data)) else { throw Corrupt(description: "data crc at \(i)") }
            events.append(try decode(data))
            i += 16 + length
        }
        return events
    }

    private static func fields(_ b: [UInt8]) throws -> [(field: Int, varint: UInt64, bytes: [UInt8])] {
        var out: [(Int, UInt64, [UInt8])] = [], i = 0
        func varint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                let x = b[i]
                i += 1
                v |= UInt64(x & 0x7F) << shift
                shift += 7
                if x < 0x80 { return v }
            }
        }
        while i < b.count {
            let key = varint()
            switch key & 7 {
            case 0: out.append((Int(key >> 3), varint(), []))
            case 1: out.append((Int(key >> 3), 0, Array(b[i..<i + 8]))); i += 8
            case 5: out.append((Int(key >> 3), 0, Array(b[i..<i + 4]))); i += 4
            case 2: let n = Int(varint()); out.append((Int(key >> 3), 0, Array(b[i..<i + n]))); i += n
            default: throw Corrupt(description: "wire type \(key & 7)")
            }
        }
        return out
    }

    private static func decode(_ data: [UInt8]) throws -> Event {
        var e = Event()
        for f in try fields(data) {
            switch f.field {
            case 1: e.wallTime = Double(bitPattern: f.bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
            case 2: e.step = Int(Int64(bitPattern: f.varint))
            case 3: e.fileVersion = String(decoding: f.bytes, as: UTF8.self)
            case 5:
                for v in try fields(f.bytes) where v.field == 1 {
                    var tag = "", value: Float = .nan
                    for x in try fields(v.bytes) {
                        if x.field == 1 { tag = String(decoding: x.bytes, as: UTF8.self) }
                        if x.field == 2 { value = Float(bitPattern: x.bytes.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }) }
                    }
                    e.values.append((tag, value))
                }
            default: break
            }
        }
        return e
    }
}
