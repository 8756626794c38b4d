import Foundation

/// The ranks of a job as threads of one process, for testing distributed code without MPI. Every rank
/// holds its own `ThreadCommunicator`; all of them share one `ThreadRendezvous`. A collective publishes each
/// rank's buffer pointers, waits at a barrier, lets every rank compute its own share straight from the
/// others' memory, and waits again so no buffer is reused while another rank still reads it.
///
/// Sums run over ranks in rank order, so every rank gets bit-identical results (as MPI's reductions
/// guarantee for a fixed communicator).
public final class ThreadCommunicator: Communicator {
    public let rank: Int
    public var worldSize: Int { rendezvous.worldSize }
    private let rendezvous: ThreadRendezvous
    /// Splits this rank has made: every rank splits in the same order, so the count names the split.
    private var splits = 0

    private init(rank: Int, rendezvous: ThreadRendezvous) {
        self.rank = rank
        self.rendezvous = rendezvous
    }

    /// One communicator per rank, sharing a rendezvous; hand communicator r to the thread playing rank r.
    public static func group(worldSize: Int) -> [ThreadCommunicator] {
        precondition(worldSize >= 1, "a thread group needs at least one rank")
        let r = ThreadRendezvous(worldSize: worldSize)
        return (0..<worldSize).map { ThreadCommunicator(rank: $0, rendezvous: r) }
    }

    /// Runs `body` on `worldSize` threads, one per rank, and returns their results in rank order.
    /// The first error thrown by any rank is rethrown after every thread has finished (a rank that
    /// throws while others wait in a collective would leave them hanging: bodies should fail together).
    public static func run<T>(worldSize: Int, stackSize: Int = 16 << 20,
                              _ body: @escaping (ThreadCommunicator) throws -> T) throws -> [T] {
        let comms = group(worldSize: worldSize)
        let results = ThreadResults<T>(count: worldSize)
        let done = DispatchGroup()
        for comm in comms {
            done.enter()
            let thread = Thread {
                results.set(comm.rank, Result { try body(comm) })
                done.leave()
            }
            thread.stackSize = stackSize
            thread.start()
        }
        done.wait()
        return try results.values()
    }

