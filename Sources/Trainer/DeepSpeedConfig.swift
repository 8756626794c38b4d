import Engine
import Formats
import Foundation

// Reading a DeepSpeed ds_config.json as it is: every key is either mapped onto the recipe
// (DeepSpeedConfigMapping.swift), accepted as a GPU or communication tuning knob that has no effect
// on this CPU build (listed once at start), or an error: a misspelling (with a suggestion) or a real
// feature this build lacks. DeepSpeed itself ignores misspelt keys; we do not.

/// One key of a ds_config: its value, `"auto"` (filled from the recipe, as the Hugging Face Trainer
/// fills it from TrainingArguments) or absent.
enum DSValue<T> {
    case absent, auto, value(T)

    var value: T? { if case .value(let v) = self { return v }; return nil }
}

/// What reading a ds_config found besides the settings: problems, and the keys that have no effect.
struct DeepSpeedFindings {
    var problems: [ConfigurationProblem] = []
    var noEffect: [String] = []
}

/// An object of the ds_config at `path` (dotted, from the top), read key by key. Each getter reports
/// a wrong type once; `finish` reports the keys nobody asked about.
final class DSSection {
    let object: JSONObject
    let path: String
    let file: String
    private let findings: Box
    private var known: Set<String> = []

    final class Box { var value = DeepSpeedFindings() }

    init(object: JSONObject, path: String, file: String, findings: Box) {
        self.object = object
        self.path = path
        self.file = file
        self.findings = findings
    }

    /// The key path as problems name it: `deepspeed.zero_optimization.stage`.
    func keyPath(_ key: String) -> String { "deepspeed." + (path.isEmpty ? key : path + "." + key) }
    func dsPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    func problem(_ key: String, _ message: String) {
        findings.value.problems.append(ConfigurationProblem(keyPath(key), "\(message) (in \(file))"))
    }

    private func raw(_ key: String) -> JSONValue? {
        known.insert(key)
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    private func typed<T>(_ key: String, _ expected: String, _ read: (JSONValue) -> T?) -> DSValue<T> {
        guard let v = raw(key) else { return .absent }
        if v.stringValue == "auto" { return .auto }
        guard let t = read(v) else {
            problem(key, "expected \(expected) or \"auto\", got \(v.kindName) \(JSONWriter.compact.string(v))")
            return .absent
        }
        return .value(t)
    }

    func int(_ key: String) -> DSValue<Int> { typed(key, "an integer") { $0.intValue } }
    func double(_ key: String) -> DSValue<Double> { typed(key, "a number") { $0.doubleValue } }
    func bool(_ key: String) -> DSValue<Bool> { typed(key, "true or false") { $0.boolValue } }
    func string(_ key: String) -> DSValue<String> { typed(key, "a string") { $0.stringValue } }
    func doubles(_ key: String) -> DSValue<[Double]> {
        typed(key, "a list of numbers") { v in
            guard let a = v.arrayValue else { return nil }
            let d = a.compactMap(\.doubleValue)
            return d.count == a.count ? d : nil
        }
    }

    /// A nested object; nil when absent (a wrong type is reported).
    func section(_ key: String) -> DSSection? {
        guard let v = raw(key) else { return nil }
        guard let o = v.objectValue else {
            problem(key, "expected an object, got \(v.kindName)")
            return nil
        }
        return DSSection(object: o, path: dsPath(key), file: file, findings: findings)
    }

    /// Keys read and ignored: they tune GPU kernels, memory pinning or communication buckets.
    func noEffect(_ keys: [String]) {
        for k in keys where raw(k) != nil { findings.value.noEffect.append(dsPath(k)) }
    }

    /// A feature this build does not have: an error when the key is present, unless its section says
    /// `"enabled": false` (or the value is false / 0).
    func unsupported(_ keys: [String], _ why: String) {
        for k in keys {
            guard let v = raw(k) else { continue }
            let off = v.objectValue?["enabled"]?.boolValue == false || v.boolValue == false || v.intValue == 0
            if !off { problem(k, "\(why) is not available in this build; remove the key") }
        }
    }

    /// The section of a feature already refused: its keys are not looked at one by one.
    func skipRest() { known.formUnion(object.keys) }

    /// Unknown keys, each with the nearest known name.
    func finish() {
        for key in object.keys where !known.contains(key) {
            problem(key, "unknown ds_config key '\(key)'" + Suggestion.phrase(for: key, in: Array(known)))
        }
    }
}

extension TrainingConfiguration {
    /// The configuration with the ds_config `deepspeed` names merged in, and what reading it found.
    /// A key counts as set by the recipe when `recipeKeys` holds it (YAML recipes record them; for a
    /// configuration built in Swift, a value other than the default counts as set): a ds_config value
    /// that differs from a key the recipe set is an error, an `"auto"` keeps the recipe's value, and a
    /// key the ds_config gives replaces a default. The result has `deepspeed` cleared (it is merged)
    /// and `deepspeedImport` set.
    public func mergingDeepSpeed(worldSize: Int) -> (TrainingConfiguration, [ConfigurationProblem]) {
        guard let path = deepspeed else { return (self, []) }
        // Unreadable: the rest of the configuration is still checked, without the ds_config.
        var unmerged = self
        unmerged.deepspeed = nil
        let json: JSONValue
        do {
            json = try JSONValue.read(path: path)
        } catch {
            return (unmerged, [ConfigurationProblem("deepspeed", "\(error)")])
        }
        guard let top = json.objectValue else {
            return (unmerged, [ConfigurationProblem("deepspeed", "\(path): expected a JSON object at the top, got \(json.kindName)")])
        }
        let box = DSSection.Box()
        let defaults = TrainingConfiguration(model: model, data: data, output: output)
        let keys = recipeKeys
        var merge = DeepSpeedMerge(config: self, defaults: defaults, isExplicit: keys.map { k in { k.contains($0) } }, worldSize: worldSize)
        let root = DSSection(object: top, path: "", file: path, findings: box)
        merge.apply(root)
        root.finish()
        var merged = merge.config
        merged.deepspeed = nil
        merged.deepspeedImport = DeepSpeedImport(path: path, noEffect: box.value.noEffect)
        return (merged, box.value.problems + merge.problems)
    }
}

/// What a merged ds_config leaves for the record: where it came from and the keys that had no effect.
public struct DeepSpeedImport: Sendable, Equatable {
    public var path: String
    public var noEffect: [String]

    /// The one line the Trainer logs at start.
    public var note: String? {
        noEffect.isEmpty ? nil : "\(path): no effect here (GPU kernel, memory-pinning and communication-bucket tuning): " + noEffect.joined(separator: ", ")
    }
}
