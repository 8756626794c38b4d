import Formats
import XCTest
@testable import Tokenizers

/// The hand-written scanners must split exactly like the general Swift `Regex` path on the same pattern.
/// Exact comparison of match ranges (no tolerance) over the golden edge-case corpus plus 3000 generated strings
/// drawn from an alphabet of the characters that decide between the regex alternatives.
final class KnownPatternScannerTests: XCTestCase {
    static let alphabet: [String] = [
        "a", "Z", "é", "ж", "ع", "क", "ก", "中", "ア", "1", "9", "٣", "①", "²", " ", " ", " ", "\t", "\n", "\r", "\r\n",
        "\u{00A0}", "\u{3000}", "\u{2028}", "'", "'", "s", "S", "t", "l", "L", "re", "VE", "m", "d", "D", ".", ",", "!",
        "(", "-", "_", "\"", "😀", "👍🏽", "\u{200D}", "\u{0301}", "\u{FFFD}", "\u{200B}", "$", "<", "|",
    ]

    /// Deterministic corpus: the goldens' texts, then random strings from a fixed-seed LCG.
    static func corpus() throws -> [String] {
        var texts: [String] = []
        let golden = try JSONValue.read(path: GoldenTests.fixtures.appendingPathComponent("gpt2.json").path)
        for c in golden["cases"]!.arrayValue! { texts.append(c["text"]!.stringValue!) }
        var state: UInt64 = 0x9E3779B97F4A7C15
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        for _ in 0..<3000 {
            var s = ""
            for _ in 0..<(1 + next(24)) { s += alphabet[next(alphabet.count)] }
            texts.append(s)
        }
        return texts
    }

    func testScannersAgreeWithRegex() throws {
        let texts = try Self.corpus()
        for kind in KnownPattern.allCases {
            let scanner = KnownPatternScanner(kind: kind)
            // The reference is Oniguruma itself, the engine HF tokenizers runs these patterns with.
            let regex = try OnigurumaMatcher(pattern: kind.pattern, file: "test")
            var mismatches = 0
            for t in texts {
                let s = scalars(t)
                let a = scanner.matches(in: s), b = try regex.matches(in: s)
                if a != b {
                    mismatches += 1
                    if mismatches <= 5 { XCTFail("\(kind) \(t.debugDescription): scanner \(a) regex \(b)") }
                }
            }
            XCTAssertEqual(mismatches, 0, "\(kind): \(mismatches) of \(texts.count) texts split differently")
        }
    }

    /// Oniguruma folds U+017F (long s) to "s" under (?i:), so Llama-3 treats "'ſ" as a contraction; splits
    /// checked against tokenizers 0.23.3's pre_tokenize_str output.
    func testLlama3CaseFoldingMatchesOniguruma() {
        let scanner = KnownPatternScanner(kind: .llama3)
        func split(_ t: String) -> [String] {
            let s = scalars(t)
            return scanner.matches(in: s).map { string(Array(s[$0])) }
        }
        XCTAssertEqual(split("it'ſ x'K"), ["it", "'ſ", " x", "'K"])
        XCTAssertEqual(split("A'LL b'Ll"), ["A", "'LL", " b", "'Ll"])
        XCTAssertEqual(split("x \u{3000}\n\r\n y"), ["x", " \u{3000}\n\r\n", " y"])
        XCTAssertEqual(split("\u{661}\u{662}\u{663}\u{664} ①②③④"), ["١٢٣", "٤", " ", "①②③", "④"])
    }

    func testKnownPatternsAreRecognisedFromTheirText() {
        for kind in KnownPattern.allCases { XCTAssertEqual(KnownPattern(pattern: kind.pattern), kind) }
        XCTAssertNil(KnownPattern(pattern: #"\s+"#))
    }
}