    // MARK: Collectives

    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) throws {
        try reduceInPlace(UnsafeMutableRawPointer(buffer), as: Float.self, count: count, op: op)
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) throws {
        try reduceInPlace(UnsafeMutableRawPointer(buffer), as: Double.self, count: count, op: op)
    }

    /// Rank r reduces elements [r·count/N, (r+1)·count/N) of every rank's buffer and writes the result
    /// into all of them: portions are disjoint, so in-place is safe.
    private func reduceInPlace<F: BinaryFloatingPoint>(_ buffer: UnsafeMutableRawPointer, as: F.Type, count: Int,
                                                        op: ReduceOp) throws {
        let slots = try rendezvous.exchange(rank: rank, ThreadSlot(pointer: buffer, count: count))
        let n = worldSize
        let lo = count * rank / n, hi = count * (rank + 1) / n
        let buffers = slots.map { $0.pointer!.assumingMemoryBound(to: F.self) }
        for i in lo..<hi {
            var acc = buffers[0][i]
            for k in 1..<n {
                switch op {
                case .sum: acc += buffers[k][i]
                case .max: acc = Swift.max(acc, buffers[k][i])
                }
            }
            for k in 0..<n { buffers[k][i] = acc }
        }
        rendezvous.wait()
    }

    public func reduceScatter(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        let slots = try rendezvous.exchange(rank: rank, ThreadSlot(pointer: UnsafeMutableRawPointer(mutating: input), count: blockCount))
        let sources = slots.map { $0.pointer!.assumingMemoryBound(to: Float.self) + rank * blockCount }
        for i in 0..<blockCount {
            var acc = sources[0][i]
            for k in 1..<sources.count { acc += sources[k][i] }
            output[i] = acc
        }
        rendezvous.wait()
    }

    /// Rank r sums elements [r·count/N, (r+1)·count/N) over all ranks (`HalfSum.reduce`: rank order in
    /// f32, rounded once) and writes them into every rank's buffer.
    public func allReduce(halves buffer: UnsafeMutablePointer<UInt16>, count: Int, format: HalfFormat) throws {
        guard count >= 0 else { throw CommunicatorError.invalid("allReduce(halves): negative count \(count)") }
        let slots = try rendezvous.exchange(rank: rank, ThreadSlot(pointer: UnsafeMutableRawPointer(buffer), count: count))
        let n = worldSize
        let lo = count * rank / n, hi = count * (rank + 1) / n
        let buffers = slots.map { $0.pointer!.assumingMemoryBound(to: UInt16.self) + lo }
        HalfSum.reduce(buffers.map { UnsafePointer($0) }, count: hi - lo, format: format, into: buffers)
        rendezvous.wait()
    }

    public func reduceScatter(halves input: UnsafePointer<UInt16>, output: UnsafeMutablePointer<UInt16>, blockCount: Int,
                              format: HalfFormat) throws {
        guard blockCount >= 0 else { throw CommunicatorError.invalid("reduceScatter(halves): negative block count \(blockCount)") }
        let slots = try rendezvous.exchange(rank: rank, ThreadSlot(pointer: UnsafeMutableRawPointer(mutating: input), count: blockCount))
        let sources = slots.map { UnsafePointer($0.pointer!.assumingMemoryBound(to: UInt16.self)) + rank * blockCount }
        HalfSum.reduce(sources, count: blockCount, format: format, into: [output])
        rendezvous.wait()
    }

    public func allGather(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, blockCount: Int) throws {
        try allGatherBytes(input: UnsafeRawPointer(input), output: UnsafeMutableRawPointer(output),
                           blockBytes: blockCount * MemoryLayout<Float>.stride)
    }

    public func allGatherBytes(input: UnsafeRawPointer, output: UnsafeMutableRawPointer, blockBytes: Int) throws {
        let slots = try rendezvous.exchange(rank: rank, ThreadSlot(pointer: UnsafeMutableRawPointer(mutating: input), count: blockBytes))
        for (k, s) in slots.enumerated() {
            (output + k * blockBytes).copyMemory(from: s.pointer!, byteCount: blockBytes)
        }
        rendezvous.wait()
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        guard (0..<worldSize).contains(root) else { throw CommunicatorError.invalid("broadcast root \(root) of \(worldSize) ranks") }
        let slots = try rendezvous.exchange(rank: rank, ThreadSlot(pointer: buffer, count: bytes))
        if rank != root { buffer.copyMemory(from: slots[root].pointer!, byteCount: bytes) }
        rendezvous.wait()
    }

    public func send(_ buffer: UnsafeRawPointer, bytes: Int, to rank: Int, tag: Int) throws {
        guard (0..<worldSize).contains(rank) else { throw CommunicatorError.invalid("send to rank \(rank) of \(worldSize)") }
        rendezvous.post(Data(bytes: buffer, count: bytes), from: self.rank, to: rank, tag: tag)
    }

    public func receive(_ buffer: UnsafeMutableRawPointer, bytes: Int, from rank: Int, tag: Int) throws {
        guard (0..<worldSize).contains(rank) else { throw CommunicatorError.invalid("receive from rank \(rank) of \(worldSize)") }
        let data = rendezvous.take(from: rank, to: self.rank, tag: tag)
        guard data.count == bytes else {
            throw CommunicatorError.invalid("rank \(self.rank) expected \(bytes) bytes from rank \(rank) (tag \(tag)), got \(data.count)")
        }
        data.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
    }

    public func barrier() throws { rendezvous.wait() }

    /// Threads cannot end their siblings cleanly, so in tests an abort ends the process.
    public func abort(message: String, code: Int32) -> Never {
        fatalError("rank \(rank): \(message) (code \(code))")
    }
}

