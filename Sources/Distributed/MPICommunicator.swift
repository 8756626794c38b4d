import CMPI
import Foundation

/// A `Communicator` over an MPI communicator (one process per rank, started by mpirun). Errors come back
/// as `CommunicatorError.mpi` naming the rank, the call and MPI's text, because the communicator is set
/// to MPI_ERRORS_RETURN; the caller decides to abort (see `runOrAbort`).
public final class MPICommunicator: Communicator, SplittableCommunicator {
    public let rank: Int
    public let worldSize: Int
    let comm: MPI_Comm
    /// Whether this object created `comm` (a split) and must free it; the world is MPI's own.
    private let owned: Bool

    /// MPI counts are 32-bit: larger buffers go in pieces of this many elements (or bytes).
    static let maxChunk = Int(Int32.max)

    /// The world of this process's job; initialises MPI on first use.
    public static func world() throws -> MPICommunicator {
        try MPIRuntime.initialize()
        return try MPICommunicator(comm: cmpi_comm_world(), owned: false)
    }

    private init(comm: MPI_Comm, owned: Bool) throws {
        self.comm = comm
        self.owned = owned
        var r: Int32 = 0, n: Int32 = 0
        var rc = MPI_Comm_set_errhandler(comm, cmpi_errors_return())
        if rc == cmpi_success() { rc = MPI_Comm_rank(comm, &r) }
        if rc == cmpi_success() { rc = MPI_Comm_size(comm, &n) }
        if rc != cmpi_success() {
            throw CommunicatorError.mpi(rank: Int(r), call: "MPI_Comm_rank/size", message: MPIRuntime.errorString(rc))
        }
        rank = Int(r)
        worldSize = Int(n)
    }

    deinit {
        if owned && !MPIRuntime.isFinalized {
            var c: MPI_Comm? = comm
            MPI_Comm_free(&c)
        }
    }

    private func check(_ rc: Int32, _ call: String) throws {
        if rc != cmpi_success() {
            throw CommunicatorError.mpi(rank: rank, call: call, message: MPIRuntime.errorString(rc))
        }
    }

    private func int32Count(_ n: Int, _ call: String) throws -> Int32 {
        guard n >= 0, n <= MPICommunicator.maxChunk else {
            throw CommunicatorError.invalid("\(call): count \(n) is outside 0...\(MPICommunicator.maxChunk)")
        }
        return Int32(n)
    }

    /// Calls `body(offset, length)` over `total` in pieces MPI's 32-bit counts can hold. Every rank
    /// splits the same total the same way, so the pieces match across ranks.
    private func inPieces(_ total: Int, _ body: (Int, Int32) throws -> Void) rethrows {
        var offset = 0
        repeat {
            let n = min(MPICommunicator.maxChunk, total - offset)
            try body(offset, Int32(n))
            offset += n
        } while offset < total
    }

