/// The ggml tensor types this project reads (and, for F32/F16/BF16/Q8_0, writes). Raw values are the
/// numbers GGUF stores; block sizes and byte sizes are ggml's (`GGML_QUANT_SIZES` in the gguf package).
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case bf16 = 30

    /// Every type we can dequantize, in raw-value order.
    public static let supported: [GGMLType] = allCases

    /// Names of the ggml types we know of but cannot dequantize, so the error can say which one a file used.
    static let otherNames: [UInt32: String] = [
        4: "Q4_2 (removed from ggml)", 5: "Q4_3 (removed from ggml)", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K",
        16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
        23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0",
        35: "TQ2_0", 39: "MXFP4",
    ]

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        }
    }

    /// Elements per block: 1 for plain floats, 32 for the legacy quants, 256 for the K-quants.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return 32
        case .q4_K, .q5_K, .q6_K: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18       // f16 d, 16 bytes of nibbles
        case .q4_1: return 20       // f16 d, f16 m, 16 bytes of nibbles
        case .q5_0: return 22       // f16 d, 4 bytes of high bits, 16 bytes of nibbles
        case .q5_1: return 24       // f16 d, f16 m, 4 bytes of high bits, 16 bytes of nibbles
        case .q8_0: return 34       // f16 d, 32 int8
        case .q4_K: return 144      // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
        case .q5_K: return 176      // as Q4_K plus 32 bytes of high bits
        case .q6_K: return 210      // 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, f16 d
        }
    }

    /// The GGUF file-type code (`general.file_type`, llama.cpp's `LlamaFileType`) of a file whose 2-D
    /// tensors are mostly of this type.
    public var fileType: UInt32? {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .bf16: return 32
        case .q4_K, .q5_K, .q6_K: return nil  // llama.cpp's K-quant file types are mixes (Q4_K_M, ...)
        }
    }

    /// Bytes of `elements` values, which must be a whole number of blocks.
    public func byteCount(elements: Int) -> Int { elements / blockSize * blockBytes }
}
