import Dispatch
import Tensors

/// The fast dequantizer: block by block over raw pointers, the block's scales decoded once, blocks split
/// across threads. Each formula is the reference's (`DequantizeReference`), in the same f32 operations and
/// order, so the results are bit-identical; `DequantizeTests` checks that on random blocks of every type.
public enum Dequantize {
    /// Fills `out` from `bytes` (`out.count` elements of `type`). Large tensors use every core.
    public static func dequantize(_ type: GGMLType, _ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count % type.blockSize == 0 && bytes.count == type.byteCount(elements: out.count))
        let blocks = out.count / type.blockSize
        guard blocks > 0, let src = bytes.baseAddress, let dst = out.baseAddress else { return }
        // Chunks of ~64k elements: enough work per task to amortise the dispatch.
        let perChunk = max(1, 65536 / type.blockSize)
        let chunks = (blocks + perChunk - 1) / perChunk
        let run = { (c: Int) in
            let first = c * perChunk, last = min(blocks, first + perChunk)
            decode(type, src + first * type.blockBytes, dst + first * type.blockSize, blocks: last - first)
        }
        if chunks == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: run) }
    }

    @inline(__always) static func f16(_ p: UnsafeRawPointer) -> Float {
        HalfConversion.float(f16: UInt16(p.load(as: UInt8.self)) | UInt16(p.load(fromByteOffset: 1, as: UInt8.self)) << 8)
    }

    static func decode(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        let q = src.assumingMemoryBound(to: UInt8.self)
        switch type {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: blocks * 4)
        case .f16:
            for i in 0..<blocks { dst[i] = HalfConversion.float(f16: UInt16(q[2 * i]) | UInt16(q[2 * i + 1]) << 8) }
        case .bf16:
            for i in 0..<blocks { dst[i] = Float(bitPattern: (UInt32(q[2 * i]) | UInt32(q[2 * i + 1]) << 8) << 16) }
        case .q8_0:
            for b in 0..<blocks {
                let p = q + b * 34, o = dst + b * 32
                let d = f16(p)
                for i in 0..<32 { o[i] = Float(Int8(bitPattern: p[2 + i])) * d }
            }
        case .q4_0, .q4_1:
            let isQ4_1 = type == .q4_1
            let stride = type.blockBytes, qs = isQ4_1 ? 4 : 2
            for b in 0..<blocks {
                let p = q + b * stride, o = dst + b * 32
                let d = f16(p)
                if isQ4_1 {
                    let m = f16(p + 2)
                    for i in 0..<16 {
                        o[i] = d * Float(p[qs + i] & 0x0F) + m
                        o[i + 16] = d * Float(p[qs + i] >> 4) + m
                    }
                } else {
                    for i in 0..<16 {
                        o[i] = d * Float(Int(p[qs + i] & 0x0F) - 8)
                        o[i + 16] = d * Float(Int(p[qs + i] >> 4) - 8)
                    }
                }
            }
        case .q5_0, .q5_1:
            let isQ5_1 = type == .q5_1
            let stride = type.blockBytes, h = isQ5_1 ? 4 : 2
            for b in 0..<blocks {
                let p = q + b * stride, o = dst + b * 32
                let d = f16(p), m: Float = isQ5_1 ? f16(p + 2) : 0
                let qh = UInt32(p[h]) | UInt32(p[h + 1]) << 8 | UInt32(p[h + 2]) << 16 | UInt32(p[h + 3]) << 24
                for i in 0..<16 {
                    let lo = UInt32(p[h + 4 + i] & 0x0F) | (qh >> UInt32(i) & 1) << 4
                    let hi = UInt32(p[h + 4 + i] >> 4) | (qh >> UInt32(i + 16) & 1) << 4
                    if isQ5_1 {
                        o[i] = d * Float(lo) + m
                        o[i + 16] = d * Float(hi) + m
                    } else {
                        o[i] = d * Float(Int(lo) - 16)
                        o[i + 16] = d * Float(Int(hi) - 16)
                    }
                }
            }
        case .q4_K, .q5_K:
            let isQ5 = type == .q5_K
            let stride = type.blockBytes, qsAt = isQ5 ? 48 : 16
            for b in 0..<blocks {
                let p = q + b * stride, o = dst + b * 256
                let d = f16(p), dmin = f16(p + 2)
                let raw = UnsafeRawBufferPointer(start: p, count: stride)
                for j in 0..<8 {
                    let (sc, mn) = DequantizeReference.kScaleMin(raw, 4, j)
                    let dj = d * Float(sc), mj = dmin * Float(mn)
                    let bytes = p + qsAt + (j / 2) * 32, shift = UInt8(4 * (j % 2))
                    let out = o + j * 32
                    if isQ5 {
                        for k in 0..<32 {
                            let v = (bytes[k] >> shift) & 0x0F | (p[16 + k] >> UInt8(j) & 1) << 4
                            out[k] = dj * Float(v) - mj
                        }
                    } else {
                        for k in 0..<32 { out[k] = dj * Float((bytes[k] >> shift) & 0x0F) - mj }
                    }
                }
            }
        case .q6_K:
            for b in 0..<blocks {
                let p = q + b * 210, o = dst + b * 256
                let d = f16(p + 208)
                for g in 0..<2 {
                    let ql = p + g * 64, qh = p + 128 + g * 32, out = o + g * 128
                    for r in 0..<128 {
                        let low = ql[r % 64] >> UInt8(4 * (r / 64)) & 0x0F
                        let high = qh[r % 32] >> UInt8(2 * (r / 32)) & 0x03
                        let scale = d * Float(Int8(bitPattern: p[192 + (g * 128 + r) / 16]))
                        out[r] = scale * Float(Int(low | high << 4) - 32)
                    }
                }
            }
        }
    }
}
