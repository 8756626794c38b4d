import Foundation
import Formats
import Models
import Tokenizers

/// A single user prompt turned into token ids the way transformers does it, and the ids generation
/// stops at. Shared by `swift-finetune generate` and the trainer's sample prompts.
public enum ChatPrompt {
    /// Through the chat template with a generation prompt, encoded without added special tokens (the
    /// template already wrote them), as `apply_chat_template(tokenize=True)`; or plain text with the
    /// tokenizer's default special tokens. Throws when `chat` is asked of a tokenizer without a template.
    public static func ids(_ prompt: String, chat: Bool, tokenizer: Tokenizer, source: String) throws -> [Int] {
        guard chat else { return try tokenizer.encode(prompt) }
        guard let template = tokenizer.chatTemplateSource else { throw ChatPromptError.noTemplate(source: source) }
        let text = try ChatTemplate(source: template).render(
            messages: [["role": .string("user"), "content": .string(prompt)]], addGenerationPrompt: true,
            bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
        return try tokenizer.encode(text, addSpecialTokens: false)
    }

    /// End-of-sequence ids from config.json, the tokenizer and (when `directory` has one)
    /// generation_config.json.
    public static func stopIds(config: TransformerConfig, tokenizer: Tokenizer, directory: String?) -> Set<Int32> {
        var ids = config.eosTokenIds + tokenizer.eosTokenIds
        if let directory, let g = try? JSONValue.read(path: (directory as NSString).appendingPathComponent("generation_config.json")),
           let eos = g["eos_token_id"] {
            ids += eos.arrayValue?.compactMap(\.intValue) ?? eos.intValue.map { [$0] } ?? []
        }
        return Set(ids.map(Int32.init))
    }
}

public enum ChatPromptError: Error, CustomStringConvertible {
    case noTemplate(source: String)
    /// The tokenizer can produce an id the model has no embedding row for.
    case tokenOutsideVocabulary(tokenizer: String, token: String, id: Int, vocabSize: Int)

    public var description: String {
        switch self {
        case .noTemplate(let s): return "\(s): a chat prompt needs a chat template (tokenizer_config.json chat_template or chat_template.jinja)"
        case .tokenOutsideVocabulary(let source, let token, let id, let vocabSize):
            return "\(source): token \(token.debugDescription) has id \(id), outside the model's vocab_size \(vocabSize) "
                + "(ids must be below it; resize the embedding or fix the tokenizer's added_tokens)"
        }
    }
}

extension ChatPrompt {
    /// Refuses a tokenizer that can produce an id ≥ the model's vocab_size, which would read past the
    /// embedding. Every command that loads both (train, eval, generate) calls this before encoding.
    public static func checkFits(_ tokenizer: Tokenizer, vocabSize: Int, tokenizerSource: String) throws {
        if let (id, token) = tokenizer.largestId, id >= vocabSize {
            throw ChatPromptError.tokenOutsideVocabulary(tokenizer: tokenizerSource, token: token, id: id, vocabSize: vocabSize)
        }
    }
}
