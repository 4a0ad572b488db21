import ArgumentParser
import Engine
import FoundationEssentials
import Glibc
import Logging
import PluginABI
import PluginHost

// MARK: - Results

/// One measured number. `median` is the headline value; `p99` is given where a distribution exists.
struct Metric: Codable, Sendable {
    var name: String
    var median: Double
    var p99: Double?
    var unit: String
    var samples: Int?
    /// The goal from the issues, e.g. "≤ 20 ns"; judged against `median` unless `note` says otherwise.
    var goal: String?
    var met: Bool?
    var note: String?

    init(_ name: String, _ value: Double, unit: String, p99: Double? = nil, samples: Int? = nil,
         goalAtMost: Double? = nil, goalText: String? = nil, note: String? = nil) {
        self.name = name
        self.median = value
        self.p99 = p99
        self.unit = unit
        self.samples = samples
        self.note = note
        if let goalAtMost {
            goal = goalText ?? "≤ \(goalAtMost == goalAtMost.rounded() ? String(Int(goalAtMost)) : Format.number(goalAtMost)) \(unit)"
            met = value <= goalAtMost
        } else {
            goal = goalText
        }
    }

    init(_ name: String, _ stats: Stats, unit: String, goalAtMost: Double? = nil, goalText: String? = nil, note: String? = nil) {
        self.init(name, stats.median, unit: unit, p99: stats.p99, samples: stats.count, goalAtMost: goalAtMost,
                  goalText: goalText, note: note)
    }
}

/// What one subcommand prints: one line of JSON on stdout.
struct BenchResult: Codable, Sendable {
    var benchmark: String
    var build: String
    var metrics: [Metric] = []
    var notes: [String] = []

    init(_ benchmark: String) {
        self.benchmark = benchmark
        #if DEBUG
        build = "debug"
        #else
        build = "release"
        #endif
    }

    mutating func add(_ metric: Metric) {
        metrics.append(metric)
        var line = "  \(metric.name): \(Format.number(metric.median)) \(metric.unit)"
        if let p99 = metric.p99 { line += " (p99 \(Format.number(p99)))" }
        if let goal = metric.goal { line += " goal \(goal)" + (metric.met.map { $0 ? " met" : " MISSED" } ?? "") }
        Log.info(line)
    }

    mutating func note(_ text: String) {
        notes.append(text)
        Log.info("  note: \(text)")
    }

    /// Prints the result as one JSON line on stdout (the human summary went to stderr).
    func emit() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(self)
        print(String(decoding: data, as: UTF8.self))
    }
}

// MARK: - Statistics and time

struct Stats: Sendable {
    let count: Int
    let median: Double
    let p99: Double
    let minimum: Double
    let maximum: Double
    let mean: Double

    init(_ values: [Double]) {
        precondition(!values.isEmpty, "no samples")
        let sorted = values.sorted()
        count = sorted.count
        median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        p99 = sorted[max(0, Int((0.99 * Double(sorted.count)).rounded(.up)) - 1)]
        minimum = sorted.first!
        maximum = sorted.last!
        mean = sorted.reduce(0, +) / Double(sorted.count)
    }
}

extension Duration {
    var nanoseconds: Double { Double(components.seconds) * 1e9 + Double(components.attoseconds) / 1e9 }
    var microseconds: Double { nanoseconds / 1e3 }
    var milliseconds: Double { nanoseconds / 1e6 }
}

enum Format {
    static func number(_ value: Double) -> String {
        if value.isNaN { return "n/a" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        let magnitude = abs(value)
        let digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3
        return fixed(value, digits: digits)
    }

    static func fixed(_ value: Double, digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled - Double(whole) * scale)
        var text = (value < 0 && scaled > 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let fractionText = String(fraction)
            text += "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
        }
        return text
    }
}

// MARK: - Logging and errors

enum Log {
    /// Human-readable progress goes to stderr, so stdout carries only the JSON result.
    static func info(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return }
            done += count
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private let loggingBootstrap: Void = {
    // The engine and loader log every apply and load at info; keep only warnings (on stderr).
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
}()

// MARK: - Process measurements

enum ProcessStats {
    /// A /proc file read to its end (they report size 0; buffered readers stop short).
    static func readProcFile(_ path: String) -> String {
        String(decoding: readWholeFile(path) ?? [], as: UTF8.self)
    }

