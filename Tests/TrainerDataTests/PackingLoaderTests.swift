import Foundation
import Tensors
import XCTest
@testable import Trainer

/// Truncation, collation, packing and the rank-sliced, resumable loader, on synthetic examples whose
/// token ids encode (example, position) so every token can be traced back.
final class PackingLoaderTests: XCTestCase {
    /// Example `i` of `length` tokens with ids i*1000+t; the first `masked` labels are -100.
    func example(_ i: Int, length: Int, masked: Int = 0) -> TokenizedExample {
        let ids = (0..<length).map { Int32(i * 1000 + $0) }
        let labels = ids.enumerated().map { $0.offset < masked ? ignoreLabel : $0.element }
        return TokenizedExample(inputIds: ids, labels: labels, location: DataLocation(source: "synthetic", line: i + 1))
    }

    /// Deterministic lengths in 2...maxLen with some masked prompts.
    func dataset(count: Int, maxLen: Int, seed: UInt64 = 5) -> [TokenizedExample] {
        var rng = CounterRNG(seed: seed)
        return (0..<count).map { i in
            let length = 2 + rng.next(below: maxLen - 1)
            return example(i, length: length, masked: rng.next(below: length - 1))
        }
    }

    func exampleIndex(_ token: Int32) -> Int { Int(token) / 1000 }

    func testTruncationKeepsTheStartAndDropsExamplesWithoutTargets() throws {
        let prompty = example(0, length: 10, masked: 6)
        let ds = try TokenizedDataset(examples: [prompty, example(1, length: 3)], maxSeqLen: 5)
        XCTAssertEqual(ds.count, 1, "example 0 keeps only masked labels at max_seq_len 5")
        XCTAssertEqual(ds.droppedCount, 1)
        XCTAssertEqual(ds.dropped, [prompty.location])
        XCTAssertTrue(ds.summary.contains("1 dropped"), ds.summary)
        let kept = try TokenizedDataset(examples: [prompty], maxSeqLen: 8)
        XCTAssertEqual(kept.examples[0].inputIds, Array(prompty.inputIds.prefix(8)))
        XCTAssertEqual(kept.examples[0].targetCount, 2)
        XCTAssertEqual(kept.truncatedCount, 1)
        // A single trained label at position 0 is no target: nothing predicts the first token.
        let onlyFirst = TokenizedExample(inputIds: [5, 6], labels: [5, ignoreLabel], location: prompty.location)
        XCTAssertEqual(try TokenizedDataset(examples: [onlyFirst], maxSeqLen: 4).droppedCount, 1)
    }

    func testBatchShiftsTargetsWithinEachSegment() {
        let a = example(1, length: 4, masked: 2), b = example(2, length: 3)
        let batch = TokenBatch(rows: [[0, 1]], examples: [a, b])
        XCTAssertEqual(batch.tokens, [1000, 1001, 1002, 1003, 2000, 2001, 2002])
        XCTAssertEqual(batch.positions, [0, 1, 2, 3, 0, 1, 2])
        XCTAssertEqual(batch.segments, [TokenSegment(start: 0, length: 4), TokenSegment(start: 4, length: 3)])
        XCTAssertEqual(batch.targets, [-100, 1002, 1003, -100, 2001, 2002, -100])
        XCTAssertEqual(batch.labelCount, 4)
        XCTAssertEqual(batch.rowCount, 1)
        XCTAssertEqual(TokenBatch(rows: [[0], [1]], examples: [a, b]).rowCount, 2)
    }

    /// 300 examples of 2–64 tokens packed at 64: rows fit, every example once, greedy first-fit exactly
    /// (checked against a quadratic first-fit), and the batch keeps every token and label.
    func testPackingInvariants() {
        let examples = dataset(count: 300, maxLen: 64)
        let order = Array((0..<300).reversed())
        let lengths = examples.map(\.inputIds.count)
        let rows = RowPacker.rows(order: order, lengths: lengths, maxSeqLen: 64, packing: true)
        var naive: [[Int]] = [], room: [Int] = []
        for e in order {
            if let r = room.firstIndex(where: { $0 >= lengths[e] }) { naive[r].append(e); room[r] -= lengths[e] } else { naive.append([e]); room.append(64 - lengths[e]) }
        }
        XCTAssertEqual(rows, naive)
        XCTAssertTrue(rows.allSatisfy { $0.reduce(0) { $0 + lengths[$1] } <= 64 })
        XCTAssertEqual(rows.flatMap { $0 }.sorted(), Array(0..<300))
        XCTAssertLessThan(rows.count, 300 * 33 / 64 + 20, "packing should fill rows (mean length ~33)")

        let batch = TokenBatch(rows: rows, examples: examples)
        XCTAssertEqual(batch.tokens.count, lengths.reduce(0, +))
        XCTAssertEqual(batch.labelCount, examples.reduce(0) { $0 + $1.targetCount })
        var cursor = 0
        for s in batch.segments {
            XCTAssertEqual(s.start, cursor, "segments tile the tokens")
            cursor += s.length
            let owners = Set(batch.tokens[s.range].map(exampleIndex))
            XCTAssertEqual(owners.count, 1, "a segment holds one example: attention never crosses examples")
            XCTAssertEqual(batch.positions[s.range], ArraySlice((0..<Int32(s.length)).map { $0 }))
            XCTAssertEqual(batch.targets[s.range.last!], ignoreLabel)
            for t in s.range.dropLast() where batch.targets[t] != ignoreLabel {
                XCTAssertEqual(batch.targets[t], batch.tokens[t + 1], "a target is the next token of the same example")
            }
        }
        XCTAssertEqual(cursor, batch.tokens.count)
        XCTAssertEqual(RowPacker.rows(order: [2, 0, 1], lengths: lengths, maxSeqLen: 64, packing: false), [[2], [0], [1]])
    }

