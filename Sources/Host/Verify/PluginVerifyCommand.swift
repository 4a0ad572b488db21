import ArgumentParser
import Engine
import FoundationEssentials
import Logging
import PluginHost
import ServingCore

#if canImport(Glibc)
import Glibc
#endif

extension PluginCommand {
    /// `molt plugin verify PATH [--previous OLD.so]`: a conformance check of a plugin binary, without a
    /// running molt (Verifier.swift lists the checks).
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that a plugin binary keeps molt's plugin contract (no running molt needed).",
            discussion: """
                Loads PATH as `molt plugin inspect` does (its own directory as the plugins directory), starts \
                instances with the declared defaults and --metadata, and checks readiness, the semantics of its \
                kind (Dapr's lock, state store, secret store, configuration store or pub/sub), whether it declares the state it holds, apply_config, state \
                transfer (and, with --previous, both ways between the two versions) and init/destroy cycles. Each check prints one line: ok, FAIL or skip, \
                its name, and what was seen or what went wrong. Exit status 0 when every check passed, 1 when \
                one failed, 64 for a usage error.
                """)

        @Argument(help: "Path to the plugin .so file.") var path: String
        @Option(help: ArgumentHelp("An older version of the plugin: state transfer is checked from PATH to it and back.",
                                   valueName: "OLD.so"))
        var previous: String?
        @Option(name: .customLong("metadata"), parsing: .singleValue,
                help: ArgumentHelp("Configuration key=value (repeatable), e.g. a required key: --metadata redisHost=127.0.0.1:6379.",
                                   valueName: "KEY=VALUE"))
        var metadata: [String] = []
        @Option(name: .customLong("apply"),
                help: ArgumentHelp("The in-place change apply_config is checked with (default: a declared in-place key's value + 1).",
                                   valueName: "KEY=VALUE"))
        var applyChange: String?
        @Option(name: .customLong("timeout-ms"),
                help: "Timeout of each plugin step (init, readiness, apply_config, export, import, destroy), molt serve's default; an operation gets at most 5 s.")
        var timeoutMs = 10_000
        @Option(help: "Init/destroy cycles whose RSS growth is measured.") var cycles = 50
        @Option(name: .customLong("rss-limit-mib"), help: "Most RSS growth over the cycles, in MiB.") var rssLimitMiB = 16.0
        @Flag(help: "Print the report as JSON.") var json = false
        @Flag(help: "Show the plugin's log lines (info and above) on stderr.") var verbose = false

        func validate() throws {
            _ = try Self.keyValues(metadata, option: "--metadata")
            if let applyChange { _ = try Self.keyValues([applyChange], option: "--apply") }
            guard (1...600_000).contains(timeoutMs) else { throw ValidationError("--timeout-ms must be 1...600000, not \(timeoutMs)") }
            guard (1...10_000).contains(cycles) else { throw ValidationError("--cycles must be 1...10000, not \(cycles)") }
            guard rssLimitMiB > 0 else { throw ValidationError("--rss-limit-mib must be positive") }
            for file in [path] + (previous.map { [$0] } ?? []) where access(file, F_OK) != 0 {
                throw ValidationError("\(file): no such file")
            }
        }

        func run() async throws {
            Molt.bootstrapLogging(level: verbose ? .info : .error)
            let logger = Logger(label: "molt.verify")
            let config = try Self.keyValues(metadata, option: "--metadata")
            var settings = EngineSettings()
            let timeout = Duration.milliseconds(timeoutMs)
            (settings.initTimeout, settings.readinessTimeout, settings.applyConfigTimeout) = (timeout, timeout, timeout)
            (settings.stateTransferTimeout, settings.destroyTimeout) = (timeout, timeout)
            let change = try applyChange.map { try Self.keyValues([$0], option: "--apply").first! }
            let verifier = Verifier(path: path, previousPath: previous, metadata: config, change: change.map { ($0.key, $0.value) },
                                    cycles: cycles, rssLimitMiB: rssLimitMiB, harness: VerifyHarness(settings: settings, logger: logger))
            let report: VerifyReport
            if let loop = HostIO.shared.eventLoops.first {
                // Operations are called on one of the host's loops, as the app servers call them.
                report = await withTaskExecutorPreference(EventLoopExecutor(loop)) { await verifier.run(streaming: !json) }
            } else {
                report = await verifier.run(streaming: !json)
            }
            if json {
                print(try jsonText(report.json))
            } else {
                print(report.summary)
            }
            if !report.passed { throw ExitCode(1) }
        }

        /// `key=value` entries as a dictionary; a usage error names the entry that is not one.
        static func keyValues(_ entries: [String], option: String) throws -> [String: String] {
            var pairs: [String: String] = [:]
            for entry in entries {
                guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                    throw ValidationError("\(option) '\(entry)' is not key=value")
                }
                pairs[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            }
            return pairs
        }
    }
}

/// Loads a plugin binary the way `molt plugin inspect` does: vetted by the loader's trust rules, with the
/// file's own directory as the plugins directory.
func loadStandalone(_ path: String) throws(LoadError) -> PluginBinary {
    let absolute = path.hasPrefix("/") ? path : "\(currentDirectory())/\(path)"
    let directory = String(absolute[..<absolute.lastIndex(of: "/")!])
    return try PluginLoader(pluginsDirectory: directory.isEmpty ? "/" : directory).load(path: absolute)
}