extension ThreadCommunicator: SplittableCommunicator {
    /// Collective: every rank publishes (color, key); ranks of one color get a new rendezvous of their
    /// own (the same object for all of them), ordered by key, then by rank.
    public func split(color: Int, key: Int) throws -> Communicator {
        var mine = [color, key]
        let all: [(color: Int, key: Int)] = try mine.withUnsafeMutableBytes { raw in
            let slots = try rendezvous.exchange(rank: rank, ThreadSlot(pointer: raw.baseAddress!, count: 2))
            let pairs = slots.map { s -> (color: Int, key: Int) in
                let q = s.pointer!.assumingMemoryBound(to: Int.self)
                return (q[0], q[1])
            }
            // Nobody's pair may go out of scope while another rank still reads it.
            rendezvous.wait()
            return pairs
        }
        let members = (0..<worldSize).filter { all[$0].color == color }
            .sorted { (all[$0].key, $0) < (all[$1].key, $1) }
        splits += 1
        let sub = rendezvous.subgroup(split: splits, members: members)
        return ThreadCommunicator(rank: members.firstIndex(of: rank)!, rendezvous: sub)
    }
}

/// One rank's contribution to a collective: a pointer and a count to check across ranks.
struct ThreadSlot {
    var pointer: UnsafeMutableRawPointer?
    var count: Int
}

/// The state the ranks of a `ThreadCommunicator` group share: a reusable barrier, the slots of the
/// current collective, and mailboxes for point-to-point messages.
final class ThreadRendezvous: @unchecked Sendable {
    let worldSize: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var slots: [ThreadSlot]
    private var mailboxes: [MailKey: [Data]] = [:]

    struct MailKey: Hashable { var from: Int, to: Int, tag: Int }
    struct SubgroupKey: Hashable { var split: Int, members: [Int] }
    private var subgroups: [SubgroupKey: ThreadRendezvous] = [:]

    /// The rendezvous of the sub-group `members` formed by split number `split`: made by the first
    /// member to ask, returned to the others.
    func subgroup(split: Int, members: [Int]) -> ThreadRendezvous {
        condition.lock()
        defer { condition.unlock() }
        let key = SubgroupKey(split: split, members: members)
        if let r = subgroups[key] { return r }
        let r = ThreadRendezvous(worldSize: members.count)
        subgroups[key] = r
        return r
    }

    init(worldSize: Int) {
        self.worldSize = worldSize
        slots = Array(repeating: ThreadSlot(pointer: nil, count: 0), count: worldSize)
    }

    /// Blocks until every rank has called `wait` for this generation.
    func wait() {
        condition.lock()
        defer { condition.unlock() }
        let mine = generation
        arrived += 1
        if arrived == worldSize {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
    }

    /// Publishes this rank's slot, waits for all ranks, and returns every rank's slot. Counts must agree
    /// (the protocol's rule); a mismatch is reported by every rank.
    func exchange(rank: Int, _ slot: ThreadSlot) throws -> [ThreadSlot] {
        condition.lock()
        slots[rank] = slot
        condition.unlock()
        wait()
        condition.lock()
        let all = slots
        condition.unlock()
        if let bad = all.firstIndex(where: { $0.count != all[0].count }) {
            wait()
            throw CommunicatorError.invalid("collective counts differ: rank 0 passed \(all[0].count), rank \(bad) passed \(all[bad].count)")
        }
        return all
    }

    func post(_ data: Data, from: Int, to: Int, tag: Int) {
        condition.lock()
        mailboxes[MailKey(from: from, to: to, tag: tag), default: []].append(data)
        condition.broadcast()
        condition.unlock()
    }

    func take(from: Int, to: Int, tag: Int) -> Data {
        let key = MailKey(from: from, to: to, tag: tag)
        condition.lock()
        defer { condition.unlock() }
        while mailboxes[key]?.isEmpty ?? true { condition.wait() }
        return mailboxes[key]!.removeFirst()
    }
}

/// Results of the rank threads, written once each.
final class ThreadResults<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<T, Error>?]

    init(count: Int) { results = Array(repeating: nil, count: count) }

    func set(_ rank: Int, _ r: Result<T, Error>) {
        lock.lock(); results[rank] = r; lock.unlock()
    }

    func values() throws -> [T] {
        lock.lock(); defer { lock.unlock() }
        return try results.map { try $0!.get() }
    }
}
