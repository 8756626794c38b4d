import Foundation

/// The streaming pipeline of `OffloadStore`: three chunk slots rotate between "being computed on",
/// "being read ahead" and "being written behind". All file I/O runs on the store's serial `ioQueue`;
/// because that queue is FIFO, enqueueing in the order
///
///     read(0), read(1), [body 0], write(0), read(2), [body 1], write(1), read(3), ...
///
/// guarantees that a slot's write-behind completes before the read-ahead that reuses it, with no
/// locks on the buffers. The caller only waits for "read of my chunk finished" (one semaphore per
/// slot); errors are recorded by the I/O side and thrown by the caller after draining the queue, so
/// nothing is left running against the buffers when `stream` returns or throws.
extension OffloadStore {
    /// Streams `ranges` (sorted, disjoint, inside `0..<count`) chunk by chunk. For each chunk of at
    /// most `chunkElements` elements (chunks never straddle two ranges) `body` gets the chunk's element
    /// range and one pointer per array, in `names` order, to `range.count` floats holding the file
    /// contents; whatever the body leaves there is written back. The next chunk is read while the body
    /// runs and the previous one is written.
    ///
    /// Returns once every write has reached the file (the page cache; nothing is fsync'ed). A failed
    /// read or write (e.g. `OffloadError.noSpaceLeft` naming the file) is thrown after in-flight I/O
    /// drains; chunks before the failure keep their new values, later ones their old ones, and the
    /// store stays usable. If `body` throws, its chunk is not written back and the error is rethrown
    /// after the same drain.
    public func stream(_ ranges: [Range<Int>], _ body: (Range<Int>, [UnsafeMutablePointer<Float>]) throws -> Void) throws {
        try checkUsable()
        try validate(ranges)
        streaming = true
        defer { streaming = false }

        var chunks = OffloadChunkIterator(ranges: ranges, chunkElements: chunkElements)
        guard var current = chunks.next() else { return }
        let failure = OffloadFirstError()
        let readDone = (0..<Self.slotCount).map { _ in DispatchSemaphore(value: 0) }
        let drainAndThrowIfFailed = { [ioQueue] in
            ioQueue.sync {}
            if let error = failure.error { throw error }
        }

        enqueueRead(current, slot: 0, failure: failure, done: readDone[0])
        var k = 0
        while true {
            let slot = k % Self.slotCount
            let next = chunks.next()
            if let next { enqueueRead(next, slot: (k + 1) % Self.slotCount, failure: failure, done: readDone[(k + 1) % Self.slotCount]) }
            readDone[slot].wait()
            if failure.error != nil { try drainAndThrowIfFailed() }
            do {
                try body(current, slots[slot])
            } catch {
                ioQueue.sync {}
                throw error
            }
            enqueueWrite(current, slot: slot, failure: failure)
            guard let next else { break }
            current = next
            k += 1
        }
        try drainAndThrowIfFailed()
    }

    private func validate(_ ranges: [Range<Int>]) throws {
        var previousEnd = 0
        for range in ranges {
            guard range.lowerBound >= previousEnd, range.upperBound <= count else {
                throw OffloadError.invalidArgument(
                    "stream ranges must be sorted, disjoint and inside 0..<\(count); got \(range) after one ending at \(previousEnd)")
            }
            previousEnd = range.upperBound
        }
    }

    private func enqueueRead(_ chunk: Range<Int>, slot: Int, failure: OffloadFirstError, done: DispatchSemaphore) {
        ioQueue.async { [self] in
            defer { done.signal() }
            guard failure.error == nil else { return }
            do {
                for a in names.indices {
                    try preadFully(array: a, UnsafeMutableRawPointer(slots[slot][a]),
                                   bytes: chunk.count * 4, offset: chunk.lowerBound * 4)
                }
            } catch {
                failure.record(error)
            }
        }
    }

    private func enqueueWrite(_ chunk: Range<Int>, slot: Int, failure: OffloadFirstError) {
        ioQueue.async { [self] in
            guard failure.error == nil else { return }
            do {
                for a in names.indices {
                    try pwriteFully(array: a, UnsafeRawPointer(slots[slot][a]),
                                    bytes: chunk.count * 4, offset: chunk.lowerBound * 4)
                }
            } catch {
                failure.record(error)
            }
        }
    }
}

/// Splits sorted ranges into chunks of at most `chunkElements`, lazily (a chunk size of 1 over
/// millions of elements must not build a list of millions of ranges).
struct OffloadChunkIterator: IteratorProtocol {
    let ranges: [Range<Int>]
    let chunkElements: Int
    private var rangeIndex = 0
    private var position: Int?

    init(ranges: [Range<Int>], chunkElements: Int) {
        self.ranges = ranges
        self.chunkElements = chunkElements
    }

    mutating func next() -> Range<Int>? {
        while rangeIndex < ranges.count {
            let range = ranges[rangeIndex]
            let start = position ?? range.lowerBound
            if start < range.upperBound {
                let end = min(start + chunkElements, range.upperBound)
                position = end
                return start..<end
            }
            rangeIndex += 1
            position = nil
        }
        return nil
    }
}

/// The first error raised on the I/O queue, read by the streaming thread.
final class OffloadFirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?

    var error: Error? { lock.lock(); defer { lock.unlock() }; return stored }

    func record(_ error: Error) {
        lock.lock(); defer { lock.unlock() }
        if stored == nil { stored = error }
    }
}
