import Foundation
import XCTest
import Formats
@testable import SafeTensors

/// Sharded checkpoints against transformers 5.23 `save_pretrained(max_shard_size=...)` output.
final class CheckpointTests: XCTestCase {
    private func checkpoints() throws -> [JSONValue] {
        try XCTUnwrap(Fixtures.manifest()["checkpoints"]?.arrayValue)
    }

    func testReadsShardedAndSingleCheckpointsExactly() throws {
        for ckpt in try checkpoints() {
            let folder = Fixtures.path(try XCTUnwrap(ckpt["folder"]?.stringValue))
            let reader = try CheckpointReader(path: folder)
            let expected = try ManifestTensor.list(ckpt["tensors"])
            XCTAssertEqual(Set(reader.names), Set(expected.map(\.name)))
            XCTAssertEqual(reader.names.count, expected.count)
            XCTAssertEqual(reader.parameterCount, ckpt["total_parameters"]?.intValue)
            XCTAssertEqual(reader.metadata, ["format": "pt"])
            for t in expected {
                XCTAssertEqual(reader.info(t.name)?.shape, t.shape, t.name)
                // Tolerance: exact, bit for bit.
                XCTAssertEqual(try reader.floats(t.name).map(\.bitPattern), t.floats.map(\.bitPattern), t.name)
            }
        }
    }

    func testShardedReaderUsesTheIndex() throws {
        let reader = try CheckpointReader(path: Fixtures.path("sharded"))
        XCTAssertEqual(reader.files.count, 12)
        XCTAssertEqual(reader.indexPath, Fixtures.path("sharded/model.safetensors.index.json"))
        XCTAssertEqual(reader.indexMetadata["total_size"]?.intValue, 5792)
        XCTAssertEqual(reader.file(containing: "lm_head.weight")?.path, Fixtures.path("sharded/model-00011-of-00012.safetensors"))
        XCTAssertEqual(reader.source(of: "model.norm.weight"), Fixtures.path("sharded/model-00012-of-00012.safetensors"))
        // The index file itself and a lone shard open too.
        XCTAssertEqual(try CheckpointReader(path: Fixtures.path("sharded/model.safetensors.index.json")).names.count, 21)
        XCTAssertEqual(try CheckpointReader(path: Fixtures.path("sharded/model-00006-of-00012.safetensors")).names.count, 4)
        let s = reader.summary()
        XCTAssertTrue(s.contains("(12 shards): 21 tensors, 1,448 parameters, 5,792 bytes of data"), s)
        XCTAssertThrowsError(try reader.floats("missing.weight")) { e in
            XCTAssertEqual(e as? SafeTensorsError, .tensorNotFound(source: reader.indexPath!, name: "missing.weight"))
        }
    }

