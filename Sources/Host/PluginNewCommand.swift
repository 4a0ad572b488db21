import ArgumentParser
import FoundationEssentials
import PluginHost

#if canImport(Glibc)
import Glibc
#endif

extension PluginCommand {
    /// `molt plugin new NAME --kind lock --language c [DIR]`: writes a complete, buildable plugin project.
    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new plugin project (source, Makefile, README, test) into DIR.",
            discussion: """
                The project builds with `make` into NAME-1.0.0.so (`make VERSION=1.1.0` for another version), \
                `make test` checks it, and it has state transfer, in-place config and MOLT_PLUGIN_HOLDS_STATE \
                wired already. Supported now: --kind lock --language c. Exit status 64 for a bad NAME, kind \
                or language; 1 when DIR exists and is not empty (nothing is overwritten).
                """)

        @Argument(help: "The plugin's name, as the loader requires it: [a-z0-9][a-z0-9._-]{0,63}.") var name: String
        @Option(help: "Component kind: lock (state: not yet).") var kind: String
        @Option(help: "Language: c (swift: not yet).") var language: String = "c"
        @Argument(help: "Directory to create (default: ./NAME); must not exist or be empty.") var directory: String?

        func validate() throws {
            guard isValidPluginName(name) else {
                throw ValidationError("plugin name '\(name)' must match [a-z0-9][a-z0-9._-]{0,63} (the loader's rule)")
            }
            guard ["lock", "state"].contains(kind) else { throw ValidationError("--kind must be lock or state, not '\(kind)'") }
            guard ["c", "swift"].contains(language) else { throw ValidationError("--language must be c or swift, not '\(language)'") }
            guard kind == "lock" else {
                throw ValidationError("--kind state is not yet supported by `molt plugin new`; use --kind lock")
            }
            guard language == "c" else {
                throw ValidationError("--language swift is not yet supported by `molt plugin new`; use --language c, or start from docs/examples/swift-package")
            }
        }

        func run() throws {
            let target = directory ?? name
            let files: [(path: String, text: String)] = [
                ("\(name).c", CLockTemplate.cLockSource),
                ("Makefile", CLockTemplate.cLockMakefile),
                ("README.md", CLockTemplate.cLockReadme),
                ("test/test_plugin.c", CLockTemplate.cLockTest),
                ("include/molt_plugin.h", embeddedPluginHeader),
            ].map { ($0.0, $0.1.replacing("__PLUGIN_NAME__", with: name) + "\n") }

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
                for file in files {
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
                Created \(kind) plugin '\(name)' (\(language)) in \(target):
                  \(files.map(\.path).joined(separator: "\n  "))
                Next:
                  make -C \(target)            # \(name)-1.0.0.so
                  make -C \(target) test       # load it and check lock semantics and state transfer
                  make -C \(target) install PLUGINS_DIR=/path/to/plugins.d
                """)
        }
    }
}
