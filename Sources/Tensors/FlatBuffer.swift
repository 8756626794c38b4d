import Foundation

/// One contiguous, 64-byte aligned allocation of elements of one dtype. Parameters, gradients and each
/// optimizer state are one FlatBuffer over a `ParameterLayout` (llm.c's design): a layer is a range,
/// a ZeRO shard is a range, a collective is one call over a range.
public final class FlatBuffer: @unchecked Sendable {
    public let dtype: DType
    public let count: Int
    public let raw: UnsafeMutableRawPointer

    public init(dtype: DType, count: Int, zeroed: Bool = true) {
        self.dtype = dtype
        self.count = count
        let bytes = max(count * dtype.byteSize, 64)
        raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
    }

    deinit { raw.deallocate() }

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
