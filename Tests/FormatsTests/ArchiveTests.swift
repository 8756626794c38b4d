import XCTest
@testable import Formats

final class ArchiveTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("archive-tests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func tmp(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testReadsPythonMadeArchives() throws {
        let expected = try JSONValue.read(path: fixture("expected.json"))
        let members = expected["members"]?.arrayValue ?? []
        let readme = expected["readme"]?.stringValue
        let lines = try expectedFixtureLines()
        for name in ["data.tar", "data.tar.gz", "data.tar.zst", "data.zip"] {
            let entries = try ArchiveReader.readEntries(path: fixture(name))
            let files = entries.filter { $0.entry.kind == .file }
            let wanted = members.filter { !($0["size"]?.isNull ?? true) }
            XCTAssertEqual(files.map(\.entry.name), wanted.compactMap { $0["name"]?.stringValue }, name)
            XCTAssertEqual(files.map { $0.entry.size.map(Int.init) }, wanted.map { $0["size"]?.intValue }, name)
            XCTAssertEqual(files.first.map { String(decoding: $0.data, as: UTF8.self) }, readme, name)
            let train = try LineReader.open(archive: fixture(name), member: "data/train.jsonl").readAll()
            XCTAssertEqual(train.map(\.text), lines, name)
            let long = try LineReader.open(archive: fixture(name), member: "./data/long.txt").readAll()
            XCTAssertEqual(long.first?.text.utf8.count, expected["long_line_bytes"]?.intValue, name)
        }
        XCTAssertEqual(try ArchiveReader.readEntries(path: fixture("data.tar")).first?.entry.kind, .directory)
    }

    func testSingleStreamEntryIsNamedAfterTheFile() throws {
        let reader = try ArchiveReader(path: fixture("lines.jsonl.zst"))
        let entry = try reader.nextEntry()
        XCTAssertEqual(entry?.name, "lines.jsonl")
        XCTAssertNil(entry?.size)
        XCTAssertEqual(String(decoding: try reader.readAll(), as: UTF8.self), try String(contentsOfFile: fixture("lines.jsonl"), encoding: .utf8))
        XCTAssertNil(try reader.nextEntry())
    }

    func testMissingMemberSuggestsTheClosestName() {
        XCTAssertThrowsError(try LineReader.open(archive: fixture("data.tar.zst"), member: "data/trian.jsonl")) { e in
            XCTAssertEqual("\(e)", "\(fixture("data.tar.zst")): no member 'data/trian.jsonl' (did you mean 'data/train.jsonl'?) (members: data/, data/README.txt, data/train.jsonl, data/long.txt)")
        }
    }

    func testGarbageIsAnErrorNamingTheArchive() throws {
        let path = tmp("junk.tar.gz")
        try Data("this is not gzip at all".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ArchiveReader.readEntries(path: path)) { e in
            XCTAssertTrue("\(e)".hasPrefix(path + ":"), "\(e)")
        }
    }

    func testTarZstdRoundTripIsDeterministic() throws {
        let src = tmp("model")
        try FileManager.default.createDirectory(atPath: src + "/sub", withIntermediateDirectories: true)
        var big = [UInt8](repeating: 0, count: 3_000_000)
        var state: UInt64 = 42
        for i in big.indices { state = state &* 6364136223846793005 &+ 1442695040888963407; big[i] = UInt8(truncatingIfNeeded: state >> 33) }
        try Data(big).write(to: URL(fileURLWithPath: src + "/model.safetensors"))
        try Data("{\"a\": 1}\n".utf8).write(to: URL(fileURLWithPath: src + "/config.json"))
        try Data("nested\n".utf8).write(to: URL(fileURLWithPath: src + "/sub/z.txt"))

        func write(_ path: String) throws {
            let w = try ArchiveWriter(path: path)
            XCTAssertEqual(w.format, .tarZstd)
            try w.addDirectory(src, as: "export")
            try w.add(Data("seed: 42\n".utf8), as: "export/recipe.yaml")
            try w.finish()
        }
        try write(tmp("a.tar.zst"))
        try write(tmp("b.tar.zst"))
        let a = try Data(contentsOf: URL(fileURLWithPath: tmp("a.tar.zst")))
        XCTAssertEqual(a, try Data(contentsOf: URL(fileURLWithPath: tmp("b.tar.zst"))))
        XCTAssertEqual(Array(a.prefix(4)), [0x28, 0xB5, 0x2F, 0xFD], "zstd frame magic")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp("a.tar.zst") + ".tmp-\(getpid())"))

        let entries = try ArchiveReader.readEntries(path: tmp("a.tar.zst"))
        XCTAssertEqual(entries.map(\.entry.name), ["export/", "export/config.json", "export/model.safetensors", "export/sub/z.txt", "export/recipe.yaml"])
        XCTAssertEqual(entries[2].data, Data(big))
        XCTAssertEqual(entries[2].entry.size, 3_000_000)
        XCTAssertEqual(String(decoding: entries[4].data, as: UTF8.self), "seed: 42\n")
    }

    func testOtherWriteFormatsReadBack() throws {
        let text = "a\r\nb\nc"
        for name in ["x.jsonl.gz", "x.jsonl.zst"] {
            let w = try ArchiveWriter(path: tmp(name))
            try w.add(Data(text.utf8), as: "x.jsonl")
            XCTAssertThrowsError(try w.add(Data(), as: "second")) { e in
                XCTAssertTrue("\(e)".contains("exactly one stream"), "\(e)")
            }
            try w.finish()
            XCTAssertEqual(try LineReader.open(path: tmp(name)).readAll().map(\.text), ["a", "b", "c"], name)
        }
        for name in ["x.zip", "x.tar.gz", "x.tar", "x.tar.xz"] {
            let w = try ArchiveWriter(path: tmp(name))
            try w.add(Data(text.utf8), as: "dir/x.jsonl")
            try w.finish()
            XCTAssertEqual(try LineReader.open(archive: tmp(name), member: "dir/x.jsonl").readAll().map(\.text), ["a", "b", "c"], name)
        }
        // The gzip header carries no timestamp when the time is fixed, so outputs are stable.
        let gz1 = try Data(contentsOf: URL(fileURLWithPath: tmp("x.tar.gz")))
        let w = try ArchiveWriter(path: tmp("y.tar.gz"))
        try w.add(Data(text.utf8), as: "dir/x.jsonl")
        try w.finish()
        XCTAssertEqual(gz1, try Data(contentsOf: URL(fileURLWithPath: tmp("y.tar.gz"))))
    }

    func testWriterErrorsAndAbandonedOutput() throws {
        XCTAssertThrowsError(try ArchiveWriter(path: tmp("out.rar"))) { e in
            XCTAssertTrue("\(e)".contains("cannot tell the archive format"), "\(e)")
        }
        XCTAssertThrowsError(try ArchiveWriter(path: "/nonexistent/dir/out.tar.zst"))
        do {
            let w = try ArchiveWriter(path: tmp("gone.tar.zst"))
            try w.add(Data("x".utf8), as: "x")
            XCTAssertThrowsError(try w.addFile(from: tmp("missing.bin"), as: "missing.bin")) { e in
                XCTAssertTrue("\(e)".contains("gone.tar.zst: missing.bin: write failed"), "\(e)")
            }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(left, [], "an unfinished archive leaves nothing behind")
    }

    func testGzipChecksumIsVerified() throws {
        let path = tmp("x.jsonl.gz")
        let text = (0..<2000).map { "{\"text\": \"line \($0)\"}" }.joined(separator: "\n")
        let w = try ArchiveWriter(path: path)
        try w.add(Data(text.utf8), as: "x.jsonl")
        try w.finish()
        XCTAssertEqual(try LineReader.open(path: path).readAll().count, 2000)
        // One bit of the recorded CRC flipped: the data reads the same, the checksum cannot match.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 8] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LineReader.open(path: path).readAll()) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("gzip checksum mismatch"), "\($0)")
        }
    }
}
