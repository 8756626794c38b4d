import Foundation
import Formats

public enum TrainingReportError: Error, CustomStringConvertible {
    case noMetrics(directory: String)
    case badLine(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .noMetrics(let d): return "\(d): no metrics.jsonl (is this a run's output.dir, with logging.jsonl on?)"
        case .badLine(let p, let l, let r): return "\(p):\(l): not a metrics record: \(r)"
        }
    }
}

/// `OUTPUT_DIR/report.html`: one self-contained page (inline SVG, no scripts, no network) with the
/// curves of metrics.jsonl, the run's recipe.yaml and the FLOPs profile's bars. Built at the end of
/// training and by `swift-finetune report OUTPUT_DIR` for any run, a running one included (a last line
/// still being written is left out).
public enum TrainingReport {
    public struct Run {
        public var steps: [JSONValue] = []
        public var evals: [JSONValue] = []
        public var recipe: String?
        public var profile: JSONValue?
    }

    public static func read(outputDir: String) throws -> Run {
        let path = (outputDir as NSString).appendingPathComponent("metrics.jsonl")
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingReportError.noMetrics(directory: outputDir) }
        var run = Run()
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (i, line) in lines.enumerated() where !line.isEmpty {
            let record: JSONValue
            do {
                record = try JSONValue.parse(String(line), source: path)
            } catch {
                // The last line of a running run may be half written.
                if i == lines.count - 1 && !text.hasSuffix("\n") { break }
                throw TrainingReportError.badLine(path: path, line: i + 1, reason: "\(error)")
            }
            guard record["step"]?.intValue != nil else { throw TrainingReportError.badLine(path: path, line: i + 1, reason: "no 'step'") }
            if record["eval_loss"] != nil { run.evals.append(record) } else { run.steps.append(record) }
        }
        run.recipe = try? String(contentsOfFile: (outputDir as NSString).appendingPathComponent("recipe.yaml"), encoding: .utf8)
        run.profile = try? JSONValue.read(path: (outputDir as NSString).appendingPathComponent("flops_profile.json"))
        return run
    }

    /// Writes report.html into `outputDir` (atomically) and returns its path.
    @discardableResult
    public static func write(outputDir: String) throws -> String {
        let path = (outputDir as NSString).appendingPathComponent("report.html")
        try AtomicFile.write(Data(html(try read(outputDir: outputDir), title: outputDir).utf8), to: path)
        return path
    }

    static func series(_ records: [JSONValue], _ key: String) -> [(x: Double, y: Double)] {
        records.compactMap { r in
            guard let x = r["step"]?.doubleValue, let y = r[key]?.doubleValue, y.isFinite else { return nil }
            return (x, y)
        }
    }

    public static func html(_ run: Run, title: String) -> String {
        let s = run.steps, e = run.evals
        var charts = [
            SVGChart.lines(title: "loss", [.init(name: "train", color: "#1f5fbf", points: series(s, "loss")),
                                           .init(name: "eval", color: "#d0501f", points: series(e, "eval_loss"), dots: true)]),
            SVGChart.lines(title: "learning rate", [.init(name: "lr", color: "#2a8f3a", points: series(s, "learning_rate"))]),
            SVGChart.lines(title: "grad norm", [.init(name: "grad norm", color: "#8a3fbf", points: series(s, "grad_norm"))]),
            SVGChart.lines(title: "tokens/s", [.init(name: "tokens/s", color: "#bf8a1f", points: series(s, "tokens_per_second"))]),
        ]
        let scale = series(s, "loss_scale")
        if !scale.isEmpty { charts.append(SVGChart.lines(title: "loss scale (fp16)", [.init(name: "scale", color: "#bf1f5f", points: scale)])) }
        let timed = s.filter { $0["time_ms"] != nil }
        if !timed.isEmpty {
            let parts = [("forward", "#1f5fbf"), ("backward", "#d0501f"), ("communication", "#2a8f3a"), ("optimizer", "#8a3fbf"), ("step", "#444444")]
            charts.append(SVGChart.lines(title: "step time (ms, wall_clock_breakdown)", parts.map { name, color in
                SVGChart.Series(name: name, color: color, points: timed.compactMap { r in
                    guard let x = r["step"]?.doubleValue, let y = r["time_ms"]?[name]?.doubleValue else { return nil }
                    return (x, y)
                })
            }))
        }
        var summary: [String] = ["\(s.count) optimizer steps logged"]
        if let last = s.last {
            if let l = last["loss"]?.doubleValue { summary.append(String(format: "last train loss %.4f (step %d)", l, last["step"]?.intValue ?? 0)) }
            if let t = last["elapsed_seconds"]?.doubleValue { summary.append(String(format: "%.1f s of training", t)) }
        }
        if let l = e.last?["eval_loss"]?.doubleValue { summary.append(String(format: "last eval loss %.4f", l)) }
        let skipped = s.filter { $0["skipped"]?.boolValue == true }.count
        if skipped > 0 { summary.append("\(skipped) step(s) skipped by the fp16 loss scaler") }
        var body = "<h1>Training report</h1><p class=\"dir\">\(SVGChart.escape(title))</p><p>\(summary.map(SVGChart.escape).joined(separator: " · "))</p>"
        body += "<div class=\"charts\">" + charts.map { "<div>\($0)</div>" }.joined() + "</div>"
        body += "<h2>FLOPs profile</h2>" + profileSection(run.profile)
        body += "<h2>Recipe</h2>" + (run.recipe.map { "<pre>\(SVGChart.escape($0))</pre>" } ?? "<p>(no recipe.yaml: a run driven from Swift code)</p>")
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Training report: \(SVGChart.escape(title))</title>
        <style>body{font-family:sans-serif;margin:24px;color:#222}.charts{display:flex;flex-wrap:wrap;gap:12px}
        .charts div{border:1px solid #ddd;padding:6px}pre{background:#f4f4f4;padding:10px;overflow:auto}.dir{color:#666}
        table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}td:first-child{text-align:left}</style>
        </head><body>
        \(body)
        </body></html>

        """
    }

    static func profileSection(_ profile: JSONValue?) -> String {
        guard let p = profile, let modules = p["modules"]?.arrayValue else {
            return "<p>(no flops_profile.json: turn on logging.flops_profiler)</p>"
        }
        func number(_ key: String) -> Double { p[key]?.doubleValue ?? .nan }
        var out = String(format: "<p>step %d: %.2f GFLOPs per rank (fwd %.2f, bwd %.2f), step %.2f ms, %.2f GFLOP/s achieved, sgemm peak %.2f GFLOP/s, MFU %.1f%%</p>",
                         p["step"]?.intValue ?? 0, (number("fwd_flops") + number("bwd_flops")) / 1e9, number("fwd_flops") / 1e9,
                         number("bwd_flops") / 1e9, number("step_latency_ms"), number("achieved_flops") / 1e9,
                         number("sgemm_peak_flops") / 1e9, 100 * number("mfu"))
        let timed = modules.filter { ($0["depth"]?.intValue ?? 0) >= 1 && $0["latency_ms"]?.doubleValue != nil }
        out += SVGChart.bars(title: "latency per module (ms)", timed.map { m in
            let mark = String(repeating: "· ", count: max((m["depth"]?.intValue ?? 1) - 1, 0))
            return (mark + (m["name"]?.stringValue ?? "?"), m["latency_ms"]?.doubleValue ?? 0)
        }, format: { String(format: "%.2f ms", $0) })
        let counted = modules.filter { ($0["depth"]?.intValue ?? 0) == 3 || ($0["name"]?.stringValue == "head and loss") }
        out += SVGChart.bars(title: "FLOPs per module (forward + backward)", counted.map { m in
            (m["name"]?.stringValue ?? "?", Double((m["fwd_flops"]?.intValue ?? 0) + (m["bwd_flops"]?.intValue ?? 0)))
        }, format: { String(format: "%.1f MFLOPs", $0 / 1e6) })
        return out
    }
}
