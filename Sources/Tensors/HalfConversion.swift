/// f32 ⇄ bf16/f16 conversions, bit-identical to what `tensor.to(torch.bfloat16 / torch.float16)` gives
/// on an x86 CPU (ATen's vectorised path, which writes the bytes of every checkpoint saved from
/// PyTorch): round to nearest, ties to even; f16 overflow (|x| ≥ 65520) → ±inf; f16 subnormals rounded
/// exactly. NaN differs from c10's scalar conversion: bf16 NaN → 0xFFFF (ATen's vector constant, not
/// c10's 0x7FC0), f16 NaN keeps its sign and top payload bits with the quiet bit set (F16C's rule).
/// Each has a plain scalar reference and a SIMD path over whole buffers; tests hold them together.
public enum HalfConversion {
    // MARK: scalar references

    @inlinable
    public static func bf16Bits(_ x: Float) -> UInt16 {
        if x.isNaN { return 0xFFFF }
        let u = x.bitPattern
        return UInt16(truncatingIfNeeded: (u &+ ((u >> 16) & 1) &+ 0x7FFF) >> 16)
    }

    @inlinable
    public static func float(bf16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    @inlinable
    public static func f16Bits(_ x: Float) -> UInt16 {
        var u = x.bitPattern
        let sign = u & 0x8000_0000
        u ^= sign
        var o: UInt32
        if u >= 0x4780_0000 {  // ≥ 65536 (and inf/NaN): values in [65520, 65536) overflow below
            o = u > 0x7F80_0000 ? 0x7E00 | ((u >> 13) & 0x3FF) : 0x7C00
        } else if u < 0x3880_0000 {  // below the smallest normal f16 (2^-14): subnormal or zero
            // Adding 0.5 aligns the f16 subnormal grid with the f32 mantissa's last bits, so the FPU's
            // own round-to-nearest-even does the rounding.
            let f = Float(bitPattern: u) + Float(bitPattern: 0x3F00_0000)
            o = f.bitPattern &- 0x3F00_0000
        } else {
            let mantOdd = (u >> 13) & 1
            u = u &+ 0xC800_0FFF  // rebias exponent (15 - 127) << 23, plus the rounding bias 0xFFF
            u = u &+ mantOdd
            o = u >> 13
        }
        return UInt16(truncatingIfNeeded: o | (sign >> 16))
    }

    @inlinable
    public static func float(f16 bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exp = UInt32(bits >> 10) & 0x1F
        let mant = UInt32(bits) & 0x3FF
        if exp == 0 {
            // Subnormal: mant × 2^-24, exact in f32.
            let f = Float(mant) * Float(bitPattern: 0x3380_0000)
            return Float(bitPattern: f.bitPattern | sign)
        }
        if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }

    // MARK: buffers

    public static func toBF16(_ src: UnsafeBufferPointer<Float>, _ dst: UnsafeMutableBufferPointer<UInt16>) {
        precondition(dst.count >= src.count)
        let n = src.count
        var i = 0
        let s = UnsafeRawPointer(src.baseAddress!)
        let d = UnsafeMutableRawPointer(dst.baseAddress!)
        while i + 8 <= n {
            // Int32 lanes and masks made by arithmetic: the stdlib's SIMD compares and `replacing`
            // are scalarized (a loop through memory) on baseline x86-64; shifts and bit ops are not.
            // The shifts' sign fill is cut off by the truncation to 16 bits.
            let u = s.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Int32>.self)
            let rounded = (u &+ ((u &>> 16) & 1) &+ 0x7FFF) &>> 16
            // NaN: exponent all ones and a non-zero mantissa, i.e. magnitude > 0x7F80_0000.
            let isNaN = Self.lanesAbove(u & 0x7FFF_FFFF, 0x7F80_0000)
            let out = SIMD8<UInt16>(truncatingIfNeeded: Self.select(isNaN, SIMD8(repeating: -1), rounded))
            d.storeBytes(of: out, toByteOffset: i * 2, as: SIMD8<UInt16>.self)
            i += 8
        }
        while i < n { dst[i] = bf16Bits(src[i]); i += 1 }
    }

