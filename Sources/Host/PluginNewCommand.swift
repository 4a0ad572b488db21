import ArgumentParser
import FoundationEssentials
import PluginHost

#if canImport(Glibc)
import Glibc
#endif

extension PluginCommand {
    /// `molt plugin new NAME --kind lock|state --language c|swift [--pluginkit PATH] [DIR]`: writes a complete,
    /// buildable plugin project (the files per kind and language: Templates/PluginProjectTemplate.swift).
    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new plugin project (source, Makefile, README, test) into DIR.",
            discussion: """
                Every project has state transfer, in-place config and MOLT_PLUGIN_HOLDS_STATE wired already, and \
                `make test` checks it. C: `make` builds NAME-1.0.0.so (`make VERSION=1.1.0` another version). \
                Swift: a SwiftPM package on PluginKit with one thin target per version; `make` runs swift build \
                and stages NAME-1.0.0.so and NAME-1.1.0.so. PluginKit is taken by path: --pluginkit, else the \
                environment's MOLT_PLUGINKIT_PATH, written into Package.swift (MOLT_PLUGINKIT_PATH at build time \
                overrides it). Exit status 64 for a bad NAME, kind, language or PluginKit path; 1 when DIR exists \
                and is not empty (nothing is overwritten).
                """)

        @Argument(help: "The plugin's name, as the loader requires it: [a-z0-9][a-z0-9._-]{0,63}.") var name: String
        @Option(help: "Component kind: lock or state.") var kind: String
        @Option(help: "Language: c or swift.") var language: String = "c"
        @Option(help: ArgumentHelp(
            "Swift only: molt's PluginKit directory (default: $MOLT_PLUGINKIT_PATH).", valueName: "path"))
        var pluginkit: String?
        @Argument(help: "Directory to create (default: ./NAME); must not exist or be empty.") var directory: String?

        func validate() throws {
            guard isValidPluginName(name) else {
                throw ValidationError("plugin name '\(name)' must match [a-z0-9][a-z0-9._-]{0,63} (the loader's rule)")
            }
            guard PluginProjectTemplate.Kind(rawValue: kind) != nil else {
                throw ValidationError("--kind must be lock or state, not '\(kind)'")
            }
            guard let language = PluginProjectTemplate.Language(rawValue: language) else {
                throw ValidationError("--language must be c or swift, not '\(language)'")
            }
            if language == .c && pluginkit != nil {
                throw ValidationError("--pluginkit is for --language swift (a C project carries its own copy of molt_plugin.h)")
            }
            if language == .swift { _ = try pluginKitPath() }
        }

        /// The absolute, resolved path of PluginKit for a Swift project: --pluginkit, else MOLT_PLUGINKIT_PATH.
        /// Refused unless it is a directory named PluginKit holding a Package.swift (SwiftPM names a path
        /// dependency after its directory, and Package.swift refers to it as "PluginKit").
        func pluginKitPath() throws -> String {
            guard let given = pluginkit ?? ProcessInfo.processInfo.environment["MOLT_PLUGINKIT_PATH"], !given.isEmpty else {
                throw ValidationError("--language swift needs molt's PluginKit directory: pass --pluginkit PATH (e.g. a checkout's molt/PluginKit) or set MOLT_PLUGINKIT_PATH")
            }
            guard let resolved = realpath(given, nil) else {
                throw ValidationError("PluginKit path '\(given)' does not exist")
            }
            defer { free(resolved) }
            let path = String(cString: resolved)
            guard path.split(separator: "/").last == "PluginKit", FileManager.default.fileExists(atPath: path + "/Package.swift") else {
                throw ValidationError("PluginKit path '\(given)' must be a directory named PluginKit holding a Package.swift (molt's PluginKit/)")
            }
            guard !path.contains(where: { $0 == "\"" || $0 == "\\" || $0.isNewline }) else {
                throw ValidationError("PluginKit path '\(path)' holds a quote, a backslash or a newline: it cannot be written into Package.swift")
            }
            return path
        }

        func run() throws {
            let target = directory ?? name
            let language = PluginProjectTemplate.Language(rawValue: language)!
            let project = PluginProjectTemplate(
                kind: PluginProjectTemplate.Kind(rawValue: kind)!, language: language, name: name,
                pluginKit: language == .swift ? try pluginKitPath() : nil)

            let manager = FileManager.default
            if manager.fileExists(atPath: target) {
                guard let entries = try? manager.contentsOfDirectory(atPath: target) else {
                    throw CommandFailure(description: "\(target) exists and is not a directory: choose another DIR")
                }
                guard entries.isEmpty else {
                    throw CommandFailure(description: "\(target) is not empty (\(entries.count) entries): refusing to write into it; choose a new or empty DIR")
                }
            }
            do {
                for file in project.files {
                    let path = "\(target)/\(file.path)"
                    let parent = String(path[..<path.lastIndex(of: "/")!])
                    try manager.createDirectory(atPath: parent, withIntermediateDirectories: true)
                    guard manager.createFile(atPath: path, contents: Data(file.text.utf8), attributes: [.posixPermissions: 0o644]) else {
                        throw CommandFailure(description: "cannot write \(path)")
                    }
                }
            } catch let failure as CommandFailure {
                throw failure
            } catch {
                throw CommandFailure(description: "cannot write the project into \(target): \(error)")
            }
            print("""
                Created \(kind) plugin '\(name)' (\(language.rawValue)) in \(target):
                  \(project.files.map(\.path).joined(separator: "\n  "))
                Next:
                  \(project.next.map { $0.replacing("{DIR}", with: target) }.joined(separator: "\n  "))
                """)
        }
    }
}
