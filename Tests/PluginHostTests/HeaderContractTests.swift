import Foundation
import Logging
import MoltTestSupport
import PluginABI
import PluginHost
import Testing

/// molt_plugin.h checks the plugin author: its prototypes reject a wrong signature, -Wmissing-prototypes
/// rejects a misspelt name, and molt_log formats through the host's log service.
@Suite struct HeaderContractTests {
    static let include = "\(Fixtures.repositoryRoot)/PluginKit/Sources/PluginABI/include"
    /// The compile flags of the documented build line (and the Makefile's PLUGIN_CFLAGS).
    static let flags = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Wmissing-prototypes", "-Werror"]

    /// Compiles `source` (syntax only) against the header: the exit status and the compiler's output.
    func compile(_ source: String) throws -> (status: Int32, output: String) {
        let directory = try Fixtures.makeTemporaryDirectory()
        let file = "\(directory)/plugin.c"
        try source.write(toFile: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [ProcessInfo.processInfo.environment["CC"] ?? "cc"] + Self.flags + ["-fsyntax-only", "-I", Self.include, file]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    static let correct = """
        #include <molt_plugin.h>
        MOLT_DEFINE_ABI_VERSION()
        molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
            (void)instance; (void)message_out; return MOLT_READY;
        }
        static int helper(void) { return 1; }
        void molt_plugin_destroy(molt_instance instance) { (void)instance; (void)helper; }
        """

    @Test func aCorrectPluginCompiles() throws {
        let result = try compile(Self.correct)
        #expect(result.status == 0, "\(result.output)")
    }

    @Test func aWrongSignatureDoesNotCompile() throws {
        let result = try compile("""
            #include <molt_plugin.h>
            int molt_plugin_readiness(molt_instance instance) { (void)instance; return MOLT_READY; }
            """)
        #expect(result.status != 0)
        #expect(result.output.contains("molt_plugin_readiness"), "\(result.output)")
    }

    @Test func aWrongOperationSignatureDoesNotCompile() throws {
        let result = try compile("""
            #include <molt_plugin.h>
            void molt_lock_unlock(molt_instance instance, const molt_lock_request *request, molt_try_lock_done done, void *call_context) {
                (void)instance; (void)request; (void)done; (void)call_context;
            }
            """)
        #expect(result.status != 0)
        #expect(result.output.contains("molt_lock_unlock"), "\(result.output)")
    }

    @Test func aMisspeltNameIsRefusedWithMissingPrototypes() throws {
        let result = try compile("""
            #include <molt_plugin.h>
            molt_readiness molt_plugin_readyness(molt_instance instance, molt_message *message_out) {
                (void)instance; (void)message_out; return MOLT_READY;
            }
            """)
        #expect(result.status != 0)
        #expect(result.output.contains("molt_plugin_readyness"), "\(result.output)")
    }

    @Test func molt_logFormatsTruncatesAndSkipsAHostWithoutLog() throws {
        let sink = CapturedLog()
        let logger = Logger(label: "test") { _ in sink }
        let loader = try Fixtures.loader(with: ["log-format.so"])
        let instance = try PluginInstance(binary: loader.load(path: "log-format.so"), componentName: "lockstore", config: ["a": "1"], logger: logger)
        _ = instance
        let lines = sink.lines
        #expect(lines.contains { $0.level == .warning && $0.message == "log-format: component lockstore, 1 keys, formatted" }, "\(lines)")
        let long = try #require(lines.first { $0.message.hasPrefix("log-format: long ") })
        #expect(long.level == .info)
        #expect(long.message.utf8.count == 1023 && long.message.hasSuffix("..."), "truncated to MOLT_LOG_LINE_MAX - 1 bytes, ending in ...")
        #expect(!lines.contains { $0.message.contains("never logged") })
    }
}

/// A LogHandler that keeps every line (tests only).
final class CapturedLog: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [(level: Logger.Level, message: String)] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var lines: [(level: Logger.Level, message: String)] { lock.withLock { stored } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.withLock { stored.append((event.level, event.message.description)) }
    }
}
