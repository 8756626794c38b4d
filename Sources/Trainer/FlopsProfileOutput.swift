import Foundation
import Formats

/// The profile as DeepSpeed's flops profiler prints it (a summary, the top modules per depth, and with
/// `detailed` the whole tree), and as `flops_profile.json` for the report.
extension FlopsProfile {
    /// `1.02 GFLOPs`, `0 FLOPs`, `1.75 M` (no unit).
    static func count(_ v: Int, _ unit: String = "") -> String {
        let d = Double(v)
        for (limit, prefix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")] where d >= limit {
            return String(format: "%.2f %@", d / limit, prefix + unit)
        }
        return unit.isEmpty ? "\(v)" : "\(v) \(unit)"
    }

    static func ms(_ s: Double?) -> String { s.map { String(format: "%.2f ms", $0 * 1000) } ?? "-" }

    private func line(_ m: ModuleProfile) -> String {
        let share = m.latency.map { String(format: "%.1f%%", 100 * $0 / max(stepLatency, 1e-12)) } ?? "-"
        return "\(m.name): \(Self.count(m.parameters)) params, \(Self.count(m.flops, "FLOPs")) (fwd \(Self.count(m.forwardFLOPs, "FLOPs")), bwd \(Self.count(m.backwardFLOPs, "FLOPs"))), "
            + "\(Self.ms(m.latency)), \(share) of the step"
    }

    /// `moduleDepth` -1 shows every depth; `topModules` rows per depth, largest latency (then FLOPs) first.
    public func text(moduleDepth: Int, topModules: Int, detailed: Bool) -> String {
        var out = ["-------------------------- FLOPs profiler --------------------------",
                   "Profile summary at step \(step):",
                   "data-parallel ranks:              \(worldSize)",
                   "params per rank:                  \(Self.count(parameters))",
                   "fwd MACs per rank:                \(Self.count(forwardFLOPs / 2, "MACs"))",
                   "fwd FLOPs per rank:               \(Self.count(forwardFLOPs, "FLOPs"))",
                   "bwd FLOPs per rank:               \(Self.count(backwardFLOPs, "FLOPs"))",
                   "fwd+bwd FLOPs per rank:           \(Self.count(forwardFLOPs + backwardFLOPs, "FLOPs"))",
                   "fwd latency:                      \(Self.ms(times.forward))",
                   "bwd latency:                      \(Self.ms(times.backward))",
                   "step latency:                     \(Self.ms(stepLatency))",
                   String(format: "fwd FLOPS per rank:               %.2f GFLOPS", Double(forwardFLOPs) / max(times.forward, 1e-12) / 1e9),
                   String(format: "fwd+bwd+step FLOPS per rank:      %.2f GFLOPS", achievedFLOPS / 1e9),
                   String(format: "sgemm peak (measured this run):   %.2f GFLOPS", sgemmPeak / 1e9),
                   String(format: "MFU:                              %.1f%%", 100 * mfu),
                   "",
                   "Top \(topModules) module(s) per depth (latency, then FLOPs):"]
        let deepest = modules.map(\.depth).max() ?? 0
        for d in 0...(moduleDepth < 0 ? deepest : min(moduleDepth, deepest)) {
            let top = modules.filter { $0.depth == d }
                .sorted { ($0.latency ?? -1, $0.flops) > ($1.latency ?? -1, $1.flops) }.prefix(topModules)
            out.append("depth \(d): " + top.map { "\($0.name) (\(Self.ms($0.latency)), \(Self.count($0.flops, "FLOPs")))" }.joined(separator: ", "))
        }
        if detailed {
            out += ["", "Detailed profile (FLOPs counted per kernel: linear layers, attention products, LM head):"]
            for m in modules where moduleDepth < 0 || m.depth <= moduleDepth {
                out.append(String(repeating: "  ", count: m.depth) + line(m))
            }
        }
        out.append("---------------------------------------------------------------------")
        return out.joined(separator: "\n")
    }

    public var json: JSONValue {
        func num(_ d: Double) -> JSONValue { d.isFinite ? .double(d) : .null }
        let rows: [JSONValue] = modules.map { m in
            .object(JSONObject([("name", .string(m.name)), ("depth", .int(Int64(m.depth))), ("params", .int(Int64(m.parameters))),
                                ("fwd_flops", .int(Int64(m.forwardFLOPs))), ("bwd_flops", .int(Int64(m.backwardFLOPs))),
                                ("latency_ms", m.latency.map { num($0 * 1000) } ?? .null)]))
        }
        return .object(JSONObject([
            ("step", .int(Int64(step))), ("world_size", .int(Int64(worldSize))), ("params", .int(Int64(parameters))),
            ("fwd_flops", .int(Int64(forwardFLOPs))), ("bwd_flops", .int(Int64(backwardFLOPs))),
            ("fwd_latency_ms", num(times.forward * 1000)), ("bwd_latency_ms", num(times.backward * 1000)),
            ("step_latency_ms", num(stepLatency * 1000)), ("achieved_flops", num(achievedFLOPS)),
            ("sgemm_peak_flops", num(sgemmPeak)), ("mfu", num(mfu)), ("modules", .array(rows)),
        ]))
    }
}