    /// A "Name:   123 kB" field of /proc/<pid>/status (default: this process), in KiB.
    static func statusKiB(_ field: String, process: String = "self") -> Int {
        for line in readProcFile("/proc/\(process)/status").split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    static var residentKiB: Int { statusKiB("VmRSS") }
    static var virtualKiB: Int { statusKiB("VmSize") }
}

// MARK: - Plugins

/// Where the plugin binaries come from, and a private plugins directory for each run.
struct PluginOptions: ParsableArguments {
    @Option(help: "Directory of the shipped plugins (memorylock); default env MOLT_PLUGINS_DIR or <repo>/plugins.d.")
    var pluginsDir: String?
    @Option(help: "Directory of the test fixtures (probe, swift-testlock); default env MOLT_FIXTURES_DIR or <repo>/build/fixtures.")
    var fixturesDir: String?
    @Option(help: "Directory searched first for the Swift plugins (swift-testlock-*.so, minimal-swift-lock.so), e.g. release builds of them.")
    var swiftPluginsDir: String?

    static let repositoryRoot: String = {
        // This file is <repo>/Benchmarks/MoltBench/Support.swift.
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    var searchDirectories: [String] {
        [swiftPluginsDir,
         fixturesDir ?? Self.environment("MOLT_FIXTURES_DIR") ?? "\(Self.repositoryRoot)/build/fixtures",
         pluginsDir ?? Self.environment("MOLT_PLUGINS_DIR") ?? "\(Self.repositoryRoot)/plugins.d"].compactMap { $0 }
    }

    func locate(_ name: String) throws -> String {
        for directory in searchDirectories where access("\(directory)/\(name)", R_OK) == 0 {
            return "\(directory)/\(name)"
        }
        throw BenchError("\(name) not found in \(searchDirectories.joined(separator: ", ")): run `make build`")
    }

    /// A fresh private plugins directory (mode 0700) holding copies of `names` (mode 0755).
    func makePluginsDirectory(_ names: [String]) throws -> PluginsDirectory {
        _ = loggingBootstrap
        let parent = Self.environment("TMPDIR") ?? "/tmp"
        var template = Array("\(parent)/molt-bench-XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError("mkdtemp in \(parent): \(String(cString: strerror(errno)))")
        }
        let directory = PluginsDirectory(path: String(cString: created))
        for name in names {
            let source = try locate(name)
            try copyFile(from: source, to: "\(directory.path)/\(name)")
            directory.sources[name] = source
        }
        return directory
    }

    private func copyFile(from source: String, to destination: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw BenchError("open \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
        guard output >= 0 else { throw BenchError("create \(destination): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        fchmod(output, 0o755)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw BenchError("read \(source): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            var done = 0
            while done < count {
                let written = buffer.withUnsafeBytes { write(output, $0.baseAddress! + done, count - done) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { throw BenchError("write \(destination): \(String(cString: strerror(errno)))") }
                done += written
            }
        }
    }
}

/// A private plugins directory, removed (with its files) on deinit.
final class PluginsDirectory {
    let path: String
    /// Where each copied file came from (reported, so a run says which builds it measured).
    var sources: [String: String] = [:]

    init(path: String) { self.path = path }

    deinit {
        for name in sources.keys { unlink("\(path)/\(name)") }
        rmdir(path)
    }

    func loader() throws -> PluginLoader { try PluginLoader(pluginsDirectory: path) }

    /// An engine over this directory, with the catalog scanned.
    func engine(settings: EngineSettings = EngineSettings()) throws -> Engine {
        let catalog = PluginCatalog(loader: try loader())
        let (_, problems) = catalog.rescan()
        if let problem = problems.first { throw BenchError("plugin refused: \(problem)") }
        return Engine(catalog: catalog, settings: settings)
    }
}

let benchLogger = Logger(label: "molt-bench")

/// Polls readiness without sleeping (the plugins used here are ready at once); throws on FAILED or
/// after 10 s.
func waitUntilReady(_ instance: PluginInstance) throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(10))
    while true {
        switch instance.readiness() {
        case .ready: return
        case .failed(let message): throw BenchError("\(instance.binary.info.id) readiness FAILED: \(message)")
        case .notReady(let message):
            if clock.now >= deadline { throw BenchError("\(instance.binary.info.id) not ready after 10 s: \(message)") }
            usleep(100)
        }
    }
}