    func testShufflesAreSeededPerEpoch() throws {
        let examples = dataset(count: 50, maxLen: 16)
        let a = try DataLoader(examples: examples, maxSeqLen: 16, options: DataLoaderOptions(seed: 3))
        let b = try DataLoader(examples: examples, maxSeqLen: 16, options: DataLoaderOptions(seed: 3))
        let c = try DataLoader(examples: examples, maxSeqLen: 16, options: DataLoaderOptions(seed: 4))
        XCTAssertEqual(a.order(epoch: 0), b.order(epoch: 0))
        XCTAssertEqual(a.order(epoch: 0).sorted(), Array(0..<50))
        XCTAssertNotEqual(a.order(epoch: 0), a.order(epoch: 1))
        XCTAssertNotEqual(a.order(epoch: 0), c.order(epoch: 0))
        XCTAssertNotEqual(a.order(epoch: 0), Array(0..<50))
        let plain = try DataLoader(examples: examples, maxSeqLen: 16, options: DataLoaderOptions(shuffle: false))
        XCTAssertEqual(plain.order(epoch: 3), Array(0..<50))
        let held = try DataPipeline.heldOutIndices(count: 50, fraction: 0.1, seed: 3)
        XCTAssertEqual(held.count, 5)
        XCTAssertEqual(held, try DataPipeline.heldOutIndices(count: 50, fraction: 0.1, seed: 3))
        XCTAssertNotEqual(held, try DataPipeline.heldOutIndices(count: 50, fraction: 0.1, seed: 4))
    }

    /// The examples (by first token) of each micro-batch.
    func contents(_ b: TokenBatch) -> [Int] { b.segments.map { exampleIndex(b.tokens[$0.start]) } }

    /// World 2 × accumulation 2 against one process with accumulation 4: slot a·W + r of the single process
    /// is rank r's micro-step a, in every step of three epochs (tails included), packed and not.
    func testRankSlicesUnionIsTheSingleProcessStep() throws {
        let examples = dataset(count: 101, maxLen: 24)
        for packing in [false, true] {
            let single = DataLoaderOptions(microBatchSize: 3, gradientAccumulationSteps: 4, worldSize: 1, rank: 0, packing: packing, seed: 11)
            var one = try DataLoader(examples: examples, maxSeqLen: 24, options: single)
            var ranks = try (0..<2).map { r in
                try DataLoader(examples: examples, maxSeqLen: 24, options: DataLoaderOptions(
                    microBatchSize: 3, gradientAccumulationSteps: 2, worldSize: 2, rank: r, packing: packing, seed: 11))
            }
            let steps = one.totalSteps(epochs: 3)
            XCTAssertEqual(steps, ranks[0].totalSteps(epochs: 3))
            var seen: [Int: Int] = [:]
            for _ in 0..<steps {
                let s = one.nextStep()
                let r = ranks.indices.map { ranks[$0].nextStep() }
                XCTAssertEqual(s.microBatches.count, 4)
                XCTAssertTrue(r.allSatisfy { $0.microBatches.count == 2 })
                for slot in 0..<4 {
                    XCTAssertEqual(contents(s.microBatches[slot]), contents(r[slot % 2].microBatches[slot / 2]), "packing \(packing) slot \(slot)")
                }
                XCTAssertEqual(s.labelCount, TokenBatch.labelCount(s.microBatches))
                XCTAssertEqual(r[0].labelCount, s.labelCount)
                XCTAssertEqual(r[1].labelCount, s.labelCount)
                XCTAssertEqual(r[0].localLabelCount + r[1].localLabelCount, s.labelCount)
                XCTAssertEqual(r[0].positionAfter, s.positionAfter)
                if s.epoch == 1 { for b in s.microBatches { for e in contents(b) { seen[e, default: 0] += 1 } } }
            }
            XCTAssertEqual(seen.count, 101, "an epoch visits every example")
            XCTAssertTrue(seen.values.allSatisfy { $0 == 1 }, "exactly once")
            XCTAssertEqual(one.position, DataPosition(epoch: 3, index: 0))
        }
    }

