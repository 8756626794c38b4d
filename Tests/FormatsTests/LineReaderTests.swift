import XCTest
@testable import Formats

let formatsFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/formats")

func fixture(_ name: String) -> String { formatsFixtures.appendingPathComponent(name).path }

func expectedFixtureLines() throws -> [String] {
    let expected = try JSONValue.read(path: fixture("expected.json"))
    return expected["lines"]?.arrayValue?.compactMap(\.stringValue) ?? []
}

/// Serves bytes in chunks of the given sizes (cycled), to put line breaks on chunk boundaries.
final class ChunkedSource: ByteSource {
    private let bytes: [UInt8]
    private let sizes: [Int]
    private var offset = 0, turn = 0
    init(_ bytes: [UInt8], sizes: [Int]) { self.bytes = bytes; self.sizes = sizes }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(sizes[turn % sizes.count], buffer.count, bytes.count - offset)
        turn += 1
        for i in 0..<n { buffer[i] = bytes[offset + i] }
        offset += n
        return n
    }
}

final class LineReaderTests: XCTestCase {
    func testPlainGzipAndZstdGiveTheSameNumberedLines() throws {
        let expected = try expectedFixtureLines()
        XCTAssertEqual(expected.count, 4)
        for name in ["lines.jsonl", "lines.jsonl.gz", "lines.jsonl.zst"] {
            let lines = try LineReader.open(path: fixture(name)).readAll()
            XCTAssertEqual(lines.map(\.text), expected, name)
            XCTAssertEqual(lines.map(\.number), [1, 2, 3, 4], name)
        }
        XCTAssertEqual(try LineReader.open(path: fixture("lines.jsonl.zst")).readAll()[1].text, #"{"text": "café 中文 😀"}"#)
    }

    func testLongLineAcrossManyChunks() throws {
        let lines = try LineReader.open(path: fixture("long.txt.gz")).readAll()
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[0].text.utf8.count, 200_000)
        XCTAssertTrue(lines[0].text.utf8.allSatisfy { $0 == UInt8(ascii: "x") })
        XCTAssertEqual(lines[1], LineReader.Line(number: 2, text: "short"))
    }

    func testInvalidUTF8NamesFileAndLine() throws {
        let reader = try LineReader.open(path: fixture("bad_utf8.jsonl"))
        XCTAssertEqual(try reader.next()?.text, #"{"ok": 1}"#)
        XCTAssertThrowsError(try reader.next()) { e in
            XCTAssertEqual("\(e)", "\(fixture("bad_utf8.jsonl")):2: invalid UTF-8 at byte 10 of the line")
        }
    }

    func testTruncatedGzipIsAnErrorNamingTheFile() {
        XCTAssertThrowsError(try LineReader.open(path: fixture("truncated.jsonl.gz")).readAll()) { e in
            XCTAssertTrue("\(e)".hasPrefix(fixture("truncated.jsonl.gz")), "\(e)")
        }
    }

    func testBoundariesAgainstSplitReference() throws {
        // Random lines with \r\n and \n, served in odd chunk sizes (1...7 bytes) and compared with
        // a straightforward split of the whole text.
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<20 {
            var text = ""
            for i in 0..<50 {
                text += String(repeating: "é", count: Int.random(in: 0...5, using: &rng)) + "\(i)"
                text += Bool.random(using: &rng) ? "\r\n" : "\n"
            }
            if trial % 2 == 0 { text += "tail" }
            var reference = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
            if reference.last == "" { reference.removeLast() }
            let source = ChunkedSource(Array(text.utf8), sizes: [1, 7, 3, 2, 5])
            let got = try LineReader(source: source, name: "mem", chunkSize: 16).readAll()
            XCTAssertEqual(got.map(\.text), reference)
            XCTAssertEqual(got.last?.number, reference.count)
        }
    }

    func testBOMEmptyStreamsAndLimits() throws {
        XCTAssertEqual(try LineReader(source: ChunkedSource([0xEF, 0xBB, 0xBF] + Array("a\nb".utf8), sizes: [2]), name: "m").readAll().map(\.text), ["a", "b"])
        XCTAssertEqual(try LineReader(source: ChunkedSource([], sizes: [4]), name: "m").readAll(), [])
        XCTAssertEqual(try LineReader(source: ChunkedSource(Array("\n".utf8), sizes: [4]), name: "m").readAll().map(\.text), [""])
        let long = Array(String(repeating: "y", count: 100).utf8) + [0x0A]
        XCTAssertThrowsError(try LineReader(source: ChunkedSource(Array("ok\n".utf8) + long, sizes: [8]), name: "m", chunkSize: 16, maxLineBytes: 40).readAll()) { e in
            XCTAssertEqual(e as? LineReaderError, .lineTooLong(source: "m", line: 2, limit: 40))
        }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try LineReader.open(path: "/nonexistent/x.jsonl")) { e in
            XCTAssertTrue("\(e)".hasPrefix("/nonexistent/x.jsonl: cannot open"), "\(e)")
        }
        XCTAssertThrowsError(try LineReader.open(path: "/nonexistent/x.jsonl.zst")) { e in
            XCTAssertTrue("\(e)".hasPrefix("/nonexistent/x.jsonl.zst: cannot open"), "\(e)")
        }
    }
}
