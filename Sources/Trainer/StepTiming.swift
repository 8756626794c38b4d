import Distributed
import Foundation
import Models
import Tensors

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// The collectives a step's communication time is split into (DeepSpeed's wall-clock breakdown names).
public enum CommunicationKind: String, CaseIterable, Sendable {
    case allReduce = "all-reduce", reduceScatter = "reduce-scatter", gather, sendReceive = "send/receive", other
}

/// The engine's communicator with a stopwatch on every call: each collective's time is added to its
/// kind. An asynchronous gather counts the time spent waiting for it (the part not hidden by compute).
final class TimedCommunicator: Communicator {
    let base: Communicator
    private(set) var seconds: [CommunicationKind: Double] = [:]

    init(_ base: Communicator) { self.base = base }

    var rank: Int { base.rank }
    var worldSize: Int { base.worldSize }
    var total: Double { seconds.values.reduce(0, +) }

    func timed<T>(_ kind: CommunicationKind, _ body: () throws -> T) rethrows -> T {
        let t0 = monotonicSeconds()
        defer { seconds[kind, default: 0] += monotonicSeconds() - t0 }
        return try body()
    }

    final class TimedPending: PendingCollective {
        let inner: PendingCollective
        unowned let owner: TimedCommunicator
        init(_ inner: PendingCollective, owner: TimedCommunicator) { self.inner = inner; self.owner = owner }
        func wait() throws { try owner.timed(.gather) { try inner.wait() } }
        func progress() throws { try inner.progress() }
    }

    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws {
        try timed(.allReduce) { try base.allReduce(buffer, count: count, op: op) }
    }
    func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws {
        try timed(.allReduce) { try base.allReduce(buffer, count: count, op: op) }
    }
    func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try timed(.reduceScatter) { try base.reduceScatter(input: input, output: output, blockCount: blockCount) }
    }
    func allReduce(halves buffer: UnsafeMutablePointer<UInt16>, count: Int, format: HalfFormat) throws {
        try timed(.allReduce) { try base.allReduce(halves: buffer, count: count, format: format) }
    }
    func reduceScatter(halves input: UnsafePointer<UInt16>, output: UnsafeMutablePointer<UInt16>, blockCount: Int, format: HalfFormat) throws {
        try timed(.reduceScatter) { try base.reduceScatter(halves: input, output: output, blockCount: blockCount, format: format) }
    }
    func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try timed(.gather) { try base.allGather(input: input, output: output, blockCount: blockCount) }
    }
    func startAllGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws -> PendingCollective {
        TimedPending(try timed(.gather) { try base.startAllGather(input: input, output: output, blockCount: blockCount) }, owner: self)
    }
    func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {
        try timed(.gather) { try base.allGatherBytes(input: input, output: output, blockBytes: blockBytes) }
    }
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try timed(.other) { try base.broadcast(buffer, bytes: bytes, root: root) }
    }
    func send(_ buffer: UnsafeRawPointer, bytes: Int, to rank: Int, tag: Int) throws {
        try timed(.sendReceive) { try base.send(buffer, bytes: bytes, to: rank, tag: tag) }
    }
    func receive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from rank: Int, tag: Int) throws {
        try timed(.sendReceive) { try base.receive(buffer, bytes: bytes, from: rank, tag: tag) }
    }
    func barrier() throws { try timed(.other) { try base.barrier() } }
    func abort(message: String, code: Int32) -> Never { base.abort(message: message, code: code) }
}

/// Where one optimizer step's time went, in seconds. The parts add up to `step` by construction:
/// `other` is the micro-steps' time outside the schedule's compute and the collectives (hooks' own
/// work: gradient conversion, gather bookkeeping, offload reads).
public struct StepTimes: Sendable, Equatable {
    public var forward = 0.0, backward = 0.0, optimizer = 0.0, other = 0.0, step = 0.0
    public var communication: [CommunicationKind: Double] = [:]
    /// Compute time per schedule piece (forward and backward together; the head's fused kernel whole;
    /// a block's attention and MLP also inside their block's).
    public var pieces: [SchedulePiece: Double] = [:]
    public var communicationTotal: Double { communication.values.reduce(0, +) }
    public var partsSum: Double { forward + backward + optimizer + other + communicationTotal }
}

/// The stopwatch of one step: the schedule pieces' compute (`ScheduleTimer`), the collectives (through
/// `TimedCommunicator`) and the phases the Trainer marks.
final class StepTiming: ScheduleTimer {
    let communicator: TimedCommunicator
    private var started = 0.0, optimizerStarted = 0.0, pieceStarted = 0.0, innerStarted = 0.0
    private var commAtStart: [CommunicationKind: Double] = [:], commAtOptimizer = 0.0
    private var current = StepTimes()

    init(communicator: TimedCommunicator) { self.communicator = communicator }

    func begin(_ piece: SchedulePiece, backward: Bool) {
        if piece.isInsideBlock { innerStarted = monotonicSeconds() } else { pieceStarted = monotonicSeconds() }
    }

    func end(_ piece: SchedulePiece, backward: Bool) {
        // A block's attention and MLP are already inside the block's time: recorded, not added again.
        if piece.isInsideBlock { return current.pieces[piece, default: 0] += monotonicSeconds() - innerStarted }
        let t = monotonicSeconds() - pieceStarted
        current.pieces[piece, default: 0] += t
        if piece == .headAndLoss {
            // One kernel computes the loss and its gradient: split by its FLOPs (the logits matmul is a
            // third of them, the two gradient matmuls two thirds).
            current.forward += t / 3
            current.backward += 2 * t / 3
        } else if backward {
            current.backward += t
        } else {
            current.forward += t
        }
    }

    func startStep() {
        current = StepTimes()
        commAtStart = communicator.seconds
        started = monotonicSeconds()
    }

    func startOptimizer() {
        optimizerStarted = monotonicSeconds()
        commAtOptimizer = communicator.total
    }

    func finishStep() -> StepTimes {
        let now = monotonicSeconds()
        var t = current
        for kind in CommunicationKind.allCases {
            let d = (communicator.seconds[kind] ?? 0) - (commAtStart[kind] ?? 0)
            if d > 0 { t.communication[kind] = d }
        }
        let optimizerComm = communicator.total - commAtOptimizer
        t.optimizer = now - optimizerStarted - optimizerComm
        t.step = now - started
        t.other = t.step - t.forward - t.backward - t.optimizer - t.communicationTotal
        return t
    }
}

/// DeepSpeed's `wall_clock_breakdown`: every `every` steps, the median of each part over those steps.
public struct WallClockBreakdown {
    public let every: Int
    private(set) var window: [StepTimes] = []

    public init(every: Int) { self.every = every }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Records a step; returns the line to print when `step` ends a window.
    public mutating func record(_ t: StepTimes, step: Int) -> String? {
        window.append(t)
        guard step % every == 0 else { return nil }
        defer { window.removeAll() }
        func ms(_ f: (StepTimes) -> Double) -> String { String(format: "%.2f", Self.median(window.map(f)) * 1000) }
        let comm = CommunicationKind.allCases.map { k in "\(k.rawValue) \(ms { $0.communication[k] ?? 0 })" }.joined(separator: ", ")
        return "step \(step): wall-clock breakdown, median of \(window.count) step(s), ms: forward \(ms(\.forward)), backward \(ms(\.backward)), "
            + "communication \(ms(\.communicationTotal)) (\(comm)), optimizer step \(ms(\.optimizer)), other \(ms(\.other)), step \(ms(\.step))"
    }
}
