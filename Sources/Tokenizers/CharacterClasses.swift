/// Unicode character classes with the definitions HF tokenizers uses (Rust `char` methods and the regex
/// engines' `\p{..}` / `\s`). ASCII is answered from a table because pre-tokenization asks for every scalar.
enum CharacterClasses {
    /// Bits per ASCII byte: 1 letter, 2 number, 4 whitespace, 8 ASCII punctuation, 16 word (`\w`).
    private static let asciiTable: [UInt8] = (0..<128).map { b -> UInt8 in
        let c = UInt8(b)
        var bits: UInt8 = 0
        if (c >= 65 && c <= 90) || (c >= 97 && c <= 122) { bits |= 1 | 16 }
        if c >= 48 && c <= 57 { bits |= 2 | 16 }
        if c == 95 { bits |= 16 }
        if c == 32 || (c >= 9 && c <= 13) { bits |= 4 }
        if (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) { bits |= 8 }
        return bits
    }

    /// `\p{L}`: general category Letter.
    @inline(__always) static func isLetter(_ v: UInt32) -> Bool {
        if v < 128 { return asciiTable[Int(v)] & 1 != 0 }
        return isLetterSlow(v)
    }

    static func isLetterSlow(_ v: UInt32) -> Bool {
        guard let s = Unicode.Scalar(v) else { return false }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}` and Rust's `char::is_numeric`: Nd, Nl, No.
    @inline(__always) static func isNumber(_ v: UInt32) -> Bool {
        if v < 128 { return asciiTable[Int(v)] & 2 != 0 }
        guard let s = Unicode.Scalar(v) else { return false }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s` and Rust's `char::is_whitespace`: the White_Space property.
    @inline(__always) static func isWhitespace(_ v: UInt32) -> Bool {
        if v < 128 { return asciiTable[Int(v)] & 4 != 0 }
        guard let s = Unicode.Scalar(v) else { return false }
        return s.properties.isWhitespace
    }

    /// BERT's punctuation: ASCII punctuation or any Unicode P* category.
    static func isPunctuation(_ v: UInt32) -> Bool {
        if v < 128 { return asciiTable[Int(v)] & 8 != 0 }
        guard let s = Unicode.Scalar(v) else { return false }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// Rust regex `\w` (Unicode): Alphabetic, marks, decimal numbers, connector punctuation, Join_Control.
    static func isWordCharacter(_ v: UInt32) -> Bool {
        if v < 128 { return asciiTable[Int(v)] & 16 != 0 }
        guard let s = Unicode.Scalar(v) else { return false }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Rust's `char::is_alphanumeric` (Alphabetic or Numeric), used for added tokens' `single_word`.
    static func isAlphanumeric(_ v: UInt32) -> Bool {
        if v < 128 { return asciiTable[Int(v)] & 3 != 0 }
        guard let s = Unicode.Scalar(v) else { return false }
        return s.properties.isAlphabetic || isNumber(v)
    }

    /// BertNormalizer's "control": categories C* except tab, newline and carriage return.
    static func isBertControl(_ v: UInt32) -> Bool {
        if v == 9 || v == 10 || v == 13 { return false }
        guard let s = Unicode.Scalar(v) else { return true }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isChineseCharacter(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }

    static func isMark(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
}
