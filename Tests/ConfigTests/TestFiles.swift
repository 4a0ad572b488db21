import Foundation

/// The test fixtures (copied into the test bundle) and scratch files.
enum TestFiles {
    static let fixtures: String = {
        guard let path = Bundle.module.path(forResource: "Fixtures", ofType: nil) else {
            fatalError("Fixtures missing from the ConfigTests bundle")
        }
        return path
    }()

    static func fixture(_ relativePath: String) -> String { "\(fixtures)/\(relativePath)" }

    /// Writes `text` to a new file named `name` in a fresh temporary directory; returns its path.
    static func scratch(_ name: String, _ text: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("molt-config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
