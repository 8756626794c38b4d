import Foundation

/// The communicator of a job of one process: rank 0 of a world of 1. Reductions leave the data as it is
/// (the sum over one rank), gathers and scatters copy, and messages to oneself are queued by tag, so
/// code written for N ranks runs unchanged on one.
public final class LocalCommunicator: Communicator, SplittableCommunicator {
    public let rank = 0
    public let worldSize = 1
    /// Messages this rank sent to itself, by tag, oldest first.
    private var mailbox: [Int: [[UInt8]]] = [:]

    public init() {}

    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws {
        try checkCount(count, "allReduce")
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws {
        try checkCount(count, "allReduce")
    }

    public func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try checkCount(blockCount, "reduceScatter")
        if UnsafePointer(output) != input { output.update(from: input, count: blockCount) }
    }

    /// The sum over one rank is the value itself, bits unchanged (MPI does not call its op for one rank).
    public func allReduce(halves buffer: UnsafeMutablePointer<UInt16>, count: Int, format: HalfFormat) throws {
        try checkCount(count, "allReduce(halves)")
    }

    public func reduceScatter(halves input: UnsafePointer<UInt16>, output: UnsafeMutablePointer<UInt16>, blockCount: Int,
                              format: HalfFormat) throws {
        try checkCount(blockCount, "reduceScatter(halves)")
        if UnsafePointer(output) != input { output.update(from: input, count: blockCount) }
    }

    public func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try checkCount(blockCount, "allGather")
        if UnsafePointer(output) != input { output.update(from: input, count: blockCount) }
    }

    public func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {
        try checkCount(blockBytes, "allGatherBytes")
        if UnsafeRawPointer(output) != input { output.copyMemory(from: input, byteCount: blockBytes) }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try checkCount(bytes, "broadcast")
        try checkPeer(root, "broadcast root")
    }

    public func send(_ buffer: UnsafeRawPointer, bytes: Int, to peer: Int, tag: Int) throws {
        try checkCount(bytes, "send")
        try checkPeer(peer, "send to")
        mailbox[tag, default: []].append(Array(UnsafeRawBufferPointer(start: buffer, count: bytes)))
    }

    public func receive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from peer: Int, tag: Int) throws {
        try checkCount(bytes, "receive")
        try checkPeer(peer, "receive from")
        // A blocking receive with nothing queued would wait forever: with one process nobody can send.
        guard var queue = mailbox[tag], !queue.isEmpty else {
            throw CommunicatorError.invalid("receive(tag \(tag)) on a one-process job: no message was sent to this tag")
        }
        let message = queue.removeFirst()
        mailbox[tag] = queue
        guard message.count == bytes else {
            throw CommunicatorError.invalid("receive(tag \(tag)) expected \(bytes) bytes, the message has \(message.count)")
        }
        if bytes > 0 { message.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes) } }
    }

    public func barrier() throws {}

    /// One process: there is no rank to name, so the message is printed as it is (the CLI's "error: ...").
    public func abort(message: String, code: Int32) -> Never {
        fflush(stdout)
        FileHandle.standardError.write(Data("\(message)\n".utf8))
        exit(code)
    }

    public func split(color: Int, key: Int) throws -> Communicator { LocalCommunicator() }

    private func checkPeer(_ peer: Int, _ what: String) throws {
        guard peer == 0 else { throw CommunicatorError.invalid("\(what) rank \(peer): a one-process job has only rank 0") }
    }

    private func checkCount(_ n: Int, _ what: String) throws {
        guard n >= 0 else { throw CommunicatorError.invalid("\(what): negative count \(n)") }
    }
}
