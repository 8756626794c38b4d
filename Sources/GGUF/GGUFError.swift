import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Everything that can go wrong reading, converting or writing GGUF files. Each case names the file and,
/// where one is involved, the metadata key or tensor, and says what was expected, so a user can find the
/// fault without a hex editor. Offsets are absolute byte positions in the file.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    // Opening.
    case io(path: String, operation: String, errno: Int32)
    case notARegularFile(path: String)

    // The fixed header.
    case badMagic(path: String, found: [UInt8])
    case unsupportedVersion(path: String, version: UInt32)
    case bigEndian(path: String)
    case truncated(path: String, offset: Int, needed: Int, what: String)
    case absurdCount(path: String, what: String, count: UInt64, limit: UInt64)

    // Metadata.
    case stringTooLong(path: String, offset: Int, length: UInt64, remaining: Int, what: String)
    case invalidUTF8(path: String, offset: Int, what: String)
    case unknownValueType(path: String, key: String, type: UInt32)
    case arrayTooLong(path: String, key: String, count: UInt64, remaining: Int)
    case nestingTooDeep(path: String, key: String)
    case invalidBool(path: String, key: String, byte: UInt8)
    case duplicateKey(path: String, key: String)
    case invalidAlignment(path: String, problem: String)

    // Tensor infos.
    case tooManyDimensions(path: String, tensor: String, dims: UInt32)
    case unknownTensorType(path: String, tensor: String, type: UInt32)
    case unsupportedTensorType(path: String, tensor: String, type: String)
    case invalidShape(path: String, tensor: String, dims: [UInt64], problem: String)
    case duplicateTensor(path: String, tensor: String)
    case misalignedTensor(path: String, tensor: String, offset: UInt64, alignment: Int)
    case tensorOutOfRange(path: String, tensor: String, begin: UInt64, byteCount: Int, dataSize: Int)
    case overlappingTensors(path: String, first: String, second: String)

    // Reading tensors and metadata by name.
    case tensorNotFound(path: String, tensor: String)
    case missingKey(path: String, key: String, expected: String)
    case wrongValueType(path: String, key: String, expected: String, found: String)
    case invalidValue(path: String, key: String, problem: String)

    // Converting to or from a Hugging Face folder.
    case unsupportedArchitecture(path: String, architecture: String, supported: [String])
    case unexpectedTensor(path: String, tensor: String, architecture: String)
    case missingTensor(path: String, tensor: String)
    case tensorShapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case unsupportedTokenizer(path: String, model: String, supported: [String])
    case invalidTokenizer(path: String, problem: String)
    case invalidModel(path: String, problem: String)

    // Writing.
    case invalidTensorData(tensor: String, problem: String)
    /// A model or tokenizer that has no GGUF form we can write.
    case exportUnsupported(source: String, problem: String)

    public var description: String {
        switch self {
        case .io(let path, let operation, let code):
            return "\(path): \(operation) failed: \(String(cString: strerror(code)))"
        case .notARegularFile(let path):
            return "\(path): not a regular file"
        case .badMagic(let path, let found):
            let hex = found.map { String(format: "%02x", $0) }.joined(separator: " ")
            return "\(path): not a GGUF file: expected the magic bytes 47 47 55 46 (\"GGUF\"), found \(found.isEmpty ? "an empty file" : hex)"
        case .unsupportedVersion(let path, let v):
            return "\(path): GGUF version \(v) is not supported (expected 2 or 3\(v == 1 ? "; version 1 files predate 64-bit counts, re-convert them with a current llama.cpp" : ""))"
        case .bigEndian(let path):
            return "\(path): big-endian GGUF file; only little-endian files are supported"
        case .truncated(let path, let offset, let needed, let what):
            return "\(path): truncated: \(what) needs \(needed) bytes at offset \(offset), past the end of the file"
        case .absurdCount(let path, let what, let count, let limit):
            return "\(path): \(what) is \(count), impossible in a file this size (at most \(limit)): corrupt header"
        case .stringTooLong(let path, let offset, let length, let remaining, let what):
            return "\(path): \(what) at offset \(offset) claims \(length) bytes but only \(remaining) remain in the file"
        case .invalidUTF8(let path, let offset, let what):
            return "\(path): \(what) at offset \(offset) is not valid UTF-8"
        case .unknownValueType(let path, let key, let type):
            return "\(path): metadata '\(key)': unknown value type \(type) (expected 0-12: u8 i8 u16 i16 u32 i32 f32 bool string array u64 i64 f64)"
        case .arrayTooLong(let path, let key, let count, let remaining):
            return "\(path): metadata '\(key)': array of \(count) elements cannot fit in the \(remaining) bytes left in the file"
        case .nestingTooDeep(let path, let key):
            return "\(path): metadata '\(key)': arrays nested more than 4 deep"
        case .invalidBool(let path, let key, let byte):
            return "\(path): metadata '\(key)': bool must be 0 or 1, found \(byte)"
        case .duplicateKey(let path, let key):
            return "\(path): metadata key '\(key)' appears more than once"
        case .invalidAlignment(let path, let problem):
            return "\(path): general.alignment \(problem)"
        case .tooManyDimensions(let path, let tensor, let dims):
            return "\(path): tensor '\(tensor)': \(dims) dimensions (ggml allows at most 4)"
        case .unknownTensorType(let path, let tensor, let type):
            return "\(path): tensor '\(tensor)': unknown ggml type \(type)"
        case .unsupportedTensorType(let path, let tensor, let type):
            let known = GGMLType.supported.map(\.name).joined(separator: ", ")
            return "\(path): tensor '\(tensor)': ggml type \(type) cannot be dequantized (supported: \(known))"
        case .invalidShape(let path, let tensor, let dims, let problem):
            return "\(path): tensor '\(tensor)': dims \(dims) \(problem)"
        case .duplicateTensor(let path, let tensor):
            return "\(path): tensor '\(tensor)' appears more than once"
        case .misalignedTensor(let path, let tensor, let offset, let alignment):
            return "\(path): tensor '\(tensor)': data offset \(offset) is not a multiple of the alignment \(alignment)"
        case .tensorOutOfRange(let path, let tensor, let begin, let count, let size):
            return "\(path): tensor '\(tensor)': \(count) bytes at data offset \(begin) extend past the \(size)-byte data section: the file is truncated or the offset is corrupt"
        case .overlappingTensors(let path, let first, let second):
            return "\(path): tensors '\(first)' and '\(second)' overlap in the data section"
        case .tensorNotFound(let path, let tensor):
            return "\(path): no tensor named '\(tensor)'"
        case .missingKey(let path, let key, let expected):
            return "\(path): missing metadata '\(key)' (\(expected))"
        case .wrongValueType(let path, let key, let expected, let found):
            return "\(path): metadata '\(key)': expected \(expected), found \(found)"
        case .invalidValue(let path, let key, let problem):
            return "\(path): metadata '\(key)': \(problem)"
        case .unsupportedArchitecture(let path, let arch, let supported):
            return "\(path): general.architecture '\(arch)' is not supported (supported: \(supported.joined(separator: ", ")))"
        case .unexpectedTensor(let path, let tensor, let arch):
            return "\(path): tensor '\(tensor)' has no Hugging Face counterpart in a \(arch) model"
        case .missingTensor(let path, let tensor):
            return "\(path): the model needs tensor '\(tensor)', which is not in the file"
        case .tensorShapeMismatch(let path, let tensor, let expected, let found):
            return "\(path): tensor '\(tensor)': the metadata implies shape \(expected), the file holds \(found)"
        case .unsupportedTokenizer(let path, let model, let supported):
            return "\(path): tokenizer.ggml.model '\(model)' is not supported (supported: \(supported.joined(separator: ", ")))"
        case .invalidTokenizer(let path, let problem):
            return "\(path): tokenizer: \(problem)"
        case .invalidModel(let path, let problem):
            return "\(path): \(problem)"
        case .invalidTensorData(let tensor, let problem):
            return "tensor '\(tensor)': \(problem)"
        case .exportUnsupported(let source, let problem):
            return "\(source): cannot be written as GGUF: \(problem)"
        }
    }
}
