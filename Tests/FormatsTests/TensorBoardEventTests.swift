import Foundation
import XCTest
@testable import Formats

/// The pieces of a TensorBoard event file: CRC-32C against published vectors, TFRecord's masking and
/// framing, and the protobuf wire format of an Event byte by byte. That TensorBoard's own reader
/// accepts whole files is TensorBoardSinkTests' (fixture read by Scripts/reference/gen_tensorboard.py).
final class TensorBoardEventTests: XCTestCase {
    func testCRC32CMatchesPublishedVectors() {
        // RFC 3720 (iSCSI) appendix B.4, and the classic check value of "123456789".
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    func testMaskIsTFRecordRotationPlusConstant() {
        // leveldb/TensorFlow: rotate right by 15, add 0xa282ead8 (mod 2^32).
        XCTAssertEqual(CRC32C.masked(0), 0xA282_EAD8)
        XCTAssertEqual(CRC32C.masked(0xE306_9283), ((0xE306_9283 >> 15) | (0xE306_9283 << 17 & 0xFFFF_FFFF)) &+ 0xA282_EAD8)
        XCTAssertEqual(CRC32C.masked(0xFFFF_FFFF), 0xA282_EAD7, "wraps around")
    }

    func testEventProtobufBytes() {
        // Event{wall_time: 2.0, step: 300, summary{value{tag: "a", simple_value: 1.0}}}, encoded by hand:
        // 0x09 + double LE; 0x10 varint 300 = ac 02; 0x2a len {0x0a len {0x0a 01 'a', 0x15 float LE}}.
        let bytes = TensorBoardEvent.scalars(wallTime: 2.0, step: 300, [("a", 1.0)]).encoded
        XCTAssertEqual(bytes, [0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x10, 0xAC, 0x02,
                               0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, 0x61, 0x15, 0x00, 0x00, 0x80, 0x3F])
        XCTAssertEqual(TensorBoardEvent.fileVersion(wallTime: 0).encoded,
                       [0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x1A, 0x0D] + Array("brain.Event:2".utf8))
        // A negative step is a ten-byte varint, as protobuf writes int64.
        var w = ProtobufWriter()
        w.int64(2, -1)
        XCTAssertEqual(w.bytes, [0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }

    func testTFRecordFraming() {
        let data: [UInt8] = Array("hello".utf8)
        let record = TensorBoardEvent.tfRecord(data)
        XCTAssertEqual(record.count, 8 + 4 + 5 + 4)
        XCTAssertEqual(Array(record[0..<8]), [5, 0, 0, 0, 0, 0, 0, 0])
        let lengthCRC = record[8..<12].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
        XCTAssertEqual(lengthCRC, CRC32C.masked(CRC32C.checksum(record[0..<8])))
        XCTAssertEqual(Array(record[12..<17]), data)
        let dataCRC = record[17..<21].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
        XCTAssertEqual(dataCRC, CRC32C.masked(CRC32C.checksum(data)))
    }

    func testWriterNamesFilesAsSummaryWriterAndNeverAppendsToAnother() throws {
        let dir = NSTemporaryDirectory() + "sf-tb-names-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let a = try TensorBoardEventWriter(directory: dir + "/job", now: now)
        let b = try TensorBoardEventWriter(directory: dir + "/job", now: now)
        XCTAssertEqual((a.path as NSString).lastPathComponent, "events.out.tfevents.1700000000.\(ProcessInfo.processInfo.hostName)")
        XCTAssertNotEqual(a.path, b.path)
        XCTAssertThrowsError(try TensorBoardEventWriter(directory: a.path + "/sub", now: now)) {
            XCTAssertTrue("\($0)".contains(a.path), "\($0)")
        }
    }
}
