// swift-tools-version:6.0
// The only dependencies are the Swift toolchain and C libraries from Debian (see `make setup`).
import PackageDescription

// Release builds keep Swift's bounds and overflow checks in every module that reads user input (recipes,
// JSON, YAML, archives, safetensors headers, tokenizer files, chat templates, JSONL records, command
// lines): there a malformed file must trap, not run on as undefined behaviour. Only the numeric kernels,
// whose indices come from validated shapes and layouts and whose loops are the training time, drop them.
let checked: [SwiftSetting] = []
let unchecked: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
// The numeric modules are optimised in debug builds too: unoptimised SIMD code is 50-100x slower, which
// would make training tests take minutes, and tests should exercise the code users run.
let numeric: [SwiftSetting] = unchecked + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "swift-finetune",
    products: [
        .library(name: "SwiftFinetune", targets: ["SwiftFinetune"]),
        .executable(name: "swift-finetune", targets: ["swift-finetune"]),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CJSONC", pkgConfig: "json-c", providers: [.apt(["libjson-c-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        // Oniguruma, the regex engine HF tokenizers uses, with a retry budget per search.
        .systemLibrary(name: "COniguruma", pkgConfig: "oniguruma", providers: [.apt(["libonig-dev"])]),
        .systemLibrary(name: "COpenMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // OpenMPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, ...) are macros over extern structs,
        // which Swift cannot import; this C target hands them out as functions.
        .target(name: "CMPI", dependencies: ["COpenMPI"]),

        .target(name: "Tensors", swiftSettings: numeric),
        .target(name: "Kernels", dependencies: ["Tensors", "COpenBLAS"], swiftSettings: numeric),
        .target(name: "Formats", dependencies: ["CJSONC", "CYAML", "CArchive"], swiftSettings: checked),
        .target(name: "SafeTensors", dependencies: ["Tensors", "Formats"], swiftSettings: checked),
        .target(name: "Tokenizers", dependencies: ["Formats", "COniguruma"], swiftSettings: checked),
        // GGUF (llama.cpp) files: reader, dequantizer, writer, and conversion to and from Hugging Face folders.
        .target(name: "GGUF", dependencies: ["Tensors", "Formats", "SafeTensors", "Tokenizers", "Models"], swiftSettings: checked),
        .target(name: "Models", dependencies: ["Tensors", "Kernels", "SafeTensors", "Formats"], swiftSettings: numeric),
        .target(name: "Distributed", dependencies: ["CMPI", "Tensors"], swiftSettings: unchecked),
        .target(name: "Engine", dependencies: ["Models", "Distributed", "Kernels", "Tensors", "SafeTensors", "Formats"], swiftSettings: unchecked),
        .target(name: "Trainer", dependencies: ["Engine", "Distributed", "Models", "Kernels", "Tokenizers", "Formats", "SafeTensors", "Tensors", "GGUF"], swiftSettings: checked),
        .target(name: "Recipes", dependencies: ["Trainer", "Engine", "Formats"], swiftSettings: checked),
        .target(name: "SwiftFinetune", dependencies: ["Tensors", "Kernels", "Formats", "SafeTensors", "GGUF", "Tokenizers", "Models", "Distributed", "Engine", "Trainer", "Recipes"], swiftSettings: checked),
        .executableTarget(name: "swift-finetune", dependencies: ["SwiftFinetune"], swiftSettings: checked),
        .executableTarget(name: "Benchmarks", dependencies: ["SwiftFinetune"], path: "Benchmarks/Sources", swiftSettings: checked),

        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "SafeTensors"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "SafeTensors", "Formats", "Tensors", "Tokenizers"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Tensors"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "SafeTensors", "Kernels"]),
        .testTarget(name: "CLITests", dependencies: ["SwiftFinetune"]),
        .testTarget(name: "RecipesTests", dependencies: ["Recipes", "Trainer", "Engine", "Formats"]),
        .testTarget(name: "TrainerDataTests", dependencies: ["Trainer", "Tokenizers", "Formats"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "SwiftFinetune", "SafeTensors", "Formats"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Engine", "Kernels", "Tensors", "SafeTensors", "Models", "Tokenizers"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Distributed", "Models", "Tensors", "Kernels"]),
    ],
    // Kernels hand unsafe pointers to worker threads by design; Swift 6's strict Sendable checking
    // would force wrappers around every one of them, so the package uses the Swift 5 language mode.
    swiftLanguageModes: [.v5]
)
