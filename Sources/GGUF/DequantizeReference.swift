import Tensors

/// The plain reference dequantizer: one element at a time, each formula written out as the gguf
/// package's numpy code computes it (`gguf.quants.dequantize`), operation for operation in f32, so the
/// result is bit-identical to it. In particular nothing is fused: `d * q + m` is a rounded product then a
/// rounded sum, and K-quant sub-block scales are rounded products (`d * sc`) before they multiply `q`.
/// `Dequantize.swift` holds the fast path; `DequantizeTests` holds the two together on random blocks.
public enum DequantizeReference {
    /// Fills `out` (one f32 per element) from `bytes`, which hold `out.count` elements of `type`.
    public static func dequantize(_ type: GGMLType, _ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count % type.blockSize == 0 && bytes.count == type.byteCount(elements: out.count))
        for e in 0..<out.count { out[e] = element(type, bytes, e) }
    }

    static func f16(_ b: UnsafeRawBufferPointer, _ at: Int) -> Float {
        HalfConversion.float(f16: UInt16(b[at]) | UInt16(b[at + 1]) << 8)
    }

    /// Element `e` of the tensor.
    static func element(_ type: GGMLType, _ b: UnsafeRawBufferPointer, _ e: Int) -> Float {
        let block = e / type.blockSize, i = e % type.blockSize
        let o = block * type.blockBytes  // first byte of the block
        switch type {
        case .f32:
            return Float(bitPattern: UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24)
        case .f16:
            return f16(b, o)
        case .bf16:
            return Float(bitPattern: (UInt32(b[o]) | UInt32(b[o + 1]) << 8) << 16)
        case .q8_0:
            // d (f16), then 32 int8: x = q * d.
            return Float(Int8(bitPattern: b[o + 2 + i])) * f16(b, o)
        case .q4_0, .q4_1:
            // Low nibbles of the 16 bytes are elements 0-15, high nibbles 16-31.
            let qs = type == .q4_0 ? o + 2 : o + 4
            let q = i < 16 ? b[qs + i] & 0x0F : b[qs + i - 16] >> 4
            if type == .q4_0 { return f16(b, o) * Float(Int(q) - 8) }
            return f16(b, o) * Float(q) + f16(b, o + 2)
        case .q5_0, .q5_1:
            // A u32 of fifth bits (bit i for element i), then nibbles as in Q4.
            let qh = type == .q5_0 ? o + 2 : o + 4
            let high = (UInt32(b[qh]) | UInt32(b[qh + 1]) << 8 | UInt32(b[qh + 2]) << 16 | UInt32(b[qh + 3]) << 24) >> UInt32(i) & 1
            let low = i < 16 ? b[qh + 4 + i] & 0x0F : b[qh + 4 + i - 16] >> 4
            let q = UInt32(low) | high << 4
            if type == .q5_0 { return f16(b, o) * Float(Int(q) - 16) }
            return f16(b, o) * Float(q) + f16(b, o + 2)
        case .q4_K, .q5_K:
            // 8 sub-blocks of 32, each with a 6-bit scale and min; x = (d·sc)·q − dmin·m.
            let j = i / 32, k = i % 32
            let (sc, m) = kScaleMin(b, o + 4, j)
            let d = f16(b, o) * Float(sc), dm = f16(b, o + 2) * Float(m)
            var q: UInt8
            if type == .q4_K {
                let byte = b[o + 16 + (j / 2) * 32 + k]
                q = j % 2 == 0 ? byte & 0x0F : byte >> 4
            } else {
                let byte = b[o + 48 + (j / 2) * 32 + k]
                q = j % 2 == 0 ? byte & 0x0F : byte >> 4
                q |= (b[o + 16 + k] >> UInt8(j) & 1) << 4
            }
            return d * Float(q) - dm
        case .q6_K:
            // 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales (one per 16), f16 d.
            let g = i / 128, r = i % 128
            let low = b[o + g * 64 + r % 64] >> UInt8(4 * (r / 64)) & 0x0F
            let high = b[o + 128 + g * 32 + r % 32] >> UInt8(2 * (r / 32)) & 0x03
            let q = Int(low | high << 4) - 32
            let scale = Float(Int8(bitPattern: b[o + 192 + i / 16]))
            return (f16(b, o + 208) * scale) * Float(q)
        }
    }

    /// The 6-bit scale and min of sub-block `j` from the 12 packed bytes at `s` (ggml's get_scale_min_k4):
    /// bytes 0-3 hold scales 0-3 (and the top bits of scales 4-7), 4-7 the mins likewise, 8-11 the low
    /// nibbles of scales 4-7 (low) and mins 4-7 (high).
    static func kScaleMin(_ b: UnsafeRawBufferPointer, _ s: Int, _ j: Int) -> (UInt8, UInt8) {
        if j < 4 { return (b[s + j] & 63, b[s + 4 + j] & 63) }
        let jj = j - 4
        return ((b[s + 8 + jj] & 0x0F) | ((b[s + jj] >> 2) & 0x30),
                (b[s + 8 + jj] >> 4) | ((b[s + 4 + jj] >> 2) & 0x30))
    }
}
