import Foundation

/// SentencePiece's compiled normalization rules (`precompiled_charsmap`, base64 in tokenizer.json): a
/// darts-clone double-array trie over UTF-8 keys whose leaves point into a pool of NUL-terminated
/// replacements. Mirrors HF's `spm_precompiled` quirks exactly: per extended grapheme cluster shorter than
/// 6 bytes, the SHORTEST rule that prefixes the cluster replaces the WHOLE cluster; otherwise each scalar is
/// looked up on its own.
struct PrecompiledNormalizer: Normalizer {
    let units: [UInt32]
    let pool: [UInt8]

    init(charsmap: [UInt8], file: String, path: String) throws {
        func bad(_ why: String) -> TokenizerError {
            .invalidField(file: file, path: path + ".precompiled_charsmap", expected: "a SentencePiece charsmap", found: why)
        }
        guard charsmap.count >= 4 else { throw bad("\(charsmap.count) bytes") }
        let trieBytes = Int(charsmap[0]) | Int(charsmap[1]) << 8 | Int(charsmap[2]) << 16 | Int(charsmap[3]) << 24
        guard trieBytes % 4 == 0, 4 + trieBytes <= charsmap.count else { throw bad("a trie size of \(trieBytes) bytes in \(charsmap.count)") }
        var units = [UInt32](repeating: 0, count: trieBytes / 4)
        for i in 0..<units.count {
            let o = 4 + 4 * i
            units[i] = UInt32(charsmap[o]) | UInt32(charsmap[o + 1]) << 8 | UInt32(charsmap[o + 2]) << 16 | UInt32(charsmap[o + 3]) << 24
        }
        self.units = units
        pool = Array(charsmap[(4 + trieBytes)...])
    }

    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// The replacement of the shortest rule that is a prefix of `key`, if any.
    func transform<C: Collection>(_ key: C) -> [UInt8]? where C.Element == UInt8 {
        guard !units.isEmpty else { return nil }
        var pos = Self.offset(units[0])
        for c in key {
            if c == 0 { break }
            pos ^= Int(c)
            guard pos >= 0 && pos < units.count else { return nil }
            let unit = units[pos]
            if unit & ((1 << 31) | 0xFF) != UInt32(c) { return nil }
            pos ^= Self.offset(unit)
            if (unit >> 8) & 1 == 1 {
                guard pos >= 0 && pos < units.count else { return nil }
                let start = Int(units[pos] & 0x7FFF_FFFF)
                guard start <= pool.count else { return nil }
                var end = start
                while end < pool.count && pool[end] != 0 { end += 1 }
                return Array(pool[start..<end])
            }
        }
        return nil
    }

    func normalize(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for cluster in string(text) {
            let bytes = Array(cluster.utf8)
            if bytes.count < 6, let r = transform(bytes) { out += r; continue }
            for s in cluster.unicodeScalars {
                let b = Array(String(s).utf8)
                out += transform(b) ?? b
            }
        }
        return scalars(String(decoding: out, as: UTF8.self))
    }
}
