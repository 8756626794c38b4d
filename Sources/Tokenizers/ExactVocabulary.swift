import CJSONC
import Formats

/// Re-reads `model.vocab` of a tokenizer.json with keys kept byte for byte.
///
/// `JSONObject` keys are Swift Strings, which compare by canonical equivalence, so a vocabulary holding both
/// "é" and "e\u{301}" (SentencePiece-trained vocabularies do) loses one of them in `JSONValue`. That shows
/// up as an id with no token; only then is the file parsed again here, straight from json-c.
enum ExactVocabulary {
    static func read(path: String) -> [TokenKey: Int]? {
        guard let root = json_object_from_file(path) else { return nil }
        defer { json_object_put(root) }
        var model: OpaquePointer? = nil
        var vocab: OpaquePointer? = nil
        guard json_object_object_get_ex(root, "model", &model) != 0,
              json_object_object_get_ex(model, "vocab", &vocab) != 0,
              json_object_get_type(vocab) == json_type_object else { return nil }
        var out: [TokenKey: Int] = [:]
        out.reserveCapacity(Int(json_object_object_length(vocab)))
        var it = json_object_iter_begin(vocab)
        var end = json_object_iter_end(vocab)
        while json_object_iter_equal(&it, &end) == 0 {
            let name = json_object_iter_peek_name(&it)!
            let key = scalars(String(cString: name))
            out[key] = Int(json_object_get_int64(json_object_iter_peek_value(&it)))
            json_object_iter_next(&it)
        }
        return out
    }
}
