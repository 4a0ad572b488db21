import ArgumentParser
import Config
import Engine
import FoundationEssentials
import PluginHost

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check configuration files (bootstrap and component files) or migrate a bootstrap config file.",
        subcommands: [Check.self, Migrate.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check configuration files as molt would read them, components against the plugins that would run them.",
            discussion: """
                Each FILE is detected by its content: a bootstrap config (JSON or YAML; the component files it names are \
                checked too), or a component file: molt's components format, Dapr Component YAML (other Dapr resources, \
                such as Configuration, are reported as skipped; Subscription documents are read and listed with their routes, \
                each routing rule's CEL match compiled), or a Layotto config.json. Every component is checked \
                against the plugins directory as an apply would plan it: the plugin and version exist (or why the loader \
                refused them), required keys are present, every key is one the plugin declares (or keyPrefix, read by \
                molt for state stores; a plugin that declares no keys or `*`, or built for ABI 1.0, takes any key), \
                state can be handed over. Each problem is printed with file, line and field.
                For a bootstrap config, the effective configuration is printed in the current format (tokens redacted).
                Exit 0 when every file passes (warnings allowed), 1 on any error.
                """)

        @Argument(help: "Config files (JSON or YAML): bootstrap configs or component files.") var files: [String]
        @OptionGroup var plugins: PluginDirectoryOptions
        @Flag(help: "Unknown keys of the file formats are errors.") var strict = false

        func run() async throws {
            Molt.bootstrapLogging(level: .warning)
            var failed = false
            for file in files {
                do {
                    guard let bytes = readWholeFile(file) else {
                        printError("\(file): cannot read the file")
                        failed = true
                        continue
                    }
                    if ComponentSources.isComponentFile(String(decoding: bytes, as: UTF8.self), file: file) {
                        let loaded = try ComponentSources.load(file: file)
                        for warning in loaded.warnings { printError("\(warning)") }
                        for subscription in loaded.subscriptions { printError(Self.describe(subscription, file: file)) }
                        let problems = check(loaded.components, file: file)
                        failed = failed || problems > 0
                        let subscriptions = loaded.subscriptions.isEmpty ? "" : ", \(loaded.subscriptions.count) subscriptions"
                        printError("\(file): \(problems == 0 ? "OK" : "\(problems) problems") (component file, \(loaded.components.count) components\(subscriptions))")
                    } else {
                        let loaded = try await BootstrapConfig.load(arguments: ["--config", file] + (strict ? ["--strict"] : []),
                                                                    environment: ProcessInfo.processInfo.environment)
                        let components = try ComponentSources.load(paths: loaded.config.components, strict: loaded.config.strict)
                        for warning in loaded.warnings + components.warnings { printError("\(warning)") }
                        for subscription in components.subscriptions { printError(Self.describe(subscription, file: file)) }
                        let problems = check(components.components, file: file)
                        failed = failed || problems > 0
                        print(loaded.config.rendered(as: .yaml), terminator: "")
                        printError("\(file): \(problems == 0 ? "OK" : "\(problems) problems") (bootstrap config, "
                            + "\(components.components.count) components, \(loaded.warnings.count + components.warnings.count) warnings)")
                    }
                } catch {
                    printError("\(error)")
                    failed = true
                }
            }
            if failed { throw ExitCode.failure }
        }

        /// One line per declarative subscription: where, what, and its routes in the order they are tried.
        static func describe(_ subscription: SubscriptionSpec, file: String) -> String {
            var routes = subscription.rules.map { "\($0.match.map { "if \($0.text)" } ?? "always") -> \($0.path)" }
            routes.append(subscription.route.isEmpty ? "no default (an event no rule matches is dropped)" : "default -> \(subscription.route)")
            let scopes = subscription.scopes.isEmpty ? "" : ", scopes \(subscription.scopes.joined(separator: ","))"
            return "\(subscription.origin.map { "\($0)" } ?? file): subscription '\(subscription.name)': pubsub '\(subscription.pubsub)', "
                + "topic '\(subscription.topic)'\(scopes), routes: \(routes.joined(separator: "; "))"
        }

        /// The plugins directory's catalog and an engine that runs nothing, to plan components against it;
        /// opened on first use (a bootstrap config without components needs no plugins directory).
        private var planner: Result<(PluginCatalog, Engine), Error> {
            Result {
                let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: plugins.pluginsDirectory))
                catalog.rescan()
                return (catalog, Engine(catalog: catalog))
            }
        }

        /// Prints each component's problems and warnings with where it was defined; returns the problems.
        private func check(_ components: [ComponentSpec], file: String) -> Int {
            guard !components.isEmpty else { return 0 }
            let catalog: PluginCatalog, engine: Engine
            switch planner {
            case .success(let opened): (catalog, engine) = opened
            case .failure(let error):
                printError("\(file): the components cannot be checked: plugins directory \(plugins.pluginsDirectory): \(error)")
                return 1
            }
            var problems = 0
            for spec in components {
                let origin = spec.origin.map { "\($0)" } ?? file
                let definition: ComponentDefinition
                do {
                    definition = try spec.definition(catalog: catalog)
                } catch {
                    printError("\(error)")
                    problems += 1
                    continue
                }
                let result = engine.check(definition)
                for warning in result.warnings { printError("\(origin): \(spec.key): warning: \(warning)") }
                for (key, message) in result.findings {
                    if let key, let (keyOrigin, path) = spec.metadataOrigins[key] {
                        printError("\(keyOrigin): \(spec.key): \(path): \(message)")
                    } else {
                        printError("\(origin): \(spec.key): \(message)")
                    }
                }
                problems += result.findings.count
            }
            return problems
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
