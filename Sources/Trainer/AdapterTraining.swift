import Foundation
import Engine
import Formats
import Models
import Tensors

/// LoRA in the training loop: the adapter a recipe's `lora:` section asks for (fresh, or continued from
/// a PEFT folder), the dtype its frozen base is kept in, and the PEFT folders a run writes.
public enum AdapterTraining {
    /// The adapter for `options`, attached to nothing yet. A fresh one is PEFT's init from `seed`; an
    /// `init_adapter` folder defines its own settings, which the recipe may only repeat.
    static func adapter(_ options: LoRAOptions, model: TransformerModel, seed: Int) throws -> LoRAAdapter {
        guard let folder = options.initAdapter else {
            guard let settings = options.freshSettings else {
                throw ConfigurationError([ConfigurationProblem("lora.r", "is required for a fresh adapter")])
            }
            let adapter = try LoRAAdapter(model: model, settings: settings)
            // The adapter's own stream: a different purpose from the model's init, so a from-scratch
            // model and its adapter never share draws.
            adapter.initializeFresh(seed: UInt64(bitPattern: Int64(seed)) &+ 0x4C6F5241)
            return adapter
        }
        let adapter = try LoRAAdapter.load(directory: folder, model: model)
        let s = adapter.settings
        var p = ProblemList()
        func agree<T: Equatable>(_ given: T?, _ actual: T, _ key: String, _ shown: String) {
            if let given, given != actual { p.add(key, "\(given) disagrees with init_adapter's adapter_config.json (\(shown)); leave it out or make it equal") }
        }
        agree(options.r, s.r, "r", "r \(s.r)")
        agree(options.alpha, s.alpha, "alpha", "lora_alpha \(s.alpha)")
        agree(options.rslora, s.rslora, "rslora", "use_rslora \(s.rslora)")
        agree(options.modulesToSave, s.modulesToSave, "modules_to_save", "modules_to_save \(s.modulesToSave)")
        if let t = options.targetModules {
            if LoRAAdapter.modules(of: model, matching: LoRASettings.Targets(t)) != adapter.adaptedModules {
                p.add("target_modules", "\(t) selects other projections than init_adapter's target_modules")
            }
        }
        try ConfigurationError.check(p.problems.under("lora"))
        // Dropout is a training knob, not part of the adapter: the recipe's wins.
        adapter.dropout = options.dropout
        return adapter
    }

    /// The dtype the frozen base is stored in (`base_dtype`; auto is the checkpoint's).
    static func baseDType(_ options: LoRAOptions, model: TransformerModel) -> DType {
        switch options.baseDType {
        case .auto: return model.config.exportDType
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        }
    }

    /// A PEFT adapter folder (adapter_config.json, adapter_model.safetensors) with the base's tokenizer
    /// files, as `PeftModel.save_pretrained` plus `tokenizer.save_pretrained` leave it; built under a
    /// temporary name and renamed, `extra` (a checkpoint's engine state) written before the rename.
    static func write(_ adapter: LoRAAdapter, baseModel: String, companionsFrom source: String?, to directory: String,
                      alsoWrite extra: ((_ stagingDirectory: String) throws -> Void)? = nil) throws {
        try HuggingFaceExport.staged(directory) { staging in
            try adapter.save(directory: staging, baseModel: baseModel)
            try HuggingFaceExport.copyCompanions(from: source, into: staging, files: HuggingFaceExport.tokenizerFiles)
            try extra?(staging)
        }
    }

    // MARK: Using a trained adapter (generate, eval, export)

    /// Whether `directory` is a PEFT adapter folder (a run's final/ or one of its checkpoints).
    public static func isAdapterFolder(_ directory: String) -> Bool {
        FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(LoRAAdapter.configFile))
    }

    /// The base model an adapter folder names (adapter_config.json's base_model_name_or_path, a local
    /// folder here; relative paths are relative to the working directory, as PEFT resolves them), or
    /// `given` (`--base`) when there is one.
    public static func baseModel(of adapter: String, given: String?) throws -> String {
        if let given { return given }
        let path = (adapter as NSString).appendingPathComponent(LoRAAdapter.configFile)
        let json = try JSONValue.read(path: path)
        guard let base = json["base_model_name_or_path"]?.stringValue, !base.isEmpty else {
            throw AdapterError.config(file: path, key: "base_model_name_or_path", message: "names no base model; pass --base DIR")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: base, isDirectory: &isFolder), isFolder.boolValue else {
            throw AdapterError.config(file: path, key: "base_model_name_or_path",
                                      message: "'\(base)' is not a local folder (no hub here); pass --base DIR")
        }
        return base
    }

    /// Loads the adapter in `directory` onto `model` (unmerged). A checkpoint folder's f32 master
    /// weights (its optimizer state) replace the adapter file's, as export does for full checkpoints.
    public static func attach(_ directory: String, to model: TransformerModel) throws {
        let adapter = try LoRAAdapter.load(directory: directory, model: model)
        if FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(TrainingEngine.optimizerStateFileName(rank: 0))) {
            try TrainingEngine.readState(directory: directory, layout: adapter.layout, into: ["master": adapter.params])
        }
        model.adapter = adapter
    }
}
