import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Formats
import Tensors

/// Everything that can go wrong reading or writing safetensors files and checkpoints. Each case carries
/// the file (or folder) it concerns and, where one is involved, the tensor, so a user can find the fault.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    // Opening and mapping.
    case io(path: String, operation: String, errno: Int32)
    case notARegularFile(path: String)

    // The 8-byte length and the header.
    case truncated(path: String, fileSize: Int)
    case headerTooLarge(path: String, length: UInt64)
    case headerBeyondFile(path: String, length: UInt64, fileSize: Int)
    case headerNotUTF8(path: String)
    case headerNotJSON(path: String, message: String)
    case headerNotObject(path: String, found: String)
    case duplicateTensor(path: String, name: String)
    case invalidEntry(path: String, tensor: String, problem: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case invalidMetadata(path: String, problem: String)

    // Where the tensors lie in the data buffer.
    case invalidOffsets(path: String, tensor: String, begin: Int, end: Int, problem: String)
    case byteLengthMismatch(path: String, tensor: String, dtype: DType, shape: [Int], expected: Int, actual: Int)
    case layout(path: String, problem: String)
    case dataSizeMismatch(path: String, expectedFileSize: Int, fileSize: Int)

    // Reading tensors.
    case tensorNotFound(source: String, name: String)
    case unsupportedConversion(source: String, tensor: String, dtype: DType, wanted: String)
    case elementCountMismatch(source: String, tensor: String, expected: Int, given: Int)
    case valueOutOfRange(source: String, tensor: String, index: Int)

    // Writing.
    case invalidTensor(name: String, problem: String)
    case invalidShardSize(String)

    // Sharded checkpoints.
    case noCheckpoint(folder: String)
    case invalidIndex(path: String, problem: String)
    case missingShard(index: String, shard: String, tensor: String)
    case tensorMissingFromShard(index: String, shard: String, tensor: String)

    public var description: String {
        switch self {
        case .io(let path, let operation, let code):
            return "\(path): \(operation) failed: \(String(cString: strerror(code)))"
        case .notARegularFile(let path):
            return "\(path): \(RegularFile.problem(path) ?? "not a regular file")"
        case .truncated(let path, let size):
            return "\(path): truncated safetensors file: \(size) bytes, shorter than the 8-byte header length"
        case .headerTooLarge(let path, let n):
            return "\(path): header length \(n) exceeds the safetensors limit of 100000000 bytes (corrupt or not a safetensors file)"
        case .headerBeyondFile(let path, let n, let size):
            return "\(path): header length \(n) runs past the end of the \(size)-byte file (truncated or not a safetensors file)"
        case .headerNotUTF8(let path):
            return "\(path): header is not valid UTF-8"
        case .headerNotJSON(let path, let message):
            return "\(path): header is not valid JSON: \(message)"
        case .headerNotObject(let path, let found):
            return "\(path): header must be a JSON object, found \(found)"
        case .duplicateTensor(let path, let name):
            return "\(path): tensor '\(name)' appears more than once in the header"
        case .invalidEntry(let path, let tensor, let problem):
            return "\(path): tensor '\(tensor)': \(problem)"
        case .unknownDType(let path, let tensor, let dtype):
            let known = DType.allCases.sorted { $0.safetensorsRank < $1.safetensorsRank }.map(\.rawValue)
            return "\(path): tensor '\(tensor)': unknown or unsupported dtype \"\(dtype)\" (known: \(known.joined(separator: ", ")))"
        case .invalidMetadata(let path, let problem):
            return "\(path): __metadata__ \(problem)"
        case .invalidOffsets(let path, let tensor, let b, let e, let problem):
            return "\(path): tensor '\(tensor)': data_offsets [\(b), \(e)] \(problem)"
        case .byteLengthMismatch(let path, let tensor, let dtype, let shape, let expected, let actual):
            return "\(path): tensor '\(tensor)': \(dtype.rawValue) \(shape) needs \(expected) bytes but data_offsets span \(actual)"
        case .layout(let path, let problem):
            return "\(path): tensors do not tile the data buffer: \(problem)"
        case .dataSizeMismatch(let path, let expected, let size):
            return size < expected
                ? "\(path): truncated: the header describes \(expected) bytes but the file has \(size)"
                : "\(path): \(size - expected) bytes after the last tensor (header describes \(expected) bytes, file has \(size))"
        case .tensorNotFound(let source, let name):
            return "\(source): no tensor named '\(name)'"
        case .unsupportedConversion(let source, let tensor, let dtype, let wanted):
            return "\(source): tensor '\(tensor)' is \(dtype.rawValue), cannot be read as \(wanted)"
        case .elementCountMismatch(let source, let tensor, let expected, let given):
            return "\(source): tensor '\(tensor)' has \(expected) elements but the destination holds \(given)"
        case .valueOutOfRange(let source, let tensor, let index):
            return "\(source): tensor '\(tensor)': element \(index) does not fit in Int64"
        case .invalidTensor(let name, let problem):
            return "tensor '\(name)': \(problem)"
        case .invalidShardSize(let text):
            return "invalid max shard size '\(text)': expected an integer number of bytes or a number with unit KB, MB, GB or TB (decimal, e.g. \"5GB\" = 5000000000)"
        case .noCheckpoint(let folder):
            return "\(folder): no model.safetensors or model.safetensors.index.json"
        case .invalidIndex(let path, let problem):
            return "\(path): \(problem)"
        case .missingShard(let index, let shard, let tensor):
            return "\(index): shard '\(shard)' (holding '\(tensor)') does not exist"
        case .tensorMissingFromShard(let index, let shard, let tensor):
            return "\(index): tensor '\(tensor)' is mapped to shard '\(shard)' but that file does not contain it"
        }
    }
}
