import ArgumentParser
import Config
import FoundationEssentials

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check or migrate a bootstrap config file.",
        subcommands: [Check.self, Migrate.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a bootstrap config file and the component files it names, as `molt serve` would read them.",
            discussion: """
                Prints every warning (DEPRECATED keys, unknown keys, legacy sources) and the effective configuration \\
                in the current format: defaults < the file < MOLT_* environment. Tokens are shown as <redacted>. \\
                Exit 0 when it loads (warnings allowed), 1 with the error (file, key path, expected type) when not.
                """)

        @Argument(help: "The config file (JSON or YAML).") var file: String
        @Flag(help: "Unknown keys are errors.") var strict = false

        func run() async throws {
            do {
                let loaded = try await BootstrapConfig.load(arguments: ["--config", file] + (strict ? ["--strict"] : []),
                                                            environment: ProcessInfo.processInfo.environment)
                var warnings = loaded.warnings
                let components = try ComponentSources.load(paths: loaded.config.components, strict: loaded.config.strict)
                warnings += components.warnings
                for warning in warnings { printError("\(warning)") }
                print(loaded.config.rendered(as: .yaml), terminator: "")
                printError("\(file): OK (\(components.components.count) components, \(warnings.count) warnings)")
            } catch {
                printError("\(error)")
                throw ExitCode.failure
            }
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite a bootstrap config file in the current format version (printed; the file is not changed).",
            discussion: "Renamed keys get their current names; the syntax (JSON or YAML) is kept. Warnings go to stderr.")

        @Argument(help: "The config file (JSON or YAML).") var file: String

        func run() async throws {
            do {
                let (text, warnings) = try BootstrapConfig.migrate(file: file)
                for warning in warnings { printError("\(warning)") }
                print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
            } catch {
                printError("\(error)")
                throw ExitCode.failure
            }
        }
    }
}
