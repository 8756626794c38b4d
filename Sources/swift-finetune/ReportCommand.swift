import Foundation
import SwiftFinetune

/// `swift-finetune report OUTPUT_DIR`: rebuilds OUTPUT_DIR/report.html from metrics.jsonl (and
/// recipe.yaml, flops_profile.json when present), for a finished or a running run.
enum ReportCommand {
    static func run(_ args: [String]) throws {
        let a = try Arguments(command: "report", args, flagNames: [])
        try a.finish(positionals: 1...1)
        print(try TrainingReport.write(outputDir: a.positionals[0]))
    }
}
