import Foundation
import PluginHost

/// Where the build put real plugin binaries, and scratch plugin directories made from them.
public enum Fixtures {
    /// The repository root, from this file's location (Tests/Support/Fixtures.swift).
    public static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// Test-only plugins (make fixtures): probe, bad files, Swift test lock, examples.
    public static let fixturesDirectory = ProcessInfo.processInfo.environment["MOLT_FIXTURES_DIR"] ?? "\(repositoryRoot)/build/fixtures"
    /// Shipped plugins (make plugins): memorylock, …
    public static let pluginsDirectory = ProcessInfo.processInfo.environment["MOLT_PLUGINS_DIR"] ?? "\(repositoryRoot)/plugins.d"

    /// The path of a built plugin or fixture by file name; fails loudly when the build did not make it.
    public static func path(_ name: String) throws -> String {
        for directory in [fixturesDirectory, pluginsDirectory] where FileManager.default.fileExists(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw FixtureMissing(description: "\(name) was not built: run `make build` (looked in \(fixturesDirectory) and \(pluginsDirectory))")
    }

    public struct FixtureMissing: Error, CustomStringConvertible {
        public let description: String
    }

    /// A fresh private plugins directory holding copies of `names` (mode 0755, as an installer would).
    public static func pluginDirectory(with names: [String]) throws -> String {
        let directory = try makeTemporaryDirectory()
        for name in names { try install(try path(name), into: directory) }
        return directory
    }

    @discardableResult
    public static func install(_ source: String, into directory: String, as name: String? = nil) throws -> String {
        let destination = "\(directory)/\(name ?? String(source.split(separator: "/").last!))"
        try? FileManager.default.removeItem(atPath: destination)
        try FileManager.default.copyItem(atPath: source, toPath: destination)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: destination)
        return destination
    }

    public static func makeTemporaryDirectory() throws -> String {
        let temporary = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        var template = Array("/\(temporary)/molt-test-XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CocoaError(.fileWriteUnknown)
        }
        return String(cString: created)
    }

    /// A loader over a fresh directory holding `names`.
    public static func loader(with names: [String]) throws -> PluginLoader {
        try PluginLoader(pluginsDirectory: try pluginDirectory(with: names))
    }

    /// The current process's mappings, for checking what is (un)mapped.
    public static func processMaps() -> String { readProcFile("/proc/self/maps") }

    /// Reads a /proc file to its end (they report size 0, and Foundation's readers stop short).
    public static func readProcFile(_ path: String) -> String {
        String(decoding: readWholeFile(path) ?? [], as: UTF8.self)
    }

    /// Resident set size of this process in KiB.
    public static func residentKiB() -> Int {
        let status = readProcFile("/proc/self/status")
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
}
