// The library users import: `import SwiftFinetune` brings in the whole public API.
@_exported import Tensors
@_exported import Kernels
@_exported import Formats
@_exported import SafeTensors
@_exported import GGUF
@_exported import Tokenizers
@_exported import Models
@_exported import Distributed
@_exported import Engine
@_exported import Trainer
@_exported import Recipes