    func testWriterReproducesTransformersShardsAndIndexByteForByte() throws {
        for ckpt in try checkpoints() {
            let folderName = try XCTUnwrap(ckpt["folder"]?.stringValue)
            let maxSize = try ShardSize.parse(try XCTUnwrap(ckpt["max_shard_size"]?.stringValue))
            var writer = SafeTensorsWriter(metadata: ["format": "pt"])
            for t in try ManifestTensor.list(ckpt["tensors"]) { try t.add(to: &writer) }  // state-dict order
            let out = try makeTemporaryDirectory(self)
            let written = try writer.writeCheckpoint(to: out, maxShardSize: maxSize, totalParameters: ckpt["total_parameters"]?.intValue)
            let expectedFiles = try XCTUnwrap(ckpt["files"]?.arrayValue).map { $0.stringValue! }
            XCTAssertEqual(written.sorted(), expectedFiles, folderName)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), expectedFiles, folderName)
            for name in expectedFiles {
                let ours = try Data(contentsOf: URL(fileURLWithPath: (out as NSString).appendingPathComponent(name)))
                XCTAssertTrue(ours == (try Fixtures.data("\(folderName)/\(name)")), "\(folderName)/\(name) differs")
            }
        }
    }

    func testShardPlanFollowsHuggingFaceHub() {
        // Greedy in order; a tensor over the limit gets its own shard ahead of the one being filled.
        let plan = ShardPlan(tensors: [("a", 3), ("b", 20), ("c", 3), ("d", 4), ("e", 10), ("f", 0)], maxShardSize: 10)
        XCTAssertEqual(plan.shards, [["b"], ["a", "c", "d"], ["e", "f"]])
        XCTAssertEqual(plan.totalSize, 40)
        XCTAssertEqual(plan.fileNames(), ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"])
        let one = ShardPlan(tensors: [("a", 5), ("b", 5)], maxShardSize: 10)
        XCTAssertEqual(one.shards, [["a", "b"]])
        XCTAssertFalse(one.isSharded)
        XCTAssertEqual(one.fileNames(), ["model.safetensors"])
        XCTAssertEqual(ShardPlan(tensors: [], maxShardSize: 10).shards, [[]])
        XCTAssertEqual(ShardPlan(tensors: [("a", 11)], maxShardSize: 10).shards, [["a"]])
    }

    func testShardSizeParsing() throws {
        XCTAssertEqual(try ShardSize.parse("5GB"), 5_000_000_000)
        XCTAssertEqual(try ShardSize.parse("500MB"), 500_000_000)
        XCTAssertEqual(try ShardSize.parse("10KB"), 10_000)
        XCTAssertEqual(try ShardSize.parse("0.5KB"), 500)
        XCTAssertEqual(try ShardSize.parse(" 2tb "), 2_000_000_000_000)
        XCTAssertEqual(try ShardSize.parse("1.5 GB"), 1_500_000_000)
        XCTAssertEqual(try ShardSize.parse("12345"), 12345)
        for bad in ["5GiB", "GB", "5 bytes", "-1KB", "", "x5MB"] {
            XCTAssertThrowsError(try ShardSize.parse(bad), bad) { XCTAssertEqual($0 as? SafeTensorsError, .invalidShardSize(bad)) }
        }
    }

    func testRewriteRemovesStaleShardsAndIndex() throws {
        let out = try makeTemporaryDirectory(self)
        var big = SafeTensorsWriter()
        for i in 0..<3 { try big.add("w\(i)", shape: [4], floats: [1, 2, 3, 4]) }
        XCTAssertEqual(try big.writeCheckpoint(to: out, maxShardSize: 20).count, 4)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: (out as NSString).appendingPathComponent("config.json")))
        var small = SafeTensorsWriter()
        try small.add("w0", shape: [4], floats: [1, 2, 3, 4])
        XCTAssertEqual(try small.writeCheckpoint(to: out, maxShardSize: 20), ["model.safetensors"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["config.json", "model.safetensors"])
        XCTAssertEqual(try CheckpointReader(path: out).names, ["w0"])
        XCTAssertTrue(SafeTensorsWriter.isShardFileName("model-00002-of-00010.safetensors"))
        XCTAssertFalse(SafeTensorsWriter.isShardFileName("model-2-of-10.safetensors"))
        XCTAssertFalse(SafeTensorsWriter.isShardFileName("adapter_model.safetensors"))
    }

    func testIndexErrorsNameTheIndexAndTheShardOrTensor() throws {
        let out = try makeTemporaryDirectory(self)
        for name in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("sharded")) {
            try FileManager.default.copyItem(atPath: Fixtures.path("sharded/\(name)"), toPath: (out as NSString).appendingPathComponent(name))
        }
        let index = (out as NSString).appendingPathComponent("model.safetensors.index.json")
        var json = try JSONValue.read(path: index)
        guard case .object(var root) = json, case .object(var map)? = root["weight_map"] else { return XCTFail() }

        // A tensor mapped to the wrong shard.
        map["model.norm.weight"] = .string("model-00001-of-00012.safetensors")
        root["weight_map"] = .object(map)
        json = .object(root)
        try json.write(to: index)
        XCTAssertThrowsError(try CheckpointReader(path: out)) { e in
            XCTAssertEqual(e as? SafeTensorsError, .tensorMissingFromShard(index: index, shard: "model-00001-of-00012.safetensors", tensor: "model.norm.weight"))
            XCTAssertTrue("\(e)".contains(index))
        }

        // A shard that is not there.
        map["model.norm.weight"] = .string("model-00012-of-00012.safetensors")
        map["extra.weight"] = .string("model-00013-of-00012.safetensors")
        root["weight_map"] = .object(map)
        try JSONValue.object(root).write(to: index)
        XCTAssertThrowsError(try CheckpointReader(path: out)) { e in
            XCTAssertEqual(e as? SafeTensorsError, .missingShard(index: index, shard: "model-00013-of-00012.safetensors", tensor: "extra.weight"))
        }

        // No weight_map, and a shard name escaping the folder.
        try JSONValue.object(JSONObject([("metadata", .object(JSONObject()))])).write(to: index)
        XCTAssertThrowsError(try CheckpointReader(path: out)) { XCTAssertEqual($0 as? SafeTensorsError, .invalidIndex(path: index, problem: "missing \"weight_map\"")) }
        try JSONValue.object(JSONObject([("weight_map", .object(JSONObject([("a", .string("../x.safetensors"))])))])).write(to: index)
        XCTAssertThrowsError(try CheckpointReader(path: out)) { XCTAssertTrue("\($0)".contains("not a file name"), "\($0)") }

        try Data("{not json".utf8).write(to: URL(fileURLWithPath: index))
        XCTAssertThrowsError(try CheckpointReader(path: out)) { e in
            guard case .invalidIndex(index, _)? = e as? SafeTensorsError else { return XCTFail("\(e)") }
        }
        let empty = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try CheckpointReader(path: empty)) { XCTAssertEqual($0 as? SafeTensorsError, .noCheckpoint(folder: empty)) }
    }
}