    private func mpiOp(_ op: ReduceOp) -> MPI_Op {
        switch op {
        case .sum: return cmpi_op_sum()
        case .max: return cmpi_op_max()
        }
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws {
        try inPieces(count) { offset, n in
            try check(MPI_Allreduce(cmpi_in_place(), buffer + offset, n, cmpi_float(), mpiOp(op), comm), "MPI_Allreduce(float)")
        }
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws {
        try inPieces(count) { offset, n in
            try check(MPI_Allreduce(cmpi_in_place(), buffer + offset, n, cmpi_double(), mpiOp(op), comm), "MPI_Allreduce(double)")
        }
    }

    public func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        let n = try int32Count(blockCount, "MPI_Reduce_scatter_block")
        try check(MPI_Reduce_scatter_block(input, output, n, cmpi_float(), cmpi_op_sum(), comm), "MPI_Reduce_scatter_block")
    }

    /// The user-defined MPI_Op summing `format` over MPI_UINT16_T (cmpi_half.c), created on first use.
    private func halfSumOp(_ format: HalfFormat) throws -> MPI_Op {
        var op: MPI_Op? = nil
        let rc = format == .bf16 ? cmpi_op_bf16_sum(&op) : cmpi_op_f16_sum(&op)
        try check(rc, "MPI_Op_create(\(format) sum)")
        guard let op else { throw CommunicatorError.mpi(rank: rank, call: "MPI_Op_create(\(format) sum)", message: "returned no op") }
        return op
    }

    /// Pieces of at most Int32.max halves, like the f32 all-reduce; the reduction order is MPI's (`HalfSum`).
    public func allReduce(halves buffer: UnsafeMutablePointer<UInt16>, count: Int, format: HalfFormat) throws {
        guard count >= 0 else { throw CommunicatorError.invalid("allReduce(halves): negative count \(count)") }
        let op = try halfSumOp(format)
        try inPieces(count) { offset, n in
            try check(MPI_Allreduce(cmpi_in_place(), buffer + offset, n, cmpi_uint16(), op, comm), "MPI_Allreduce(\(format))")
        }
    }

    /// One call, so a block is limited to Int32.max halves (as the f32 reduce-scatter): splitting it would
    /// need strided pieces of every block.
    public func reduceScatter(halves input: UnsafePointer<UInt16>, output: UnsafeMutablePointer<UInt16>, blockCount: Int,
                              format: HalfFormat) throws {
        let call = "MPI_Reduce_scatter_block(\(format))"
        let n = try int32Count(blockCount, call)
        let op = try halfSumOp(format)
        try check(MPI_Reduce_scatter_block(input, output, n, cmpi_uint16(), op, comm), call)
    }

    public func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        let n = try int32Count(blockCount, "MPI_Allgather(float)")
        try check(MPI_Allgather(input, n, cmpi_float(), output, n, cmpi_float(), comm), "MPI_Allgather(float)")
    }

    /// MPI_Iallgather: Open MPI progresses it mostly inside MPI calls, so the handle's `progress()`
    /// (MPI_Test) is worth calling between pieces of compute.
    public func startAllGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws -> PendingCollective {
        let n = try int32Count(blockCount, "MPI_Iallgather(float)")
        var request: MPI_Request? = nil
        try check(MPI_Iallgather(input, n, cmpi_float(), output, n, cmpi_float(), comm, &request), "MPI_Iallgather(float)")
        return MPIPendingCollective(communicator: self, request: request, call: "MPI_Iallgather(float)")
    }

    fileprivate func finish(_ request: inout MPI_Request?, call: String, expectedBytes: Int32? = nil) throws {
        guard let expected = expectedBytes else {
            try check(MPI_Wait(&request, cmpi_status_ignore()), "MPI_Wait(\(call))")
            return
        }
        var status = MPI_Status()
        try check(MPI_Wait(&request, &status), "MPI_Wait(\(call))")
        var received: Int32 = 0
        try check(MPI_Get_count(&status, cmpi_uint8(), &received), "MPI_Get_count(\(call))")
        guard received == expected else {
            throw CommunicatorError.invalid("rank \(rank): \(call) expected \(expected) bytes, the message has \(received)")
        }
    }

    fileprivate func test(_ request: inout MPI_Request?, call: String) throws -> Bool {
        var flag: Int32 = 0
        try check(MPI_Test(&request, &flag, cmpi_status_ignore()), "MPI_Test(\(call))")
        return flag != 0
    }

    public func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {
        let n = try int32Count(blockBytes, "MPI_Allgather(bytes)")
        try check(MPI_Allgather(input, n, cmpi_uint8(), output, n, cmpi_uint8(), comm), "MPI_Allgather(bytes)")
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try checkPeer(root, "MPI_Bcast")
        try inPieces(bytes) { offset, n in
            try check(MPI_Bcast(buffer + offset, n, cmpi_uint8(), Int32(root), comm), "MPI_Bcast")
        }
    }

    public func send(_ buffer: UnsafeRawPointer, bytes: Int, to peer: Int, tag: Int) throws {
        try checkPeer(peer, "MPI_Send")
        try inPieces(bytes) { offset, n in
            try check(MPI_Send(buffer + offset, n, cmpi_uint8(), Int32(peer), Int32(tag), comm), "MPI_Send(to \(peer), tag \(tag))")
        }
    }

