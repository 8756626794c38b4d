import Foundation
import SwiftFinetune

/// `--model` of generate, eval and tokenize (and export's source) may name a `.gguf` file: it is converted
/// once into a cache folder (`GGUFModelCache`), which the command then reads like any model folder.
enum ModelPath {
    static func folder(_ path: String) throws -> String {
        try GGUFModelCache.folder(for: path) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    }
}
