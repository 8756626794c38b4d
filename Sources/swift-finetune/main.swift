import SwiftFinetune
print("swift-finetune")
