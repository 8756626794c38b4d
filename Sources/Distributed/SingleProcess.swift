import Foundation

/// The communicator of a job with one rank: every collective leaves the data as it is (the sum over
/// one rank is itself), point-to-point has nobody to talk to.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }

    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws {}
    public func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws {}
    public func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        if UnsafePointer(output) != input { output.update(from: input, count: blockCount) }
    }
    public func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        if UnsafePointer(output) != input { output.update(from: input, count: blockCount) }
    }
    public func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {
        if UnsafeRawPointer(output) != input { output.copyMemory(from: input, byteCount: blockBytes) }
    }
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {}
    public func send(_ buffer: UnsafeRawPointer, bytes: Int, to rank: Int, tag: Int) throws {
        throw CommunicatorError.invalid("send to rank \(rank) in a job of one process")
    }
    public func receive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from rank: Int, tag: Int) throws {
        throw CommunicatorError.invalid("receive from rank \(rank) in a job of one process")
    }
    public func barrier() throws {}
    public func abort(message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(code)
    }
}
