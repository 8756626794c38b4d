import CJSONC
import Foundation
import Formats

/// The two big tables of a BPE/WordPiece/WordLevel model, read straight from json-c.
struct PreloadedModelTables {
    var vocab: [TokenKey: Int]?
    var merges: [(TokenKey, TokenKey)]?
}

/// Fast, exact loading of tokenizer.json.
///
/// Going through `JSONValue` costs twice: a 50k vocabulary and 50k merges become a Swift tree, then tables.
/// It is also inexact: `JSONObject` keys are Swift Strings, which compare by canonical equivalence, so a
/// vocabulary holding both "é" and "e\u{301}" (SentencePiece-trained ones do) would lose one. Here json-c's
/// tree is read directly for `model.vocab` and `model.merges` (keys kept byte for byte), those two are
/// deleted, and only the small remainder is handed over as `JSONValue`.
enum TokenizerFileReader {
    /// nil when json-c cannot parse the file; the caller then re-reads it through `JSONValue` for a precise
    /// error message.
    static func read(path: String) throws -> (JSONValue, PreloadedModelTables)? {
        if let problem = RegularFile.problem(path) { throw TokenizerError.malformed(file: path, message: "cannot read: \(problem)") }
        guard let root = json_object_from_file(path) else { return nil }
        defer { json_object_put(root) }
        guard json_object_get_type(root) == json_type_object else { return nil }
        var tables = PreloadedModelTables()
        var model: OpaquePointer? = nil
        if json_object_object_get_ex(root, "model", &model) != 0, json_object_get_type(model) == json_type_object {
            var vocab: OpaquePointer? = nil
            if json_object_object_get_ex(model, "vocab", &vocab) != 0, let v = readVocab(vocab) {
                tables.vocab = v
                json_object_object_del(model, "vocab")
                json_object_object_add(model, "vocab", json_object_new_object())
            }
            var merges: OpaquePointer? = nil
            if json_object_object_get_ex(model, "merges", &merges) != 0, let m = readMerges(merges) {
                tables.merges = m
                json_object_object_del(model, "merges")
                json_object_object_add(model, "merges", json_object_new_array())
            }
        }
        guard let text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN) else { return nil }
        let rest = try JSONValue.parse(String(cString: text), source: path)
        return (rest, tables)
    }

    private static func readVocab(_ obj: OpaquePointer?) -> [TokenKey: Int]? {
        guard json_object_get_type(obj) == json_type_object else { return nil }
        var out: [TokenKey: Int] = [:]
        out.reserveCapacity(Int(json_object_object_length(obj)))
        var it = json_object_iter_begin(obj)
        var end = json_object_iter_end(obj)
        while json_object_iter_equal(&it, &end) == 0 {
            let value = json_object_iter_peek_value(&it)
            guard json_object_get_type(value) == json_type_int else { return nil }
            let name = json_object_iter_peek_name(&it)!
            out[decode(name, strlen(name))] = Int(json_object_get_int64(value))
            json_object_iter_next(&it)
        }
        return out
    }

    private static func readMerges(_ obj: OpaquePointer?) -> [(TokenKey, TokenKey)]? {
        guard json_object_get_type(obj) == json_type_array else { return nil }
        let n = json_object_array_length(obj)
        var out: [(TokenKey, TokenKey)] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let e = json_object_array_get_idx(obj, i)
            if json_object_get_type(e) == json_type_string {
                // Legacy "left right": split at the first space.
                let s = json_object_get_string(e)!
                let len = Int(json_object_get_string_len(e))
                guard let space = (0..<len).first(where: { s[$0] == 0x20 }) else { return nil }
                out.append((decode(s, space), decode(s + space + 1, len - space - 1)))
            } else if json_object_get_type(e) == json_type_array, json_object_array_length(e) == 2 {
                let a = json_object_array_get_idx(e, 0), b = json_object_array_get_idx(e, 1)
                guard json_object_get_type(a) == json_type_string, json_object_get_type(b) == json_type_string else { return nil }
                out.append((decode(json_object_get_string(a)!, Int(json_object_get_string_len(a))),
                            decode(json_object_get_string(b)!, Int(json_object_get_string_len(b)))))
            } else {
                return nil
            }
        }
        return out
    }

    /// UTF-8 bytes → scalars; malformed sequences become U+FFFD one byte at a time.
    static func decode(_ p: UnsafePointer<CChar>, _ n: Int) -> TokenKey {
        p.withMemoryRebound(to: UInt8.self, capacity: max(n, 1)) { b in
            var out: TokenKey = []
            out.reserveCapacity(n)
            var i = 0
            while i < n {
                let c = b[i]
                let k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0
                if k == 1 { out.append(UInt32(c)); i += 1; continue }
                guard k > 0, i + k <= n else { out.append(0xFFFD); i += 1; continue }
                var v = UInt32(c) & (0xFF >> (k + 1))
                var ok = true
                for j in 1..<k {
                    let d = b[i + j]
                    if d & 0xC0 != 0x80 { ok = false; break }
                    v = v << 6 | UInt32(d & 0x3F)
                }
                if ok { out.append(v); i += k } else { out.append(0xFFFD); i += 1 }
            }
            return out
        }
    }
}