    public func receive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from peer: Int, tag: Int) throws {
        try checkPeer(peer, "MPI_Recv")
        try inPieces(bytes) { offset, n in
            try check(MPI_Recv(buffer + offset, n, cmpi_uint8(), Int32(peer), Int32(tag), comm, cmpi_status_ignore()),
                      "MPI_Recv(from \(peer), tag \(tag))")
        }
    }

    /// MPI_Isend of one piece (activations are far below MPI's 32-bit count).
    public func startSend(_ buffer: UnsafeRawPointer, bytes: Int, to peer: Int, tag: Int) throws -> PendingCollective {
        let call = "MPI_Isend(to \(peer), tag \(tag))"
        try checkPeer(peer, call)
        let n = try int32Count(bytes, call)
        var request: MPI_Request? = nil
        try check(MPI_Isend(buffer, n, cmpi_uint8(), Int32(peer), Int32(tag), comm, &request), call)
        return MPIPendingCollective(communicator: self, request: request, call: call)
    }

    /// MPI_Irecv of one piece; a longer message than `bytes` fails its wait (MPI_ERR_TRUNCATE), a shorter
    /// one is caught by comparing the received count.
    public func startReceive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from peer: Int, tag: Int) throws -> PendingCollective {
        let call = "MPI_Irecv(from \(peer), tag \(tag))"
        try checkPeer(peer, call)
        let n = try int32Count(bytes, call)
        var request: MPI_Request? = nil
        try check(MPI_Irecv(buffer, n, cmpi_uint8(), Int32(peer), Int32(tag), comm, &request), call)
        return MPIPendingCollective(communicator: self, request: request, call: call, expectedBytes: n)
    }

    public func barrier() throws {
        try check(MPI_Barrier(comm), "MPI_Barrier")
    }

    /// Prints "rank R: message" (R is the rank in the world, the number mpirun reports), then aborts the
    /// whole job: MPI_Abort on the world, not on a group, so ranks outside this group stop too.
    public func abort(message: String, code: Int32) -> Never {
        var worldRank: Int32 = Int32(rank)
        MPI_Comm_rank(cmpi_comm_world(), &worldRank)
        FileHandle.standardError.write(Data("rank \(worldRank): \(message)\n".utf8))
        fflush(stdout)
        MPI_Abort(cmpi_comm_world(), code)
        // MPI_Abort does not return in OpenMPI; should another MPI return, the process must still end.
        exit(code)
    }

    /// Ranks with the same `color` form a new communicator, ordered by `key` (ties by rank here).
    public func split(color: Int, key: Int) throws -> Communicator {
        var newComm: MPI_Comm? = nil
        try check(MPI_Comm_split(comm, Int32(color), Int32(key), &newComm), "MPI_Comm_split(color \(color))")
        guard let c = newComm else {
            throw CommunicatorError.mpi(rank: rank, call: "MPI_Comm_split", message: "returned no communicator")
        }
        return try MPICommunicator(comm: c, owned: true)
    }

    private func checkPeer(_ peer: Int, _ call: String) throws {
        guard peer >= 0 && peer < worldSize else {
            throw CommunicatorError.invalid("\(call): rank \(peer) is outside 0..<\(worldSize) (this is rank \(rank))")
        }
    }
}

/// A non-blocking MPI collective. Holds its communicator so the MPI_Comm outlives the request; the
/// buffers are the caller's to keep alive until `wait()`.
final class MPIPendingCollective: PendingCollective {
    private let communicator: MPICommunicator
    private var request: MPI_Request?
    private let call: String
    /// A receive checks the size of the message that arrived.
    private let expectedBytes: Int32?
    private var done = false

    init(communicator: MPICommunicator, request: MPI_Request?, call: String, expectedBytes: Int32? = nil) {
        self.communicator = communicator
        self.request = request
        self.call = call
        self.expectedBytes = expectedBytes
    }

    func wait() throws {
        guard !done else { return }
        done = true
        try communicator.finish(&request, call: call, expectedBytes: expectedBytes)
    }

    func progress() throws {
        // A receive is completed only in `wait`, where its size is checked; any MPI call (this test of
        // another request included) moves it along meanwhile.
        guard !done, expectedBytes == nil else { return }
        done = try communicator.test(&request, call: call)
    }

    /// Never leave MPI writing into buffers the caller may free: an abandoned request is completed here.
    deinit {
        if !done && !MPIRuntime.isFinalized { MPI_Wait(&request, cmpi_status_ignore()) }
    }
}
