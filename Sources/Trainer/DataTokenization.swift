import Formats
import Tokenizers

/// The label of a position that carries no loss (PyTorch's `ignore_index`).
public let ignoreLabel: Int32 = -100

/// One tokenised example: `labels[t]` is the token the loss expects at position t (-100 = none), in the
/// unshifted Hugging Face convention (`labels == input_ids` where trained). Shifting happens in the batch.
public struct TokenizedExample: Sendable, Equatable {
    public var inputIds: [Int32]
    public var labels: [Int32]
    public var location: DataLocation

    public init(inputIds: [Int32], labels: [Int32], location: DataLocation) {
        self.inputIds = inputIds
        self.labels = labels
        self.location = location
    }

    /// How many positions feed the loss once shifted: `labels[0]` is never a target (nothing predicts it).
    public var targetCount: Int { labels.dropFirst().reduce(0) { $0 + ($1 == ignoreLabel ? 0 : 1) } }

    /// The first `maxLength` tokens (truncation keeps the beginning, as transformers' default right side).
    public func truncated(to maxLength: Int) -> TokenizedExample {
        guard inputIds.count > maxLength else { return self }
        return TokenizedExample(inputIds: Array(inputIds.prefix(maxLength)), labels: Array(labels.prefix(maxLength)), location: location)
    }
}

