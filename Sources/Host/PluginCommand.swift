import ArgumentParser
import FoundationEssentials
import Logging
import PluginHost

struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin", abstract: "List, inspect and verify plugin binaries, and start a new plugin project.",
        subcommands: [List.self, Inspect.self, New.self, Verify.self, Identify.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the plugins in the plugins directory.",
            discussion: "Exit status 3 when some file in the directory was refused (each is listed with its reason).")
        @OptionGroup var directory: PluginDirectoryOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            Molt.bootstrapLogging(level: .error)
            let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: directory.pluginsDirectory))
            let (entries, problems) = catalog.rescan()
            if json {
                let report = ListReport(plugins: entries.map(PluginReport.init), problems: problems.map { ProblemReport(path: $0.path, error: $0.description) })
                print(try jsonText(report))
            } else {
                print(table(["KIND", "NAME", "VERSION", "ABI", "LANG", "FILE"], entries.map { entry in
                    [entry.info.kind.rawValue, entry.info.name, entry.info.version.description,
                     "\(entry.info.abiVersion.major).\(entry.info.abiVersion.minor)",
                     entry.linksSwiftRuntime ? "swift" : "c", String(entry.path.split(separator: "/").last ?? "")]
                }))
                for problem in problems { print("skipped: \(problem)") }
            }
            if !problems.isEmpty { throw ExitCode(3) }
        }
    }

    /// `molt serve`'s catalog reads plugin identities through this command, in a child process
    /// (`ChildProcessInspector`): what reading them maps stays out of the serving process.
    struct Identify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read plugin identities for molt serve's catalog; reports on descriptor 3.", shouldDisplay: false)
        @Option(name: .customLong("plugins-directory"), help: "The plugins directory the files are in.") var pluginsDirectory: String
        @Argument(help: "Plugin files.") var paths: [String] = []

        func run() throws {
            guard fcntl(InspectionReport.descriptor, F_GETFD) >= 0 else {
                throw CommandFailure(description: "descriptor \(InspectionReport.descriptor) is not open: this command reports to molt serve")
            }
            Molt.bootstrapLogging(level: .critical)
            let loader: PluginLoader
            do {
                loader = try PluginLoader(pluginsDirectory: pluginsDirectory)
            } catch {
                throw CommandFailure(description: error.description)
            }
            InspectionReport.report(paths, loader: loader)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a plugin's info, declared config keys and operations, ABI version and optional symbols.",
            discussion: "The file is vetted by the same trust rules as at load time, with its own directory as the plugins directory.")
        @Argument(help: "Path to the plugin .so file.") var path: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            Molt.bootstrapLogging(level: .error)
            let absolute = path.hasPrefix("/") ? path : "\(currentDirectory())/\(path)"
            let binary: PluginBinary
            do {
                let directory = String(absolute[..<absolute.lastIndex(of: "/")!])
                binary = try PluginLoader(pluginsDirectory: directory.isEmpty ? "/" : directory).load(path: absolute)
            } catch {
                throw CommandFailure(description: error.description)
            }
            let report = PluginReport(path: path, sha256: binary.sha256, swift: binary.linksSwiftRuntime, info: binary.info)
            if json {
                print(try jsonText(report))
                return
            }
            print("""
                name:        \(report.name)
                version:     \(report.version)
                kind:        \(report.kind)
                description: \(report.description)
                abi:         \(report.abiVersion)
                language:    \(report.language)
                sha256:      \(report.sha256)
                optional:    \(report.optionalSymbols.isEmpty ? "(none)" : report.optionalSymbols.joined(separator: ", "))
                state:       \(report.stateFormats ?? "no state transfer")
                holds state: \(report.holdsState ? "yes (a reload that cannot hand it over is refused unless the loss is accepted)" : "no")
                """)
            if report.configKeys.isEmpty {
                print(report.openConfig == nil ? "config keys: (none declared)" : "config keys: (none declared besides '*')")
            } else {
                print("config keys:")
                print(table(["KEY", "REQUIRED", "DEFAULT", "IN PLACE", "ALIASES", "DESCRIPTION"], report.configKeys.map {
                    [$0.name, $0.required ? "yes" : "no", $0.defaultValue ?? "-", $0.appliesInPlace ? "yes" : "no",
                     $0.deprecatedAliases.isEmpty ? "-" : $0.deprecatedAliases.joined(separator: ","), $0.description]
                }))
            }
            if let open = report.openConfig {
                print("other keys:  accepted (the plugin declares '*'); a change of one applies in place: \(open.appliesInPlace ? "yes" : "no")")
            }
            if report.operations.isEmpty {
                print("operations:  (none declared)")
            } else {
                print("operations:")
                for operation in report.operations {
                    let how = [operation.blocking ? "blocking" : nil, operation.valuesForm ? "values form" : nil].compactMap { $0 }
                    print("  \(operation.signature)\(how.isEmpty ? "" : "  [\(how.joined(separator: ", "))]")")
                    if !operation.description.isEmpty { print("      \(operation.description)") }
                }
            }
        }
    }
}

