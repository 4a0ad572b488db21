import ArgumentParser
import FoundationEssentials
import Glibc

/// `report`: combines the JSON lines the benchmarks printed into one results file (with the machine
/// they ran on) and prints the markdown table (scripts/bench.sh).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Combine benchmark outputs into results.json and a markdown table.")

    @Option(help: "Where to write the combined JSON.") var output: String
    @Option(help: "The toolchain, as `swift --version` prints it (recorded in the results).") var swiftVersion = ""
    @Option(help: "A line recorded with the results and printed under the table (repeatable).") var note: [String] = []
    @Option(help: "NAME:STATUS of a benchmark that exited non-zero (repeatable).") var failed: [String] = []
    @Argument(help: "Files holding a benchmark's stdout (its JSON line is the last non-empty line).") var files: [String]

    struct Machine: Codable {
        var cpu: String
        var cores: Int
        var memoryKiB: Int
        var kernel: String
        var swift: String
    }

    struct Combined: Codable {
        var generatedAt: String
        var machine: Machine
        var notes: [String]
        var failed: [String]
        var results: [BenchResult]
    }

    func run() throws {
        var results: [BenchResult] = []
        var failures = failed
        for file in files {
            let text = ProcessStats.readProcFile(file)
            guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
                  let result = try? JSONDecoder().decode(BenchResult.self, from: Data(line.utf8)) else {
                failures.append("\(file): no result")
                continue
            }
            results.append(result)
        }
        let combined = Combined(generatedAt: Self.now(), machine: Self.machine(swift: swiftVersion), notes: note,
                                failed: failures, results: results)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(combined)
        guard let stream = fopen(output, "w") else { throw BenchError("cannot write \(output): \(String(cString: strerror(errno)))") }
        _ = data.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, stream) }
        fputs("\n", stream)
        fclose(stream)
        print(Self.markdown(combined))
    }

    static func markdown(_ combined: Combined) -> String {
        let machine = combined.machine
        var lines = [
            "Machine: \(machine.cpu), \(machine.cores) cores, \(machine.memoryKiB / 1024) MiB RAM, Linux \(machine.kernel); \(machine.swift). Run \(combined.generatedAt).",
            "",
            "| Benchmark | Metric | Median | p99 | Unit | Goal | Met |",
            "| --- | --- | ---: | ---: | --- | --- | --- |",
        ]
        for result in combined.results {
            for metric in result.metrics {
                let met = metric.met.map { $0 ? "yes" : "**no**" } ?? ""
                let name = metric.name.replacing("|", with: "\\|")
                lines.append("| \(result.benchmark) | \(name) | \(Format.number(metric.median)) | \(metric.p99.map(Format.number) ?? "") | \(metric.unit) | \(metric.goal ?? "") | \(met) |")
            }
        }
        let builds = Set(combined.results.map(\.build))
        if builds != ["release"] { lines.append(""); lines.append("**Build: \(builds.sorted().joined(separator: ", ")) (numbers are only meaningful in release).**") }
        var notes = combined.notes
        for result in combined.results {
            for metric in result.metrics { if let note = metric.note { notes.append("\(result.benchmark) / \(metric.name): \(note)") } }
            notes += result.notes.map { "\(result.benchmark): \($0)" }
        }
        if !notes.isEmpty {
            lines.append("")
            lines.append("Notes:")
            lines += notes.map { "- \($0)" }
        }
        if !combined.failed.isEmpty {
            lines.append("")
            lines.append("**Exited non-zero or gave no result:** \(combined.failed.joined(separator: ", "))")
        }
        return lines.joined(separator: "\n")
    }

    static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func machine(swift: String) -> Machine {
        let cpuinfo = ProcessStats.readProcFile("/proc/cpuinfo")
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String(($0.split(separator: ":", maxSplits: 1).last ?? "").drop { $0 == " " || $0 == "\t" }) } ?? "unknown CPU"
        let meminfo = ProcessStats.readProcFile("/proc/meminfo")
        let memory = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        var names = utsname()
        uname(&names)
        let kernel = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return Machine(cpu: model, cores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), memoryKiB: memory, kernel: kernel, swift: swift)
    }
}
