import Models
import Tensors

/// Which parameters get weight decay, matching transformers 5.23's `Trainer.get_decay_parameter_names`:
///
///     get_parameter_names(model, [nn.LayerNorm],
///         ["bias", "layernorm", "rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"])
///
/// A parameter is excluded when its lower-cased name contains "bias", "layernorm" or "rmsnorm", has a
/// dot-separated component equal to "norm" or ending in "_norm", or belongs to an `nn.LayerNorm` module.
/// (`get_parameter_names` tests the patterns on every suffix of the dotted name while it recurses; each
/// pattern is anchored at a dot or at the start, so testing the full name is equivalent.)
///
/// What this means for the families we train: in transformers 5.23 `ALL_LAYERNORM_LAYERS` is just
/// `[nn.LayerNorm]` and `LlamaRMSNorm` is not an `nn.LayerNorm`, so Llama/Mistral/Qwen2 norm weights
/// are excluded by NAME only ("input_layernorm", "post_attention_layernorm", "model.norm"). GPT-2's
/// `ln_1`, `ln_2`, `ln_f` match no pattern and are excluded by TYPE only: names cannot tell, so the
/// model must say which modules are LayerNorms (`layerNormModules`). Both are checked by
/// Tests/Fixtures/optim/decay_names.json, produced by transformers itself on tiny Llama and GPT-2 models.
public struct DecayPolicy: Sendable {
    /// Module paths (a parameter name without its last component) of `nn.LayerNorm` instances.
    public var layerNormModules: Set<String>

    public init(layerNormModules: Set<String> = []) {
        self.layerNormModules = layerNormModules
    }

    /// The policy of a config's architecture (which of its modules are LayerNorms).
    public init(for config: TransformerConfig) {
        self.init(layerNormModules: config.architecture.layerNormModules(config))
    }

    public func decays(_ name: String) -> Bool {
        let lower = name.lowercased()
        if lower.contains("bias") || lower.contains("layernorm") || lower.contains("rmsnorm") { return false }
        let components = lower.split(separator: ".", omittingEmptySubsequences: false)
        if components.contains(where: { $0 == "norm" || $0.hasSuffix("_norm") }) { return false }
        if let dot = name.lastIndex(of: "."), layerNormModules.contains(String(name[..<dot])) { return false }
        return true
    }
}

/// One optimizer parameter group: its weight decay and the element ranges of its tensors in the flat
/// buffers (adjacent tensors merged into one range).
public struct ParameterGroup: Sendable, Equatable {
    public var weightDecay: Double
    public var names: [String]
    public var ranges: [Range<Int>]
    public var elementCount: Int { ranges.reduce(0) { $0 + $1.count } }
}

/// The parameter groups transformers' Trainer builds (`create_optimizer`): group 0 with the configured
/// weight decay, group 1 with none, frozen parameters (requires_grad False) in neither. Frozen
/// parameters are never updated and their optimizer state is never read or written; the state buffers
/// still span the whole layout, so their slots simply stay zero.
public struct ParameterGroups: Sendable, Equatable {
    public var decay: ParameterGroup
    public var noDecay: ParameterGroup
    public var frozenNames: [String]

    /// Both groups, decay first (transformers' order; empty groups are kept so indices are stable).
    public var all: [ParameterGroup] { [decay, noDecay] }

    public init(layout: ParameterLayout, weightDecay: Double, policy: DecayPolicy = DecayPolicy(),
                isFrozen: (String) -> Bool = { _ in false }) {
        decay = ParameterGroup(weightDecay: weightDecay, names: [], ranges: [])
        noDecay = ParameterGroup(weightDecay: 0, names: [], ranges: [])
        frozenNames = []
        for entry in layout.entries {
            if isFrozen(entry.name) { frozenNames.append(entry.name); continue }
            if policy.decays(entry.name) {
                Self.add(entry, to: &decay)
            } else {
                Self.add(entry, to: &noDecay)
            }
        }
    }

    /// Frozen parameters given as a set of names.
    public init(layout: ParameterLayout, weightDecay: Double, policy: DecayPolicy = DecayPolicy(), frozen: Set<String>) {
        self.init(layout: layout, weightDecay: weightDecay, policy: policy, isFrozen: { frozen.contains($0) })
    }

    private static func add(_ entry: ParameterLayout.Entry, to group: inout ParameterGroup) {
        group.names.append(entry.name)
        if entry.count == 0 { return }
        if let last = group.ranges.last, last.upperBound == entry.offset {
            group.ranges[group.ranges.count - 1] = last.lowerBound..<entry.range.upperBound
        } else {
            group.ranges.append(entry.range)
        }
    }

    /// A piece of one group inside a shard: what an optimizer steps with that group's settings.
    public struct Segment: Sendable, Equatable {
        /// Index into `all`.
        public var group: Int
        public var weightDecay: Double
        /// Element range in the full flat buffers.
        public var range: Range<Int>
    }

    /// The trainable pieces of `shard` (a ZeRO rank's slice, or the whole buffer), in buffer order.
    public func segments(within shard: Range<Int>) -> [Segment] {
        var out: [Segment] = []
        for (g, group) in all.enumerated() {
            for r in group.ranges {
                let lo = Swift.max(r.lowerBound, shard.lowerBound), hi = Swift.min(r.upperBound, shard.upperBound)
                if lo < hi { out.append(Segment(group: g, weightDecay: group.weightDecay, range: lo..<hi)) }
            }
        }
        return out.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    /// Every trainable range (both groups), in buffer order: what gradient clipping sums over.
    public var trainableRanges: [Range<Int>] {
        (decay.ranges + noDecay.ranges).sorted { $0.lowerBound < $1.lowerBound }
    }
}
