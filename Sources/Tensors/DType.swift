/// Element types the project stores. Arithmetic is always f32 (this CPU has no bf16 math);
/// bf16 and f16 are storage formats for weights, activations and communication.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64"
    case f32 = "F32"
    case bf16 = "BF16"
    case f16 = "F16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u8 = "U8"
    case u16 = "U16"
    case u32 = "U32"
    case u64 = "U64"
    case bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .bf16, .f16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool { self == .f64 || self == .f32 || self == .bf16 || self == .f16 }

    /// The order safetensors writes tensors in: by dtype, highest first, in the Rust enum's order
    /// (BOOL < U8 < I8 < … < F16 < BF16 < … < F32 < F64 < …), then by name.
    public var safetensorsRank: Int {
        switch self {
        case .bool: return 0
        case .u8: return 3
        case .i8: return 4
        case .i16: return 7
        case .u16: return 8
        case .f16: return 9
        case .bf16: return 10
        case .i32: return 11
        case .u32: return 12
        case .f32: return 13
        case .f64: return 14
        case .i64: return 15
        case .u64: return 16
        }
    }

    /// Names used by `torch_dtype` / `dtype` in config.json.
    public var torchName: String {
        switch self {
        case .f64: return "float64"
        case .f32: return "float32"
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        case .i64: return "int64"
        case .i32: return "int32"
        case .i16: return "int16"
        case .i8: return "int8"
        case .u8: return "uint8"
        case .u16: return "uint16"
        case .u32: return "uint32"
        case .u64: return "uint64"
        case .bool: return "bool"
        }
    }

    public init?(torchName: String) {
        let n = torchName.hasPrefix("torch.") ? String(torchName.dropFirst(6)) : torchName
        switch n {
        case "float32", "float": self = .f32
        case "bfloat16": self = .bf16
        case "float16", "half": self = .f16
        case "float64", "double": self = .f64
        default:
            guard let d = DType.allCases.first(where: { $0.torchName == n }) else { return nil }
            self = d
        }
    }
}
