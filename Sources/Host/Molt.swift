import ArgumentParser
import Logging
import ServingCore

@main
struct Molt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "molt",
        abstract: "A sidecar that hot-reloads its components' configuration and plugin binaries without a failed call.",
        subcommands: [Serve.self, Apply.self, Remove.self, Status.self, SubscriptionsCommand.self, ConfigCommand.self, PluginCommand.self])

    /// `molt --version` prints molt's version. Not the configuration's `version`, nor a flag of this
    /// command: ArgumentParser offers either on every subcommand, where it collided with
    /// `molt apply --version`, the plugin version.
    static func main() async {
        if Array(CommandLine.arguments.dropFirst()) == ["--version"] {
            print(MoltVersion.current)
            return
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Options shared by commands that read the plugins directory.
struct PluginDirectoryOptions: ParsableArguments {
    @Option(name: [.customLong("plugins-directory"), .customLong("plugins-dir")],
            help: "Directory plugins are loaded from (env MOLT_PLUGINS_DIRECTORY; --plugins-dir and MOLT_PLUGINS_DIR are DEPRECATED).")
    var pluginsDirectory: String = Environment.value("MOLT_PLUGINS_DIRECTORY") ?? Environment.value("MOLT_PLUGINS_DIR") ?? "plugins.d"
}

enum Environment {
    static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
