import COniguruma

/// A user-supplied regex (a `Split` or `Replace` pattern that no hand-written scanner covers), run by
/// Oniguruma: the engine HF tokenizers compiles these patterns with (the `onig` crate, Oniguruma syntax,
/// no options), so syntax and semantics (`\d` as Nd, `\h` as a hex digit, lookbehind, possessive and
/// atomic groups) are HF's by construction.
///
/// Backtracking is bounded: every search gets a budget of retry steps (Oniguruma's match-time retry
/// limit, HF's default of 10 million, and the same again per search over its start positions). A
/// pattern such as `(a+)+$` on a long run of `a` exhausts it in milliseconds and the encode fails with
/// `TokenizerError.patternBudgetExceeded` naming the pattern, where HF's tokenizers panic.
///
/// Text is handed over as UTF-32LE, which is how `[UInt32]` scalars lie in memory on the little-endian
/// machines this runs on: no copy, and a byte offset / 4 is the scalar index.
final class OnigurumaMatcher: ScalarMatcher, @unchecked Sendable {
    // Searching a compiled regex only reads it (the onig crate shares one across threads the same way);
    // each search has its own region and match parameters.
    private let regex: OnigRegex
    let pattern: String
    let file: String
    static let stepBudget = 10_000_000

    private static let initialized: Bool = {
        var encodings: [OnigEncoding?] = [sf_onig_encoding_utf32le()]
        return onig_initialize(&encodings, 1) == ONIG_NORMAL
    }()

    init(pattern: String, file: String) throws {
        self.pattern = pattern
        self.file = file
        guard Self.initialized else {
            throw TokenizerError.unsupportedPattern(file: file, pattern: pattern, reason: "Oniguruma failed to initialize")
        }
        let units = pattern.unicodeScalars.map { $0.value.littleEndian }
        var compiled: OnigRegex?
        var info = OnigErrorInfo()
        let status = units.withUnsafeBytes { raw -> Int32 in
            let start = raw.bindMemory(to: OnigUChar.self).baseAddress ?? UnsafePointer(bitPattern: 1)!
            return onig_new(&compiled, start, start + raw.count, ONIG_OPTION_NONE, sf_onig_encoding_utf32le(),
                            sf_onig_syntax_oniguruma(), &info)
        }
        guard status == ONIG_NORMAL, let compiled else {
            throw TokenizerError.unsupportedPattern(file: file, pattern: pattern, reason: Self.message(status, &info))
        }
        regex = compiled
    }

    deinit { onig_free(regex) }

    static func message(_ code: Int32, _ info: UnsafeMutablePointer<OnigErrorInfo>?) -> String {
        var buffer = [OnigUChar](repeating: 0, count: Int(ONIG_MAX_ERROR_MESSAGE_LEN) + 1)
        let n = sf_onig_error_text(&buffer, code, info)
        return String(decoding: buffer.prefix(Int(max(0, n))), as: UTF8.self)
    }

    /// Matches left to right, as the onig crate's `find_iter`: each search starts where the last match
    /// ended (the whole text stays visible to lookbehind), and an empty match right after the previous
    /// match is skipped by one character.
    func matches(in text: [UInt32]) throws -> [Range<Int>] {
        guard let region = onig_region_new() else { return [] }
        defer { onig_region_free(region, 1) }
        guard let param = onig_new_match_param() else { return [] }
        defer { onig_free_match_param(param) }
        onig_initialize_match_param(param)
        onig_set_retry_limit_in_match_of_match_param(param, UInt(Self.stepBudget))
        onig_set_retry_limit_in_search_of_match_param(param, UInt(Self.stepBudget))
        var out: [Range<Int>] = []
        var failure: Int32 = 0
        text.withUnsafeBytes { raw in
            let base = raw.bindMemory(to: OnigUChar.self).baseAddress ?? UnsafePointer(bitPattern: 4)!
            let end = base + raw.count
            var position = 0
            var lastMatchEnd: Int? = nil
            while position <= text.count {
                onig_region_clear(region)
                let r = onig_search_with_param(regex, base, end, base + position * 4, end, region, ONIG_OPTION_NONE, param)
                if r == ONIG_MISMATCH { break }
                if r < 0 { failure = r; break }
                let lower = Int(region.pointee.beg[0]) / 4, upper = Int(region.pointee.end[0]) / 4
                if lower == upper && lastMatchEnd == upper {
                    position += 1
                    continue
                }
                out.append(lower..<upper)
                position = upper
                lastMatchEnd = upper
            }
        }
        if failure == ONIGERR_RETRY_LIMIT_IN_MATCH_OVER || failure == ONIGERR_RETRY_LIMIT_IN_SEARCH_OVER {
            throw TokenizerError.patternBudgetExceeded(file: file, pattern: pattern, steps: Self.stepBudget, textLength: text.count)
        }
        if failure != 0 {
            throw TokenizerError.unsupportedPattern(file: file, pattern: pattern, reason: Self.message(failure, nil))
        }
        return out
    }
}
