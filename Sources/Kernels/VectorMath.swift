#if canImport(Glibc)
import Glibc
#endif

/// SIMD building blocks for the elementwise kernels. Swift does not reassociate float reductions on
/// its own, so sums use several independent SIMD accumulators explicitly.
public typealias F8 = SIMD8<Float>

public enum VectorMath {
    /// e^x for 8 lanes: range reduction x = n·ln2 + r, a degree-6 polynomial for e^r on |r| ≤ ln2/2,
    /// scaled by 2^n through the exponent bits. Relative error ≈ 2 ulp; inputs below −87.3 give 0
    /// (where expf goes subnormal), above 88.376 give +inf (2^n must stay a normal float).
    @inline(__always)
    public static func exp(_ x: F8) -> F8 {
        let hi = F8(repeating: 88.3762626647949)
        let lo = F8(repeating: -87.33654)
        var v = x.replacing(with: hi, where: x .> hi)
        v.replace(with: lo, where: v .< lo)
        v.replace(with: 0, where: x .!= x)  // NaN lanes must not reach the Int32 conversion
        // Adding 1.5·2²³ rounds to the nearest integer in the FPU and leaves that integer in the low
        // mantissa bits, which avoids Swift's per-lane checked Float→Int conversion.
        let magic = F8(repeating: 12_582_912)
        let t = v * 1.44269504088896341 + magic
        let n = t - magic
        // Cody–Waite: ln2 split in two so r keeps its low bits.
        var r = v - n * 0.693359375
        r = r + n * 2.12194440e-4
        var p = F8(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let r2 = r * r
        let er = p * r2 + r + 1
        let bits = unsafeBitCast(t, to: SIMD8<UInt32>.self) &- 0x4B40_0000  // n as a two's-complement integer
        let scale = unsafeBitCast((bits &+ 127) &<< 23, to: F8.self)
        var out = er * scale
        out.replace(with: .infinity, where: x .> hi)
        out.replace(with: 0, where: x .< lo)
        out.replace(with: x, where: x .!= x)  // NaN stays NaN
        return out
    }

    @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> F8 {
        UnsafeRawPointer(p).loadUnaligned(as: F8.self)
    }

    @inline(__always)
    public static func store(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
    }

    /// Σ x[i]·y[i] in f32 with four SIMD accumulators.
    @inline(__always)
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            a0 += load(x + i) * load(y + i)
            a1 += load(x + i + 8) * load(y + i + 8)
            a2 += load(x + i + 16) * load(y + i + 16)
            a3 += load(x + i + 24) * load(y + i + 24)
            i += 32
        }
        while i + 8 <= n { a0 += load(x + i) * load(y + i); i += 8 }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }

    @inline(__always)
    public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = F8(), a1 = F8()
        var i = 0
        while i + 16 <= n { a0 += load(x + i); a1 += load(x + i + 8); i += 16 }
        while i + 8 <= n { a0 += load(x + i); i += 8 }
        var s = (a0 + a1).sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }

    @inline(__always)
    public static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        var i = 0
        if n >= 8 {
            var a = load(x)
            i = 8
            // replacing(where:) compiles to vmaxps; the generic pointwiseMax is an out-of-line call.
            while i + 8 <= n { let b = load(x + i); a.replace(with: b, where: b .> a); i += 8 }
            m = a.max()
        }
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    /// x[i] = exp(x[i] − shift) in place; returns the sum of the results.
    @inline(__always)
    public static func expShiftSum(_ x: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
        var acc = F8()
        var i = 0
        let s = F8(repeating: shift)
        while i + 8 <= n {
            let e = exp(load(x + i) - s)
            store(e, x + i)
            acc += e
            i += 8
        }
        var total = acc.sum()
        while i < n { let e = expf(x[i] - shift); x[i] = e; total += e; i += 1 }
        return total
    }

    /// x[i] *= a in place.
    @inline(__always)
    public static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, by a: Float) {
        var i = 0
        while i + 8 <= n { store(load(x + i) * a, x + i); i += 8 }
        while i < n { x[i] *= a; i += 1 }
    }
}
