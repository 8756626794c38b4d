/// GPT-2's reversible byte ⇄ printable-character table: bytes 33–126, 161–172 and 174–255 stand for
/// themselves; the other 68 bytes, in ascending order, become U+0100 + n (space → Ġ, newline → Ċ).
/// Public for the GGUF converter, which respells byte-level vocabularies with it.
public enum ByteLevelMap {
    public static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + n
                n += 1
            }
        }
        return table
    }()

    /// Inverse of `byteToScalar`, indexed by scalar value (all stand-ins are below U+0144); -1 = not a stand-in.
    public static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (b, s) in byteToScalar.enumerated() { table[Int(s)] = Int16(b) }
        return table
    }()

    /// UTF-8 encodes `text` and maps every byte to its stand-in.
    static func encode(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count + 4)
        for v in text {
            if v < 0x80 {
                out.append(byteToScalar[Int(v)])
            } else if let s = Unicode.Scalar(v) {
                for b in UTF8.encode(s)! { out.append(byteToScalar[Int(b)]) }
            }
        }
        return out
    }

    /// The bytes a token stands for, or nil when it contains a character outside the table (HF then keeps
    /// the token's own UTF-8 bytes).
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            let v = Int(s.value)
            guard v < scalarToByte.count, scalarToByte[v] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[v]))
        }
        return out
    }
}
