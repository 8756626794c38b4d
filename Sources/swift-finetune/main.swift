import Foundation
import SwiftFinetune

// swift-finetune: the command line over the SwiftFinetune library. Each command lives in its own file.
let usage = """
usage:
  swift-finetune RECIPE.yaml [key.path=value ...]      train (also under mpirun -np N)
      [--deepspeed ds_config.json]                      merge a DeepSpeed config as is (also --deepspeed_config)
  swift-finetune --nproc N RECIPE.yaml [overrides]      train with N processes (runs mpirun; Docs/DISTRIBUTED.md)
  swift-finetune validate RECIPE.yaml [--nproc N] [--deepspeed ds_config.json]   report every problem at once
  swift-finetune generate --model DIR [--adapter LORA_DIR] --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T --top-p P --seed S]
  swift-finetune eval --model DIR [--adapter LORA_DIR] --data FILE   loss and perplexity
  swift-finetune tokenize --model DIR [--text TEXT]     token ids as JSON (stdin when --text is absent)
  swift-finetune export CHECKPOINT_DIR OUT_DIR [--dtype bf16|f32]
  swift-finetune export LORA_DIR OUT_DIR [--base DIR] [--dtype bf16|f32]   merge a PEFT adapter into its base
  swift-finetune export MODEL OUT.gguf --format gguf [--dtype f32|f16|bf16|q8_0]   a llama.cpp file
  swift-finetune convert MODEL.gguf OUT_DIR              a llama.cpp file as a Hugging Face folder
  swift-finetune inspect PATH                           what a model, checkpoint or safetensors file holds
  swift-finetune estimate-memory RECIPE.yaml [--nproc N]
  swift-finetune report OUTPUT_DIR                     OUTPUT_DIR/report.html: curves, recipe, FLOPs profile
"""

func runCommand(_ argv: [String]) throws {
    guard let first = argv.first else {
        print(usage)
        return
    }
    let rest = Array(argv.dropFirst())
    switch first {
    case "help", "--help", "-h": print(usage)
    case "inspect": try InspectCommand.run(rest)
    case "export": try ExportCommand.run(rest)
    case "convert": try ConvertCommand.run(rest)
    case "validate": try ValidateCommand.run(rest)
    case "tokenize": try TokenizeCommand.run(rest)
    case "generate": try GenerateCommand.run(rest)
    case "eval": try EvalCommand.run(rest)
    case "estimate-memory": try EstimateMemoryCommand.run(rest)
    case "report": try ReportCommand.run(rest)
    case "_collective-selftest": try CollectiveSelftest.run(rest)
    default:
        if first.hasSuffix(".yaml") || first.hasSuffix(".yml") {
            try TrainCommand.run(recipePath: first, rest)
            return
        }
        throw CLIError.usage(first, "unknown command '\(first)'")
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
if Launch.isNprocRequest(arguments) {
    do { try Launch.execMPIRun(arguments) } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
}
Launch.configureThreads()
// Under mpirun an error on one rank aborts every rank (no rank left waiting in a collective).
Launch.run { try runCommand(arguments) }
