import Foundation
import XCTest

extension XCTestCase {
    /// A fresh folder under the temporary directory for this test, removed when the test ends.
    func scratchDirectory(_ name: String) throws -> String {
        let work = NSTemporaryDirectory() + "sf-\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        return work
    }
}
