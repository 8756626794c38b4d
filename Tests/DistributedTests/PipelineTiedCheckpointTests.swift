import Foundation
import XCTest
import Formats
import SafeTensors

/// A tied embedding in a P = 2 checkpoint through the command line: the last stage, which steps the one
/// logical weight, writes it with its optimizer state (master, exp_avg, exp_avg_sq, by name); the first
/// stage, which embeds with a replica and keeps no optimizer state for it, writes none of it. Every
/// element of every kind is then in exactly one file, so a resume on any P reads it by name
/// (PipelineTrainingTests resumes this layout as one process).
final class PipelineTiedCheckpointTests: XCTestCase {
    typealias T = TrainingEquivalenceTests

    func testTheLastStageWritesTheTiedEmbedding() throws {
        let work = try scratchDirectory("pipeline-tiedckpt")
        _ = try T.train(ranks: 2, stage: 0, work: work, stages: 2, name: "pp2")
        let step = work + "/pp2/global_step2/"
        let stage0 = try SafeTensorsFile(path: step + "zero_rank0_optim_states.safetensors").names
        let stage1 = try SafeTensorsFile(path: step + "zero_rank1_optim_states.safetensors").names
        let embed = "model.embed_tokens.weight"
        for kind in ["master", "exp_avg", "exp_avg_sq"] {
            XCTAssertTrue(stage1.contains("\(embed).\(kind)"), "stage 1 steps the tied embedding: \(stage1)")
        }
        XCTAssertFalse(stage0.contains { $0.hasPrefix("model.embed_tokens") }, "the first stage's replica has no state: \(stage0)")
        XCTAssertTrue(stage0.contains { $0.hasPrefix("model.layers.0.") }, "\(stage0)")
        XCTAssertTrue(Set(stage0).isDisjoint(with: stage1), "every tensor is written once")
    }
}