    public static func fromBF16(_ src: UnsafeBufferPointer<UInt16>, _ dst: UnsafeMutableBufferPointer<Float>) {
        precondition(dst.count >= src.count)
        let n = src.count
        var i = 0
        let s = UnsafeRawPointer(src.baseAddress!)
        let d = UnsafeMutableRawPointer(dst.baseAddress!)
        while i + 8 <= n {
            let h = s.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)
            d.storeBytes(of: SIMD8<UInt32>(truncatingIfNeeded: h) &<< 16, toByteOffset: i * 4, as: SIMD8<UInt32>.self)
            i += 8
        }
        while i < n { dst[i] = float(bf16: src[i]); i += 1 }
    }

    public static func toF16(_ src: UnsafeBufferPointer<Float>, _ dst: UnsafeMutableBufferPointer<UInt16>) {
        precondition(dst.count >= src.count)
        let n = src.count
        var i = 0
        let s = UnsafeRawPointer(src.baseAddress!)
        let d = UnsafeMutableRawPointer(dst.baseAddress!)
        while i + 8 <= n {
            // Int32 lanes as in toBF16: the magnitude `u` fits, and signed compares vectorize.
            let x = s.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Int32>.self)
            let sign = x & Int32(bitPattern: 0x8000_0000)
            let u = x ^ sign
            // The three cases of the scalar reference, computed for all lanes and selected by mask.
            let nanOrInf = Self.select(Self.lanesAbove(u, 0x7F80_0000), 0x7E00 | ((u &>> 13) & 0x3FF), SIMD8(repeating: 0x7C00))
            let sub = unsafeBitCast(u, to: SIMD8<Float>.self) + SIMD8<Float>(repeating: 0.5)
            let subBits = unsafeBitCast(sub, to: SIMD8<Int32>.self) &- 0x3F00_0000
            // 0xC800_0FFF as a wrapping Int32 addend; the arithmetic shift's sign fill lies above
            // the 16 bits kept.
            let normal = (u &+ Int32(bitPattern: 0xC800_0FFF) &+ ((u &>> 13) & 1)) &>> 13
            var o = Self.select(Self.lanesAbove(0x3880_0000, u), subBits, normal)
            o = Self.select(Self.lanesAbove(0x4780_0000, u), o, nanOrInf)
            let out = SIMD8<UInt16>(truncatingIfNeeded: o | (sign &>> 16))
            d.storeBytes(of: out, toByteOffset: i * 2, as: SIMD8<UInt16>.self)
            i += 8
        }
        while i < n { dst[i] = f16Bits(src[i]); i += 1 }
    }

    public static func fromF16(_ src: UnsafeBufferPointer<UInt16>, _ dst: UnsafeMutableBufferPointer<Float>) {
        precondition(dst.count >= src.count)
        let n = src.count
        var i = 0
        let s = UnsafeRawPointer(src.baseAddress!)
        let d = UnsafeMutableRawPointer(dst.baseAddress!)
        while i + 8 <= n {
            // Int32 lanes and arithmetic masks, as in toBF16.
            let h = SIMD8<Int32>(truncatingIfNeeded: s.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self))
            let sign = (h & 0x8000) &<< 16
            let exp = (h &>> 10) & 0x1F
            let mant = h & 0x3FF
            let normal = sign | ((exp &+ 112) &<< 23) | (mant &<< 13)
            let special = sign | 0x7F80_0000 | (mant &<< 13)
            let subF = SIMD8<Float>(mant) * SIMD8<Float>(repeating: Float(bitPattern: 0x3380_0000))
            let sub = unsafeBitCast(subF, to: SIMD8<Int32>.self) | sign
            var o = Self.select(Self.lanesAbove(exp, 0x1E), special, normal)
            o = Self.select(Self.lanesAbove(1, exp), sub, o)
            d.storeBytes(of: o, toByteOffset: i * 4, as: SIMD8<Int32>.self)
            i += 8
        }
        while i < n { dst[i] = float(f16: src[i]); i += 1 }
    }
}

extension HalfConversion {
    /// All ones in the lanes where a > b, zero elsewhere; for non-negative lanes (a − b cannot overflow).
    @inline(__always) static func lanesAbove(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> { (b &- a) &>> 31 }
    @inline(__always) static func lanesAbove(_ a: SIMD8<Int32>, _ b: Int32) -> SIMD8<Int32> { lanesAbove(a, SIMD8(repeating: b)) }
    @inline(__always) static func lanesAbove(_ a: Int32, _ b: SIMD8<Int32>) -> SIMD8<Int32> { lanesAbove(SIMD8(repeating: a), b) }
    /// `a` where `mask` is all ones, `b` where it is zero.
    @inline(__always) static func select(_ mask: SIMD8<Int32>, _ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> { (a & mask) | (b & ~mask) }
}

extension SIMD8 where Scalar == Float {
    @inlinable init(bitPattern u: SIMD8<UInt32>) {
        self = unsafeBitCast(u, to: SIMD8<Float>.self)
    }
}

extension SIMD8 where Scalar == UInt32 {
    @inlinable init(bitPattern f: SIMD8<Float>) {
        self = unsafeBitCast(f, to: SIMD8<UInt32>.self)
    }
}
