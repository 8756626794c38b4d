import Tensors

/// f32 → the ggml types export writes (F32, F16, BF16, Q8_0), byte-identical to `gguf.quants.quantize` of
/// the gguf Python package 0.19 (which llama.cpp's convert_hf_to_gguf.py calls), so a file we write holds
/// the bytes llama.cpp's own converter would. Plain scalar code: quantizing is a one-off per export and
/// already far faster than writing the file, so there is no second, optimised path to keep in step.
public enum Quantize {
    /// The types export can write.
    public static let writable: [GGMLType] = [.f32, .f16, .bf16, .q8_0]

    /// Writes `src` as `type` into `out`, which must hold exactly `type.byteCount(elements: src.count)` bytes.
    public static func quantize(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>, into out: UnsafeMutableRawBufferPointer) {
        precondition(src.count % type.blockSize == 0 && out.count == type.byteCount(elements: src.count))
        switch type {
        case .f32:
            out.copyMemory(from: UnsafeRawBufferPointer(src))
        case .f16:
            // numpy's astype(float16): round to nearest even, subnormals exact, overflow to inf, NaN quieted.
            for (i, x) in src.enumerated() { store16(HalfConversion.f16Bits(x), out, at: 2 * i) }
        case .bf16:
            for (i, x) in src.enumerated() { store16(bf16Bits(x), out, at: 2 * i) }
        case .q8_0:
            for b in 0..<(src.count / 32) { q8_0Block(UnsafeBufferPointer(rebasing: src[(b * 32)..<(b * 32 + 32)]), out, at: b * 34) }
        default:
            preconditionFailure("\(type.name) is not a type export writes (Quantize.writable)")
        }
    }

    /// gguf's BF16.quantize_blocks (ggml_compute_fp32_to_bf16): a NaN keeps its sign and top bits with the
    /// quiet bit forced (0x0040 in bf16), everything else rounds to nearest even. Differs from PyTorch's
    /// bf16 NaN (0xFFFF), so it is not HalfConversion's.
    static func bf16Bits(_ x: Float) -> UInt16 {
        var n = x.bitPattern
        if n & 0x7FFF_FFFF > 0x7F80_0000 { n = (n & 0xFFFF_0000) | (64 << 16) }
        return UInt16(truncatingIfNeeded: (UInt64(n) + 0x7FFF + UInt64((n >> 16) & 1)) >> 16)
    }

    /// gguf's Q8_0.quantize_blocks, in its f32 operations: d = max|x| / 127, id = 1/d (0 when d is 0),
    /// q = np_roundf(x · id) (round half away from zero), d stored as f16.
    static func q8_0Block(_ x: UnsafeBufferPointer<Float>, _ out: UnsafeMutableRawBufferPointer, at offset: Int) {
        var amax: Float = 0
        for v in x { amax = max(amax, abs(v)) }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        store16(HalfConversion.f16Bits(d), out, at: offset)
        for (i, v) in x.enumerated() {
            out[offset + 2 + i] = UInt8(bitPattern: Int8(roundHalfAwayFromZero(v * id)))
        }
    }

    /// gguf's np_roundf: sign(n) · (floor|n| + floor(2 · (|n| − floor|n|))), each step in f32.
    static func roundHalfAwayFromZero(_ n: Float) -> Float {
        let a = abs(n)
        let floored = a.rounded(.down)
        let b = floored + (2 * (a - floored)).rounded(.down)
        return n > 0 ? b : n < 0 ? -b : 0
    }

    @inline(__always) static func store16(_ v: UInt16, _ out: UnsafeMutableRawBufferPointer, at offset: Int) {
        out[offset] = UInt8(truncatingIfNeeded: v)
        out[offset + 1] = UInt8(truncatingIfNeeded: v >> 8)
    }
}