    /// Saving the position after k steps and restoring it in a fresh loader (JSON round trip, and on another
    /// world size) continues with exactly the rows an uninterrupted run trains on.
    func testResumeContinuesExactly() throws {
        let examples = dataset(count: 40, maxLen: 20)
        let options = DataLoaderOptions(microBatchSize: 2, gradientAccumulationSteps: 3, packing: true, seed: 9)
        var reference = try DataLoader(examples: examples, maxSeqLen: 20, options: options)
        var run = try DataLoader(examples: examples, maxSeqLen: 20, options: options)
        for _ in 0..<5 { _ = run.nextStep(); _ = reference.nextStep() }
        let saved = try JSONEncoder().encode(run.position)
        let position = try JSONDecoder().decode(DataPosition.self, from: saved)
        XCTAssertEqual(String(data: saved, encoding: .utf8)!.contains("\"epoch\""), true)
        var resumed = try DataLoader(examples: examples, maxSeqLen: 20, options: options, position: position)
        for _ in 0..<10 {
            let a = reference.nextStep(), b = resumed.nextStep()
            XCTAssertEqual(a.microBatches, b.microBatches)
            XCTAssertEqual(a.positionAfter, b.positionAfter)
        }
        // On two ranks from the same position, the next step covers the same rows.
        var ref2 = try DataLoader(examples: examples, maxSeqLen: 20, options: options, position: position)
        let next = ref2.nextStep()
        var both: [Int] = []
        for r in 0..<2 {
            var o = options
            o.worldSize = 2; o.rank = r; o.gradientAccumulationSteps = 1; o.microBatchSize = 3
            var l = try DataLoader(examples: examples, maxSeqLen: 20, options: o)
            l.restore(position)
            both += l.nextStep().microBatches.flatMap(contents)
        }
        XCTAssertEqual(both.sorted(), next.microBatches.flatMap(contents).sorted())
    }

    /// Every rank always gets `accumulation` micro-batches; a tail smaller than the slots leaves some empty.
    func testTailStepsAndDropIncomplete() throws {
        let examples = (0..<3).map { example($0, length: 4) }
        var loader = try DataLoader(examples: examples, maxSeqLen: 8, options: DataLoaderOptions(
            microBatchSize: 2, gradientAccumulationSteps: 2, worldSize: 2, rank: 1, shuffle: false))
        let step = loader.nextStep()
        XCTAssertEqual(step.microBatches.count, 2)
        XCTAssertEqual(contents(step.microBatches[0]), [1])
        XCTAssertEqual(step.microBatches[1], .empty)
        XCTAssertEqual(step.labelCount, 9)
        XCTAssertTrue(step.endsEpoch)
        XCTAssertEqual(step.positionAfter, DataPosition(epoch: 1, index: 0))

        let ten = (0..<10).map { example($0, length: 4) }
        let keep = try DataLoader(examples: ten, maxSeqLen: 8, options: DataLoaderOptions(microBatchSize: 2, gradientAccumulationSteps: 2))
        let drop = try DataLoader(examples: ten, maxSeqLen: 8, options: DataLoaderOptions(microBatchSize: 2, gradientAccumulationSteps: 2, dropIncompleteStep: true))
        XCTAssertEqual(keep.stepCount(epoch: 0), 3)
        XCTAssertEqual(drop.stepCount(epoch: 0), 2)
        XCTAssertEqual(drop.totalSteps(epochs: 4), 8)
    }

    func testEvalBatchesCoverEveryExampleOnceAcrossRanks() throws {
        let ds = try TokenizedDataset(examples: dataset(count: 23, maxLen: 10), maxSeqLen: 10)
        for packing in [false, true] {
            let all = DataLoader.evalBatches(dataset: ds, microBatchSize: 2, packing: packing)
            let r0 = DataLoader.evalBatches(dataset: ds, microBatchSize: 2, packing: packing, worldSize: 2, rank: 0)
            let r1 = DataLoader.evalBatches(dataset: ds, microBatchSize: 2, packing: packing, worldSize: 2, rank: 1)
            XCTAssertEqual(r0.batches.count, r1.batches.count, "ranks run the same number of eval batches")
            XCTAssertEqual((r0.batches + r1.batches).flatMap(contents).sorted(), Array(0..<23))
            XCTAssertEqual(all.batches.flatMap(contents).sorted(), Array(0..<23))
            XCTAssertEqual(TokenBatch.labelCount(r0.batches + r1.batches), ds.targetCount)
            XCTAssertEqual(all.labelCount, ds.targetCount)
        }
    }
}
