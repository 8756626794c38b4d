/// Collective and point-to-point communication between the ranks of a job. Every collective is called by
/// every rank of the communicator, in the same order, with the same counts (the design's rule: by all or
/// by none). Buffers are f32 unless a method says otherwise; counts are elements. Implementations: MPI
/// (`MPICommunicator`, one process per rank under mpirun), one process (`LocalCommunicator`), and threads
/// in one process (`ThreadCommunicator`, for tests).
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }

    /// In place: every rank ends with the elementwise sum (or max) over ranks.
    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws
    /// Doubles, for scalars that must not lose precision (loss sums, norms, counts).
    func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws
    /// `input` holds worldSize blocks of `blockCount`; rank r receives the sum over ranks of block r in `output`.
    func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws
    /// In place over 16-bit storage (bf16 or f16 bits): every rank ends with the elementwise sum, each
    /// step computed in f32 and rounded to the format (`HalfSum`), identical on every rank. For 2 ranks
    /// the result is exactly round(f32(a) + f32(b)); over more ranks MPI rounds every partial sum while
    /// the in-process communicators sum in rank order and round once (see `HalfSum`).
    func allReduce(halves buffer: UnsafeMutablePointer<UInt16>, count: Int, format: HalfFormat) throws
    /// `input` holds worldSize blocks of `blockCount` halves; rank r receives the sum (as in
    /// `allReduce(halves:)`) of block r in `output`.
    func reduceScatter(halves input: UnsafePointer<UInt16>, output: UnsafeMutablePointer<UInt16>, blockCount: Int,
                       format: HalfFormat) throws
    /// Every rank contributes `blockCount` elements; `output` receives worldSize blocks in rank order.
    func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws
    /// Starts `allGather` and returns at once; the result is in `output` only after the handle's `wait()`.
    /// Until then `input` and `output` must stay alive and untouched. Every rank starts and waits in the
    /// same order relative to its other collectives. The default runs the blocking `allGather` now.
    func startAllGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws -> PendingCollective
    /// Raw bytes (bf16/f16 storage, flags): the same as `allGather` on bytes.
    func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws
    /// Raw bytes from `root` to everyone.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws
    func send(_ buffer: UnsafeRawPointer, bytes: Int, to rank: Int, tag: Int) throws
    func receive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from rank: Int, tag: Int) throws
    /// Non-blocking `send`: `buffer` must stay alive and unchanged until the handle's `wait()`. The default
    /// sends now (right for implementations whose send never blocks: they copy the message).
    func startSend(_ buffer: UnsafeRawPointer, bytes: Int, to rank: Int, tag: Int) throws -> PendingCollective
    /// Non-blocking `receive`: the message is in `buffer` only after the handle's `wait()`, which throws
    /// when the message that arrived has another size. The default receives inside `wait()`.
    func startReceive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from rank: Int, tag: Int) throws -> PendingCollective
    func barrier() throws
    /// Ends the whole job at once (every rank), after `message` has been printed with this rank's number.
    /// Never returns.
    func abort(message: String, code: Int32) -> Never
}

/// A collective in flight (`startAllGather`). `wait()` must be called exactly once before its buffers are
/// read or reused; `progress()` lets an implementation that advances only inside library calls (Open MPI)
/// move it along while the caller computes.
public protocol PendingCollective: AnyObject {
    func wait() throws
    func progress() throws
}

extension PendingCollective {
    public func progress() throws {}
}

/// A collective that was already finished when it was started.
public final class CompletedCollective: PendingCollective {
    public init() {}
    public func wait() throws {}
}

/// A receive that happens when it is waited for (the default `startReceive`).
final class DeferredReceive: PendingCollective {
    private var body: (() throws -> Void)?
    init(_ body: @escaping () throws -> Void) { self.body = body }
    func wait() throws {
        guard let b = body else { return }
        body = nil
        try b()
    }
}

public enum ReduceOp: Sendable {
    case sum
    case max
}

public enum CommunicatorError: Error, CustomStringConvertible {
    case mpi(rank: Int, call: String, message: String)
    case invalid(String)

    public var description: String {
        switch self {
        case .mpi(let rank, let call, let message): return "rank \(rank): \(call) failed: \(message)"
        case .invalid(let message): return "communicator: \(message)"
        }
    }
}

extension Communicator {
    public var isMain: Bool { rank == 0 }

    public func startAllGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws -> PendingCollective {
        try allGather(input: input, output: output, blockCount: blockCount)
        return CompletedCollective()
    }

    public func startSend(_ buffer: UnsafeRawPointer, bytes: Int, to rank: Int, tag: Int) throws -> PendingCollective {
        try send(buffer, bytes: bytes, to: rank, tag: tag)
        return CompletedCollective()
    }

    public func startReceive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from rank: Int, tag: Int) throws -> PendingCollective {
        DeferredReceive { try self.receive(buffer, bytes: bytes, from: rank, tag: tag) }
    }

    /// A scalar summed (or maxed) over ranks.
    public func allReduce(_ value: Double, op: ReduceOp) throws -> Double {
        var v = value
        try allReduce(&v, count: 1, op: op)
        return v
    }

    /// Agree on a decision: true when any rank says true (saving, stopping, overflow).
    public func any(_ flag: Bool) throws -> Bool { try allReduce(flag ? 1 : 0, op: .max) > 0 }
}
