#if canImport(Glibc)
import Glibc
#endif

/// Causal-LM cross-entropy fused with the LM head and run over chunks of rows, so the [N, V] logits of a
/// whole batch never sit in memory: each chunk's logits are made, turned into their gradient in place,
/// pushed back through the head, and dropped.
///
/// Targets are ALREADY SHIFTED: targets[n] is the token row n must predict (for a causal LM, the next
/// token of its example), -100 where there is no loss. transformers instead shifts inside the model
/// (labels[t+1] is the target of position t); the caller converts.
///
/// The loss is a SUM over labelled rows; gradients are scaled by 1/normalizer, where the caller passes the
/// number of labelled tokens of the whole optimizer step (across accumulation and ranks, as transformers'
/// num_items_in_batch), so accumulating micro-batches gives exactly the full-batch gradient.
public enum CrossEntropy {
    public static let ignoreIndex: Int32 = -100
    public static let defaultChunkRows = 256

    /// Returns Σ −log softmax(h·Wᵀ)[target] over labelled rows (summed in f64) and their count. When
    /// dhidden/dweight are given, also, with dlogits = (softmax − onehot(target)) / normalizer:
    ///   dhidden[N, H] += dlogits · W        dweight[V, H] += dlogitsᵀ · hidden
    /// hidden[N, H], weight[V, H] (nn.Linear layout). Every target must be -100 or in 0..<V.
    /// With a `softcap` c (Gemma's final_logit_softcapping) the logits are c·tanh(z / c) and dlogits is
    /// multiplied by 1 − tanh²(z / c) on its way back to z.
    public static func lmHeadLoss(dhidden: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                  hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>, targets: [Int32],
                                  normalizer: Float, H: Int, V: Int, softcap: Float? = nil, chunkRows: Int = defaultChunkRows,
                                  scratch: UnsafeMutablePointer<Float>? = nil) -> (lossSum: Double, labelTokens: Int) {
        let labelled = targets.indices.filter { targets[$0] != ignoreIndex }
        guard !labelled.isEmpty else { return (0, 0) }
        let chunk = max(1, min(chunkRows, labelled.count))
        // A reused scratch saves faulting in chunk·V fresh floats on every call.
        let owned = scratch == nil ? UnsafeMutablePointer<Float>.allocate(capacity: scratchCount(chunkRows: chunk, H: H, V: V)) : nil
        defer { owned?.deallocate() }
        let logits = scratch ?? owned!
        let h = logits + chunk * V, dh = h + chunk * H
        var losses = [Double](repeating: 0, count: chunk)
        let wantGradients = dhidden != nil || dweight != nil
        let invNorm = 1 / normalizer
        var total: Double = 0
        var start = 0
        while start < labelled.count {
            let rows = Array(labelled[start..<min(start + chunk, labelled.count)])
            start += rows.count
            let R = rows.count
            for (r, n) in rows.enumerated() { (h + r * H).update(from: hidden + n * H, count: H) }
            Matmul.gemm(transA: false, transB: true, M: R, N: V, K: H, A: h, lda: H, B: weight, ldb: H, C: logits, ldc: V)
            losses.withUnsafeMutableBufferPointer { loss in
                Parallel.forEachChunk(R, minPerThread: 4) { range in
                    // Softcapping keeps tanh(z / c) of the row for the backward factor.
                    let tanhRow = softcap != nil && wantGradients ? UnsafeMutablePointer<Float>.allocate(capacity: V) : nil
                    defer { tanhRow?.deallocate() }
                    for r in range {
                        let row = logits + r * V
                        if let cap = softcap { Self.softcap(row, V, cap: cap, keepingTanh: tanhRow) }
                        let t = Int(targets[rows[r]])
                        let target = row[t]
                        let m = VectorMath.max(row, V)
                        let s = VectorMath.expShiftSum(row, V, shift: m)
                        loss[r] = Double(logf(s)) + Double(m) - Double(target)
                        guard wantGradients else { continue }
                        VectorMath.scale(row, V, by: invNorm / s)
                        row[t] -= invNorm
                        if let tanhRow { for v in 0..<V { row[v] *= 1 - tanhRow[v] * tanhRow[v] } }
                    }
                }
            }
            for r in 0..<R { total += losses[r] }
            guard wantGradients else { continue }
            if let dweight {
                Matmul.gemm(transA: true, transB: false, M: V, N: H, K: R, A: logits, lda: V, B: h, ldb: H,
                            beta: 1, C: dweight, ldc: H)
            }
            if let dhidden {
                Matmul.gemm(transA: false, transB: false, M: R, N: H, K: V, A: logits, lda: V, B: weight, ldb: H,
                            C: dh, ldc: H)
                for (r, n) in rows.enumerated() { Residual.add(dhidden + n * H, dh + r * H, count: H) }
            }
        }
        return (total, labelled.count)
    }

    /// row[v] = cap · tanh(row[v] / cap), in transformers' order of operations.
    public static func softcap(_ row: UnsafeMutablePointer<Float>, _ n: Int, cap: Float, keepingTanh: UnsafeMutablePointer<Float>? = nil) {
        for v in 0..<n {
            let t = tanhf(row[v] / cap)
            keepingTanh?[v] = t
            row[v] = t * cap
        }
    }

    /// Floats of the `scratch` lmHeadLoss takes for `chunkRows` (logits [chunk, V] and two [chunk, H]).
    public static func scratchCount(chunkRows: Int, H: Int, V: Int) -> Int { chunkRows * (V + 2 * H) }

    /// Plain definition in f64, one row at a time over full logits; same contract as `lmHeadLoss`.
    public static func lmHeadLossReference(dhidden: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                           hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>, targets: [Int32],
                                           normalizer: Float, H: Int, V: Int, softcap: Float? = nil) -> (lossSum: Double, labelTokens: Int) {
        var total: Double = 0, count = 0
        for (n, t) in targets.enumerated() where t != ignoreIndex {
            count += 1
            let raw = (0..<V).map { v in (0..<H).reduce(0.0) { $0 + Double(hidden[n * H + $1]) * Double(weight[v * H + $1]) } }
            let cap = softcap.map(Double.init)
            let z = cap.map { c in raw.map { c * tanh($0 / c) } } ?? raw
            let m = z.max()!
            let e = z.map { exp($0 - m) }
            let s = e.reduce(0, +)
            total += log(s) + m - z[Int(t)]
            for v in 0..<V {
                let capFactor = cap.map { c in 1 - tanh(raw[v] / c) * tanh(raw[v] / c) } ?? 1
                let d = (e[v] / s - (v == Int(t) ? 1 : 0)) / Double(normalizer) * capFactor
                for c in 0..<H {
                    dhidden[n * H + c] += Float(d * Double(weight[v * H + c]))
                    dweight[v * H + c] += Float(d * Double(hidden[n * H + c]))
                }
            }
        }
        return (total, count)
    }
}
