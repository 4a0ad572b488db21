import Foundation
import MoltTestSupport
import Testing

/// Memory must not grow with version swaps: runs `molt-bench swap-rss` (1000 C version swaps
/// through the engine, RSS read after 50 warm-up swaps and at the end) in its own process, so
/// nothing else in the test process moves the RSS. The bench exits non-zero past 2 MiB of growth.
@Suite struct RSSTests {
    /// MOLT_BENCH_BIN (the Makefile sets it), else the debug build's binary.
    static let benchBinary = ProcessInfo.processInfo.environment["MOLT_BENCH_BIN"] ?? "\(Fixtures.repositoryRoot)/.build/debug/molt-bench"

    @Test func thousandVersionSwapsKeepRSSFlat() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.benchBinary) else {
            Issue.record("molt-bench not found at \(Self.benchBinary): run `swift build` (or set MOLT_BENCH_BIN)")
            return
        }
        _ = try Fixtures.path("probe-1.0.0.so")  // fails with "run make build" when the fixtures are missing
        _ = try Fixtures.path("probe-2.0.0.so")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.benchBinary)
        process.arguments = ["swap-rss", "--count", "1000", "--max-growth-kib", "2048",
                             "--plugins-dir", Fixtures.pluginsDirectory, "--fixtures-dir", Fixtures.fixturesDirectory]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0,
                "molt-bench swap-rss exited \(process.terminationStatus) (RSS grew past 2048 KiB or a swap failed):\n\(text)")
    }
}