/// Turns records into token ids and labels.
///
/// - `text`: the tokenizer's leading special tokens (BOS when its post-processor adds one), the text, then
///   EOS, all trained. EOS is appended as TRL's SFTTrainer does, so packed documents are separated and the
///   model learns to stop; trailing specials of the post-processor (BERT's [SEP], a T5-style </s>) are left
///   out so EOS is never doubled.
/// - `prompt_completion`/`alpaca`: leading specials + prompt + completion + EOS, the prompt and the leading
///   specials masked unless `trainOnPrompt`. Prompt and completion are encoded separately, as torchtune
///   does: the ids are what generation sees (a prompt tokenised alone, then sampled completion tokens), and
///   the boundary is exact even when the prompt ends in a space.
/// - `chat`/`sharegpt`: the chat template renders the conversation, encoded without special tokens as
///   transformers' `apply_chat_template(tokenize=True)` does (the template writes BOS itself if the model
///   wants one). Only assistant turns are trained: the turn of message i starts where the rendering of
///   messages[..<i] with the generation prompt ends, and ends where the rendering of messages[...i] ends —
///   both measured in tokens, and both must be token prefixes of the whole conversation or it throws.
public struct ExampleTokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let trainOnPrompt: Bool
    public let eosId: Int32
    /// The special tokens the post-processor puts before a single sequence (usually BOS, or nothing).
    public let leadingSpecialIds: [Int32]
    private let chatTemplate: ChatTemplate?
    private let chatTemplateProblem: String?

    /// `chatTemplate` overrides the tokenizer's own; a template that does not parse is only an error
    /// when a conversation needs it, so text formats still work with such a tokenizer.
    public init(tokenizer: Tokenizer, trainOnPrompt: Bool = false, chatTemplate: ChatTemplate? = nil) throws {
        self.tokenizer = tokenizer
        self.trainOnPrompt = trainOnPrompt
        guard let eos = tokenizer.eosTokenId else {
            throw DataError.tokenizer(source: tokenizer.source, message: "the tokenizer has no eos_token; training data needs one to end examples")
        }
        eosId = Int32(eos)
        leadingSpecialIds = try Self.leadingSpecials(tokenizer).map(Int32.init)
        if let chatTemplate {
            self.chatTemplate = chatTemplate
            chatTemplateProblem = nil
        } else if let source = tokenizer.chatTemplateSource {
            do {
                self.chatTemplate = try ChatTemplate(source: source)
                chatTemplateProblem = nil
            } catch {
                self.chatTemplate = nil
                chatTemplateProblem = "the tokenizer's chat template does not parse: \(error)"
            }
        } else {
            self.chatTemplate = nil
            chatTemplateProblem = "the tokenizer has no chat template (tokenizer_config.json chat_template or chat_template.jinja)"
        }
    }

    /// Found by encoding a probe with and without special tokens: what comes before the probe's ids.
    static func leadingSpecials(_ tokenizer: Tokenizer) throws -> [Int] {
        let probe = "a"
        let plain = try tokenizer.encode(probe, addSpecialTokens: false)
        let full = try tokenizer.encode(probe, addSpecialTokens: true)
        guard !plain.isEmpty, full.count >= plain.count else { return [] }
        for start in 0...(full.count - plain.count) where Array(full[start..<start + plain.count]) == plain {
            return Array(full[..<start])
        }
        return []
    }

    public func tokenize(_ record: DataRecord, at location: DataLocation) throws -> TokenizedExample {
        switch record {
        case .text(let text):
            let ids = try leadingSpecialIds + encode(text) + [eosId]
            return TokenizedExample(inputIds: ids, labels: ids, location: location)
        case .promptCompletion(let prompt, let completion):
            let promptIds = try leadingSpecialIds + encode(prompt)
            let completionIds = try encode(completion) + [eosId]
            let promptLabels = trainOnPrompt ? promptIds : [Int32](repeating: ignoreLabel, count: promptIds.count)
            return TokenizedExample(inputIds: promptIds + completionIds, labels: promptLabels + completionIds, location: location)
        case .chat(let messages):
            return try tokenizeChat(messages, at: location)
        }
    }

    private func encode(_ text: String) throws -> [Int32] {
        try tokenizer.encode(text, addSpecialTokens: false).map(Int32.init)
    }

    /// The rendered conversation, as `apply_chat_template(tokenize=False)` gives it.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, at location: DataLocation) throws -> String {
        guard let chatTemplate else {
            throw DataError.tokenizer(source: tokenizer.source, message: chatTemplateProblem ?? "no chat template")
        }
        var extra: [String: TemplateValue] = [:]
        if let unk = tokenizer.unkToken { extra["unk_token"] = .string(unk) }
        if let pad = tokenizer.padToken { extra["pad_token"] = .string(pad) }
        do {
            return try chatTemplate.render(messages: messages.map(\.fields), addGenerationPrompt: addGenerationPrompt,
                                           bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken, extra: extra)
        } catch {
            throw DataError.template(source: location.source, line: location.line, message: "\(error)")
        }
    }

    /// A warning when the tokenizer adds leading special tokens (BOS) to plain text but the chat template
    /// does not write them: conversations then train without BOS, exactly as transformers'
    /// `apply_chat_template(tokenize=True)` would encode them, which may not be what the model expects.
    /// nil when the template writes them, when there are none, or when there is no usable template.
    public func chatTemplateBOSWarning() -> String? {
        guard !leadingSpecialIds.isEmpty, chatTemplate != nil else { return nil }
        let probe = [ChatMessage(role: "user", content: "Hi"), ChatMessage(role: "assistant", content: "Hello")]
        guard let text = try? render(probe, addGenerationPrompt: false, at: DataLocation(source: "probe", line: 0)) else { return nil }
        // A probe that cannot be encoded says nothing here; the data's own encoding reports the error.
        guard let ids = try? encode(text) else { return nil }
        if ids.starts(with: leadingSpecialIds) { return nil }
        let tokens = leadingSpecialIds.map { tokenizer.idToToken(Int($0)) ?? "\($0)" }.joined(separator: " ")
        return "the chat template does not write \(tokens), which the tokenizer adds to plain text; "
            + "conversations are encoded without it (as transformers' apply_chat_template does)"
    }

    private func tokenizeChat(_ messages: [ChatMessage], at location: DataLocation) throws -> TokenizedExample {
        let ids = try encode(try render(messages, addGenerationPrompt: false, at: location))
        if trainOnPrompt { return TokenizedExample(inputIds: ids, labels: ids, location: location) }
        var labels = [Int32](repeating: ignoreLabel, count: ids.count)
        for (i, message) in messages.enumerated() where message.role == "assistant" {
            let start = try prefixLength(Array(messages[..<i]), generationPrompt: true, of: ids, index: i, at: location)
            let end = i == messages.count - 1
                ? ids.count
                : try prefixLength(Array(messages[...i]), generationPrompt: false, of: ids, index: i, at: location)
            guard start <= end else {
                throw DataError.prefixMismatch(source: location.source, line: location.line, messageIndex: i,
                                               detail: "the turn ends (token \(end)) before it starts (token \(start))")
            }
            for t in start..<end { labels[t] = ids[t] }
        }
        return TokenizedExample(inputIds: ids, labels: labels, location: location)
    }

    /// The token count of a rendered prefix of the conversation, checked to be a prefix of `ids`.
    private func prefixLength(_ prefix: [ChatMessage], generationPrompt: Bool, of ids: [Int32], index: Int,
                              at location: DataLocation) throws -> Int {
        let prefixIds = try encode(try render(prefix, addGenerationPrompt: generationPrompt, at: location))
        let what = generationPrompt ? "messages[..<\(index)] with the generation prompt" : "messages[...\(index)]"
        guard prefixIds.count <= ids.count else {
            throw DataError.prefixMismatch(source: location.source, line: location.line, messageIndex: index,
                                           detail: "\(what) is \(prefixIds.count) tokens, longer than the whole conversation (\(ids.count))")
        }
        if let t = prefixIds.indices.first(where: { prefixIds[$0] != ids[$0] }) {
            throw DataError.prefixMismatch(source: location.source, line: location.line, messageIndex: index,
                                           detail: "\(what) differs from the whole conversation at token \(t) (\(prefixIds[t]) vs \(ids[t]))")
        }
        return prefixIds.count
    }
}
