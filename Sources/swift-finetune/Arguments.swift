/// A small argument reader: positionals, `--flag`, `--key value` and `--key=value`. Every option a
/// command does not know is an error naming it (no silent typos).
struct Arguments {
    private(set) var positionals: [String] = []
    private var options: [String: String] = [:]
    private var flags: Set<String> = []
    /// Flags written as `--name=false`: known, and off.
    private var consumedFlagsOff: Set<String> = []
    private var consumed: Set<String> = []
    let command: String

    init(command: String, _ args: [String], flagNames: Set<String>) throws {
        self.command = command
        var i = 0
        while i < args.count {
            let a = args[i]
            if a.hasPrefix("--") && a.count > 2 {
                let body = String(a.dropFirst(2))
                if let eq = body.firstIndex(of: "=") {
                    let name = String(body[..<eq]), value = String(body[body.index(after: eq)...])
                    if flagNames.contains(name) {
                        // `--chat=yes` must not read as "no": a flag's value is a yes or a no, or an error.
                        switch value.lowercased() {
                        case "true", "yes", "1", "on": flags.insert(name)
                        case "false", "no", "0", "off": consumedFlagsOff.insert(name)
                        default: throw CLIError.usage(command, "--\(name) is a switch: write --\(name), or --\(name)=true / --\(name)=false; got '\(value)'")
                        }
                    } else {
                        options[name] = value
                    }
                } else if flagNames.contains(body) {
                    flags.insert(body)
                } else {
                    guard i + 1 < args.count else { throw CLIError.usage(command, "--\(body) needs a value") }
                    options[body] = args[i + 1]
                    i += 1
                }
            } else {
                positionals.append(a)
            }
            i += 1
        }
    }

    mutating func flag(_ name: String) -> Bool {
        consumed.insert(name)
        return flags.contains(name)
    }

    mutating func string(_ name: String) -> String? {
        consumed.insert(name)
        return options[name]
    }

    mutating func required(_ name: String) throws -> String {
        guard let v = string(name) else { throw CLIError.usage(command, "--\(name) is required") }
        return v
    }

    mutating func int(_ name: String) throws -> Int? {
        guard let s = string(name) else { return nil }
        guard let v = Int(s) else { throw CLIError.usage(command, "--\(name) expects an integer, got '\(s)'") }
        return v
    }

    mutating func double(_ name: String) throws -> Double? {
        guard let s = string(name) else { return nil }
        guard let v = Double(s) else { throw CLIError.usage(command, "--\(name) expects a number, got '\(s)'") }
        return v
    }

    /// Call after reading every option: anything left is a mistake of the user's.
    func finish(positionals expected: ClosedRange<Int>) throws {
        let unknown = Set(options.keys).union(flags).union(consumedFlagsOff).subtracting(consumed).sorted()
        if let first = unknown.first { throw CLIError.usage(command, "unknown option --\(first)") }
        if !expected.contains(positionals.count) {
            throw CLIError.usage(command, "expected \(expected.lowerBound == expected.upperBound ? "\(expected.lowerBound)" : "\(expected.lowerBound)–\(expected.upperBound)") argument(s), got \(positionals.count)")
        }
    }
}

enum CLIError: Error, CustomStringConvertible {
    case usage(String, String)
    case failed(String)

    var description: String {
        switch self {
        case .usage(let command, let message): return "\(command): \(message)\nrun 'swift-finetune help' for usage"
        case .failed(let message): return message
        }
    }
}

extension Arguments {
    /// `--deepspeed PATH` (and DeepSpeed's own spelling `--deepspeed_config PATH`, either with `=`), as the
    /// Hugging Face Trainer's and DeepSpeed's launchers take them: the recipe override `deepspeed=PATH`.
    /// Giving it twice is an error (which one would win is not obvious).
    static func deepSpeedOverrides(_ command: String, _ args: [String]) throws -> [String] {
        var out: [String] = [], given: String?, i = 0
        while i < args.count {
            let a = args[i]
            if let flag = ["--deepspeed", "--deepspeed_config"].first(where: { a == $0 || a.hasPrefix($0 + "=") }) {
                let path: String
                if a == flag {
                    guard i + 1 < args.count else { throw CLIError.usage(command, "\(flag) needs a ds_config.json path") }
                    path = args[i + 1]
                    i += 1
                } else {
                    path = String(a.dropFirst(flag.count + 1))
                }
                if let given { throw CLIError.usage(command, "two ds_configs given ('\(given)' and '\(path)'); give one") }
                given = path
                out.append("deepspeed=" + path)
            } else {
                out.append(a)
            }
            i += 1
        }
        return out
    }
}
