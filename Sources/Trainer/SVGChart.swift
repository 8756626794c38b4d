import Foundation

/// Small inline SVG charts for report.html: line charts of (step, value) series and a horizontal bar
/// chart. No scripts, no external resources, so the file renders anywhere, offline.
enum SVGChart {
    struct Series {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]
        /// Dots instead of a line (sparse series such as evaluations).
        var dots = false
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A label that keeps 3 significant digits at any scale (1.23e-05, 0.0123, 123, 1.23e+06).
    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        return a >= 1e-3 && a < 1e5 ? String(format: "%.3g", v) : String(format: "%.2e", v)
    }

    /// A line chart `width`×`height` with axes, 5 ticks per axis and a legend; empty series are left out.
    static func lines(title: String, _ series: [Series], width: Int = 440, height: Int = 250) -> String {
        let shown = series.filter { !$0.points.isEmpty }
        let (left, right, top, bottom) = (64.0, 12.0, 28.0, 36.0)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\">"
        svg += "<text x=\"\(Int(left))\" y=\"18\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>"
        guard !shown.isEmpty else {
            return svg + "<text x=\"\(Int(left))\" y=\"\(height / 2)\" font-size=\"12\" fill=\"#777\">no data yet</text></svg>"
        }
        let xs = shown.flatMap { $0.points.map(\.x) }, ys = shown.flatMap { $0.points.map(\.y) }
        var (x0, x1, y0, y1) = (xs.min()!, xs.max()!, ys.min()!, ys.max()!)
        if x1 == x0 { x0 -= 1; x1 += 1 }
        if y1 == y0 { let d = max(abs(y0) * 0.05, 1e-12); y0 -= d; y1 += d }
        let w = Double(width) - left - right, h = Double(height) - top - bottom
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * w }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * h }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(w)\" height=\"\(h)\" fill=\"#fafafa\" stroke=\"#999\"/>"
        for i in 0...4 {
            let f = Double(i) / 4
            let y = y0 + f * (y1 - y0), x = x0 + f * (x1 - x0)
            svg += "<line x1=\"\(left)\" x2=\"\(left + w)\" y1=\"\(py(y))\" y2=\"\(py(y))\" stroke=\"#e4e4e4\"/>"
            svg += "<text x=\"\(left - 4)\" y=\"\(py(y) + 4)\" font-size=\"10\" text-anchor=\"end\">\(label(y))</text>"
            svg += "<text x=\"\(px(x))\" y=\"\(top + h + 14)\" font-size=\"10\" text-anchor=\"middle\">\(label(x.rounded()))</text>"
        }
        svg += "<text x=\"\(left + w / 2)\" y=\"\(Double(height) - 6)\" font-size=\"11\" text-anchor=\"middle\">step</text>"
        for (i, s) in shown.enumerated() {
            if s.dots || s.points.count == 1 {
                for p in s.points { svg += "<circle cx=\"\(px(p.x))\" cy=\"\(py(p.y))\" r=\"3\" fill=\"\(s.color)\"/>" }
            } else {
                let path = s.points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
                svg += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\" points=\"\(path)\"/>"
            }
            let lx = left + w - 120, ly = top + 14 + Double(i) * 14
            svg += "<rect x=\"\(lx)\" y=\"\(ly - 8)\" width=\"10\" height=\"10\" fill=\"\(s.color)\"/>"
            svg += "<text x=\"\(lx + 14)\" y=\"\(ly + 1)\" font-size=\"11\">\(escape(s.name))</text>"
        }
        return svg + "</svg>"
    }

    /// Horizontal bars, one per (label, value), with the value's text (`format`) at the bar's end.
    static func bars(title: String, _ items: [(label: String, value: Double)], format: (Double) -> String, width: Int = 720) -> String {
        let rowHeight = 20.0, left = 170.0, top = 28.0
        let height = Int(top + rowHeight * Double(max(items.count, 1)) + 12)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\">"
        svg += "<text x=\"4\" y=\"18\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>"
        let maxValue = max(items.map(\.value).max() ?? 0, 1e-12)
        let w = Double(width) - left - 90
        for (i, item) in items.enumerated() {
            let y = top + Double(i) * rowHeight
            svg += "<text x=\"\(left - 6)\" y=\"\(y + 13)\" font-size=\"11\" text-anchor=\"end\">\(escape(item.label))</text>"
            let bw = max(item.value / maxValue * w, 0)
            svg += "<rect x=\"\(left)\" y=\"\(y + 2)\" width=\"\(bw)\" height=\"\(rowHeight - 6)\" fill=\"#4a7bd0\"/>"
            svg += "<text x=\"\(left + bw + 4)\" y=\"\(y + 13)\" font-size=\"11\">\(escape(format(item.value)))</text>"
        }
        return svg + "</svg>"
    }
}