/// A failure that is not a usage error: printed as "Error: …" without the usage text, exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
}

struct ListReport: Encodable {
    let plugins: [PluginReport]
    let problems: [ProblemReport]
}

struct ProblemReport: Encodable {
    let path: String
    let error: String
}

struct PluginReport: Encodable {
    let path: String
    let sha256: String
    let name: String
    let version: String
    let kind: String
    let description: String
    let abiVersion: String
    let language: String
    let optionalSymbols: [String]
    let stateFormats: String?
    /// MOLT_PLUGIN_HOLDS_STATE: instances hold in-memory state callers rely on.
    let holdsState: Bool
    let configKeys: [ConfigKeySpec]
    /// The plugin's `*` entry: keys it does not declare are accepted.
    let openConfig: ConfigKeySpec?
    /// Declared operations (ABI 1.2), in the plugin's order.
    let operations: [OperationReport]

    init(entry: CatalogEntry) {
        self.init(path: entry.path, sha256: entry.sha256, swift: entry.linksSwiftRuntime, info: entry.info)
    }

    init(path: String, sha256: String, swift: Bool, info: PluginInfo) {
        self.path = path
        self.sha256 = sha256
        self.name = info.name
        self.version = info.version.description
        self.kind = info.kind.rawValue
        self.description = info.description
        self.abiVersion = "\(info.abiVersion.major).\(info.abiVersion.minor)"
        self.language = swift ? "swift" : "c"
        self.optionalSymbols = info.capabilities.symbolNames
        self.stateFormats = info.stateFormats.map { "\($0.lowerBound)...\($0.upperBound)" }
        self.holdsState = info.holdsState
        self.configKeys = info.configKeys
        self.openConfig = info.openConfig
        self.operations = info.operations.map(OperationReport.init)
    }
}

/// One declared operation as inspect shows it: the declaration and its signature.
struct OperationReport: Encodable {
    let name: String
    let signature: String
    let description: String
    let symbol: String
    let blocking: Bool
    let valuesForm: Bool
    let parameters: [OperationField]
    let results: [OperationField]

    init(_ declaration: OperationDeclaration) {
        (name, signature, description, symbol) = (declaration.name, declaration.signature, declaration.description, declaration.symbol)
        (blocking, valuesForm, parameters, results) = (declaration.blocking, declaration.valuesForm, declaration.parameters, declaration.results)
    }
}

func jsonText<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Left-aligned columns, two spaces apart.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { $0.offset == row.count - 1 ? $0.element : $0.element.padding(toLength: widths[$0.offset]) }.joined(separator: "  ")
    }.joined(separator: "\n")
}

extension String {
    func padding(toLength length: Int) -> String { self + String(repeating: " ", count: max(0, length - count)) }
}

func currentDirectory() -> String {
    guard let path = getcwd(nil, 0) else { return "." }  // malloc'd by getcwd
    defer { free(path) }
    return String(cString: path)
}

#if canImport(Glibc)
import Glibc
#endif
