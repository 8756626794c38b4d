import Foundation

/// One contiguous, 64-byte aligned allocation of elements of one dtype. Parameters, gradients and each
/// optimizer state are one FlatBuffer over a `ParameterLayout` (llm.c's design): a layer is a range,
/// a ZeRO shard is a range, a collective is one call over a range.
///
/// Buffers of `mappedThreshold` bytes or more are anonymous mmap regions (page-aligned, zero on first
/// touch) so that `release(_:)` can hand whole pages of a range back to the kernel: ZeRO-2 drops a
/// layer's full-size gradients after reduce-scatter and ZeRO-3 a layer's gathered weights after use,
/// and resident memory falls while the address range stays valid.
public final class FlatBuffer: @unchecked Sendable {
    public let dtype: DType
    public let count: Int
    public let raw: UnsafeMutableRawPointer
    /// Bytes of the mmap region, 0 when the buffer came from the allocator.
    private let mappedBytes: Int

    /// At or above this many bytes a buffer is mmap-backed (and releasable page by page).
    public static let mappedThreshold = 1 << 20

    public init(dtype: DType, count: Int, zeroed: Bool = true) {
        self.dtype = dtype
        self.count = count
        let bytes = max(count * dtype.byteSize, 64)
        if bytes >= Self.mappedThreshold, let region = Self.map(bytes: bytes) {
            raw = region
            mappedBytes = bytes
        } else {
            raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            mappedBytes = 0
            if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        }
    }

    deinit {
        if mappedBytes > 0 { munmap(raw, mappedBytes) } else { raw.deallocate() }
    }

    private static func map(bytes: Int) -> UnsafeMutableRawPointer? {
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard p != MAP_FAILED, let p else { return nil }
        // Large buffers are filled and released group by group many times per step (ZeRO-3, mixed
        // precision): 2 MB pages fault 512 times less often than 4 KB ones. A hint only; with THP off
        // it does nothing.
        if bytes >= hugePageThreshold { _ = madvise(p, bytes, 14 /* MADV_HUGEPAGE */) }
        return p
    }

    static let hugePageThreshold = 8 << 20

    /// True when `release` returns memory to the system (otherwise it only zeroes).
    public var isReleasable: Bool { mappedBytes > 0 }

    /// Zeroes the elements in `range` and, for an mmap-backed buffer, gives the whole pages inside it
    /// back to the kernel (MADV_DONTNEED: they read as zero and cost nothing until written again).
    /// Partial pages at the edges are zeroed in place, since neighbouring elements share them.
    public func release(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "release \(range) of \(count) elements")
        let size = dtype.byteSize
        let lo = range.lowerBound * size, hi = range.upperBound * size
        guard mappedBytes > 0 else {
            (raw + lo).initializeMemory(as: UInt8.self, repeating: 0, count: hi - lo)
            return
        }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pageLo = (lo + page - 1) / page * page, pageHi = hi / page * page
        if pageLo >= pageHi {
            (raw + lo).initializeMemory(as: UInt8.self, repeating: 0, count: hi - lo)
            return
        }
        (raw + lo).initializeMemory(as: UInt8.self, repeating: 0, count: pageLo - lo)
        (raw + pageHi).initializeMemory(as: UInt8.self, repeating: 0, count: hi - pageHi)
        if madvise(raw + pageLo, pageHi - pageLo, MADV_DONTNEED) != 0 {
            (raw + pageLo).initializeMemory(as: UInt8.self, repeating: 0, count: pageHi - pageLo)
        }
    }

    public var byteCount: Int { count * dtype.byteSize }

    /// The elements as f32. Only for f32 buffers.
    public var floats: UnsafeMutableBufferPointer<Float> {
        precondition(dtype == .f32, "floats of a \(dtype) buffer")
        return UnsafeMutableBufferPointer(start: raw.assumingMemoryBound(to: Float.self), count: count)
    }

    /// The elements as raw 16-bit words. Only for bf16/f16 buffers.
    public var halves: UnsafeMutableBufferPointer<UInt16> {
        precondition(dtype.byteSize == 2, "halves of a \(dtype) buffer")
        return UnsafeMutableBufferPointer(start: raw.assumingMemoryBound(to: UInt16.self), count: count)
    }

    public func floats(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: floats[range])
    }

    public func zero() { raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount) }

    /// Converts `src` (f32) into this buffer's dtype at `offset`.
    public func store(_ src: UnsafeBufferPointer<Float>, at offset: Int) {
        precondition(offset + src.count <= count)
        switch dtype {
        case .f32: _ = UnsafeMutableBufferPointer(rebasing: floats[offset..<offset + src.count]).update(fromContentsOf: src)
        case .bf16: HalfConversion.toBF16(src, UnsafeMutableBufferPointer(rebasing: halves[offset..<offset + src.count]))
        case .f16: HalfConversion.toF16(src, UnsafeMutableBufferPointer(rebasing: halves[offset..<offset + src.count]))
        default: preconditionFailure("store into a \(dtype) buffer")
        }
    }

    /// Converts the range `offset..<offset+dst.count` of this buffer to f32 into `dst`.
    public func load(into dst: UnsafeMutableBufferPointer<Float>, from offset: Int) {
        precondition(offset + dst.count <= count)
        switch dtype {
        case .f32: _ = dst.update(fromContentsOf: UnsafeBufferPointer(rebasing: floats[offset..<offset + dst.count]))
        case .bf16: HalfConversion.fromBF16(UnsafeBufferPointer(rebasing: halves[offset..<offset + dst.count]), dst)
        case .f16: HalfConversion.fromF16(UnsafeBufferPointer(rebasing: halves[offset..<offset + dst.count]), dst)
        default: preconditionFailure("load from a \(dtype) buffer")
        }
    }
}
