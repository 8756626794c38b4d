import Foundation
import Formats
import SafeTensors
import Tensors

/// PEFT adapter folders: adapter_config.json and adapter_model.safetensors, as
/// `PeftModel.save_pretrained` writes them and `PeftModel.from_pretrained(base, dir)` reads them.
extension LoRAAdapter {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"

    /// Reads a PEFT LoRA adapter for `model`: every tensor of the file must be one this model's targeted
    /// projections have, with its exact shape, and every one of them must be present.
    public static func load(directory: String, model: TransformerModel) throws -> LoRAAdapter {
        let configPath = (directory as NSString).appendingPathComponent(configFile)
        let json = try JSONValue.read(path: configPath)
        func fail(_ key: String, _ message: String) -> AdapterError { .config(file: configPath, key: key, message: message) }
        guard json["peft_type"]?.stringValue == "LORA" else { throw fail("peft_type", "expected \"LORA\", found \(json["peft_type"].map { "\($0)" } ?? "nothing")") }
        guard let r = json["r"]?.intValue, r > 0 else { throw fail("r", "expected a positive integer") }
        guard let alpha = json["lora_alpha"]?.doubleValue else { throw fail("lora_alpha", "expected a number") }
        if let bias = json["bias"]?.stringValue, bias != "none" { throw fail("bias", "'\(bias)' is not supported (only \"none\")") }
        if json["use_dora"]?.boolValue == true { throw fail("use_dora", "DoRA is not supported") }
        var modulesToSave: [String] = []
        if let saved = json["modules_to_save"], saved != .null {
            guard let names = saved.arrayValue?.map(\.stringValue), !names.contains(nil) else {
                throw fail("modules_to_save", "expected null or a list of module names")
            }
            modulesToSave = names.compactMap { $0 }
        }
        let targets: LoRASettings.Targets
        if let names = json["target_modules"]?.arrayValue {
            targets = .names(names.compactMap(\.stringValue))
        } else if let one = json["target_modules"]?.stringValue {
            targets = LoRASettings.Targets([one])
        } else {
            throw fail("target_modules", "expected a list of module names or \"all-linear\"")
        }
        let settings = LoRASettings(r: r, alpha: alpha, dropout: json["lora_dropout"]?.doubleValue ?? 0,
                                    rslora: json["use_rslora"]?.boolValue ?? false, targets: targets,
                                    modulesToSave: modulesToSave)
        let adapter: LoRAAdapter
        do {
            adapter = try LoRAAdapter(model: model, settings: settings)
        } catch let e as AdapterError {
            // The folder's settings do not fit this model: say which file holds them.
            throw e.inFile(configPath)
        }
        let weightsPath = (directory as NSString).appendingPathComponent(weightsFile)
        let file = try SafeTensorsFile(path: weightsPath)
        var report = WeightLoadingError(source: weightsPath)
        var found = Set<String>()
        for name in file.names {
            // PEFT saves without the adapter name; files from other tools may keep ".default".
            let canonical = name.replacingOccurrences(of: ".default.weight", with: ".weight")
            guard let entry = adapter.layout[canonical] else { report.unexpected.append(name); continue }
            let shape = file.info(name)?.shape ?? []
            guard shape == entry.shape else { report.misshaped.append((name, entry.shape, shape)); found.insert(canonical); continue }
            let values = adapter.params.floats(entry.range)
            try file.readFloats(name, into: values)
            try WeightLoader.checkFinite(values, source: weightsPath, tensor: name)
            found.insert(canonical)
        }
        report.missing = adapter.layout.entries.map(\.name).filter { !found.contains($0) }
        guard report.isEmpty else { throw report }
        adapter.savedCopiesFollowBase = false
        return adapter
    }

    /// Writes the adapter as PEFT does (f32 tensors, sorted, `{"format": "pt"}`), atomically per file.
    public func save(directory: String, baseModel: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var writer = SafeTensorsWriter()
        for e in layout.entries {
            try writer.add(e.name, shape: e.shape, floats: Array(params.floats(e.range)))
        }
        try writer.write(to: (directory as NSString).appendingPathComponent(Self.weightsFile))
        let modules = Set(self.modules.keys.map { String($0.split(separator: ".").last!) }).sorted()
        let config = JSONObject([
            ("alpha_pattern", .object(JSONObject())), ("auto_mapping", .null), ("base_model_name_or_path", .string(baseModel)),
            ("bias", .string("none")), ("fan_in_fan_out", .bool(false)), ("inference_mode", .bool(true)),
            ("init_lora_weights", .bool(true)), ("lora_alpha", .double(settings.alpha)), ("lora_dropout", .double(settings.dropout)),
            ("modules_to_save", settings.modulesToSave.isEmpty ? .null : .array(settings.modulesToSave.map { .string($0) })),
            ("peft_type", .string("LORA")), ("r", .int(Int64(settings.r))),
            ("rank_pattern", .object(JSONObject())), ("target_modules", .array(modules.map { .string($0) })),
            ("task_type", .string("CAUSAL_LM")), ("use_dora", .bool(false)), ("use_rslora", .bool(settings.rslora)),
        ])
        try JSONValue.object(config).write(to: (directory as NSString).appendingPathComponent(Self.configFile))
    }
}
