import Config
import Foundation
import Testing

/// What each released version's fixtures (Fixtures/bootstrap/v<N>*.{yaml,json}) must load to.
/// KEEP FOREVER: fixtures of released versions are never edited or deleted, and this table only grows.
private let expectedByVersion: [Int: BootstrapConfig] = {
    var v1 = BootstrapConfig()
    v1.appID = "orders"
    v1.grpcAddress = "0.0.0.0:50001"
    v1.httpAddress = "0.0.0.0:3500"
    v1.controlAddress = "127.0.0.1:34904"
    v1.adminAddress = "0.0.0.0:34999"
    v1.apiToken = "app-token"
    v1.controlToken = "control-token"
    v1.pluginsDirectory = "/opt/molt/plugins.d"
    v1.stateDirectory = "/var/lib/molt"
    v1.components = ["/etc/molt/components", "/etc/molt/extra.yaml"]
    v1.readinessTimeoutMs = 5000
    v1.drainTimeoutMs = 20000
    v1.logLevel = .debug
    v1.strict = true
    v1.agents = .init(fileDirectory: "/etc/molt/watched", etcd: .init(endpoints: ["etcd-0:2379", "etcd-1:2379"], prefix: "/orders/"))
    return [1: v1]
}()

private func load(_ arguments: [String] = [], environment: [String: String] = [:]) async throws -> LoadedBootstrapConfig {
    try await BootstrapConfig.load(arguments: arguments, environment: environment)
}

@Suite struct BootstrapConfigTests {
    /// Every fixture of every released config version still loads, to the same inner model.
    @Test func everyReleasedVersionFixtureStillLoads() async throws {
        let directory = TestFiles.fixture("bootstrap")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix(".") }.sorted()
        #expect(names.count >= 3)
        for name in names {
            let version = try #require(Int(name.dropFirst().prefix { $0.isNumber }), "fixture \(name) is not named v<version>…")
            let expected = try #require(expectedByVersion[version], "no expectation for version \(version)")
            let loaded = try await load(["--config", "\(directory)/\(name)"])
            #expect(loaded.config == expected, "\(name)")
            #expect(loaded.warnings.isEmpty, "\(name): \(loaded.warnings)")
        }
    }

    @Test func defaultsAreMoltServesDefaults() async throws {
        let loaded = try await load()
        #expect(loaded.config == BootstrapConfig())
        #expect(loaded.config.grpcAddress == "127.0.0.1:50001" && loaded.config.httpAddress == "127.0.0.1:3500")
        #expect(loaded.config.controlAddress == "127.0.0.1:34904" && loaded.config.adminAddress == "127.0.0.1:34999")
        #expect(loaded.config.pluginsDirectory == "plugins.d" && loaded.config.readinessTimeoutMs == 10_000)
        #expect(loaded.config.apiToken == nil && loaded.config.agents.etcd == nil)
        #expect(loaded.sources["grpcAddress"] == "defaults")
    }

    @Test func argumentsBeatEnvironmentBeatsFile() async throws {
        let file = try TestFiles.scratch("molt.yaml", "grpcAddress: 10.0.0.1:1001\nlogLevel: error\n")
        let environment = ["MOLT_CONFIG": file, "MOLT_GRPC_ADDRESS": "10.0.0.2:1002"]

        let fromArguments = try await load(["--grpc-address", "10.0.0.3:1003"], environment: environment)
        #expect(fromArguments.config.grpcAddress == "10.0.0.3:1003")
        #expect(fromArguments.sources["grpcAddress"] == "command line --grpc-address")
        #expect(fromArguments.config.logLevel == .error)   // still from the file

        let fromEnvironment = try await load([], environment: environment)
        #expect(fromEnvironment.config.grpcAddress == "10.0.0.2:1002")
        #expect(fromEnvironment.sources["grpcAddress"] == "environment MOLT_GRPC_ADDRESS")

        let fromFile = try await load(["--config=\(file)"])
        #expect(fromFile.config.grpcAddress == "10.0.0.1:1001")
        #expect(fromFile.sources["grpcAddress"] == "\(file):1:14 grpcAddress")
    }

    @Test func todaysServeEnvironmentAndFlagsStillWork() async throws {
        let loaded = try await load(
            ["--app-id", "shop", "--components", "a.json", "b.yaml", "--drain-timeout-ms=1500", "--strict"],
            environment: ["APP_ID": "ignored", "DAPR_API_TOKEN": "t0k", "DAPR_GRPC_PORT": "6001", "DAPR_HTTP_PORT": "6002",
                          "MOLT_HTTP_ADDRESS": "0.0.0.0:7000", "MOLT_CONTROL_TOKEN": "c", "MOLT_LOG_LEVEL": "trace"])
        #expect(loaded.config.appID == "shop")
        #expect(loaded.config.components == ["a.json", "b.yaml"])
        #expect(loaded.config.drainTimeoutMs == 1500 && loaded.config.strict)
        #expect(loaded.config.apiToken == "t0k" && loaded.config.controlToken == "c" && loaded.config.logLevel == .trace)
        #expect(loaded.config.grpcAddress == "127.0.0.1:6001")   // DAPR_GRPC_PORT sets the port only
        #expect(loaded.config.httpAddress == "0.0.0.0:7000")     // MOLT_HTTP_ADDRESS beats DAPR_HTTP_PORT
        #expect(loaded.warnings.isEmpty)
    }

    @Test func daprPortReplacesThePortOfTheFilesAddress() async throws {
        let file = try TestFiles.scratch("molt.json", #"{"grpcAddress": "0.0.0.0:50001"}"#)
        let loaded = try await load(["--config", file], environment: ["DAPR_GRPC_PORT": "50007"])
        #expect(loaded.config.grpcAddress == "0.0.0.0:50007")
    }

    @Test func renamedKeysWorkWithADeprecationWarningInEverySource() async throws {
        let file = try TestFiles.scratch("molt.yaml", "version: 1\npluginsDir: /from/file\n")
        let fromFile = try await load(["--config", file])
        #expect(fromFile.config.pluginsDirectory == "/from/file")
        let warning = try #require(fromFile.warnings.first)
        #expect(fromFile.warnings.count == 1 && warning.isDeprecation && warning.keyPath == "pluginsDir")
        #expect(warning.origin == ConfigOrigin(file: file, line: 2, column: 13))
        #expect(warning.description.contains("DEPRECATED") && warning.message.contains("pluginsDirectory"))

        let fromEnvironment = try await load([], environment: ["MOLT_PLUGINS_DIR": "/from/env"])
        #expect(fromEnvironment.config.pluginsDirectory == "/from/env")
        #expect(fromEnvironment.warnings.map(\.keyPath) == ["MOLT_PLUGINS_DIR"] && fromEnvironment.warnings[0].message.contains("MOLT_PLUGINS_DIRECTORY"))

        let fromArguments = try await load(["--plugins-dir", "/from/args"])
        #expect(fromArguments.config.pluginsDirectory == "/from/args")
        #expect(fromArguments.warnings.map(\.keyPath) == ["--plugins-dir"] && fromArguments.warnings[0].isDeprecation)

        let both = try TestFiles.scratch("both.yaml", "pluginsDirectory: /new\npluginsDir: /old\n")
        #expect(try await load(["--config", both]).config.pluginsDirectory == "/new")
    }

    @Test func unknownKeysWarnAndFailUnderStrict() async throws {
        let file = try TestFiles.scratch("molt.yaml", "grpcAddress: 0.0.0.0:1\ngrpcAdress: typo:2\nagents:\n  kafka: {}\n")
        let loaded = try await load(["--config", file], environment: ["MOLT_TYPO": "1"])
        #expect(Set(loaded.warnings.map(\.keyPath)) == ["grpcAdress", "agents.kafka", "MOLT_TYPO"])
        #expect(loaded.warnings.allSatisfy { $0.kind == .unknownKey })

        let error = await #expect(throws: ConfigError.self) { try await load(["--config", file, "--strict"]) }
        #expect(error?.origin.file == file && error?.keyPath == "grpcAdress")
        #expect(error?.message.contains("strict") == true)

        let strictInFile = try TestFiles.scratch("strict.json", #"{"strict": true, "colour": "blue"}"#)
        await #expect(throws: ConfigError.self) { try await load(["--config", strictInFile]) }
        #expect(try await load(["--config", strictInFile, "--strict=false"]).warnings.count == 1)
        #expect(try await load(["--unknown-option", "x"]).warnings.map(\.keyPath) == ["--unknown-option"])
    }

    @Test func typeErrorsNameTheSourceTheKeyPathAndTheExpectedType() async throws {
        let file = try TestFiles.scratch("molt.yaml", "agents:\n  etcd:\n    endpoints: etcd-0:2379\n")
        let fileError = await #expect(throws: ConfigError.self) { try await load(["--config", file]) }
        #expect(fileError?.origin.file == file && fileError?.origin.line == 3)
        #expect(fileError?.keyPath == "agents.etcd.endpoints")
        #expect(fileError?.expected == "a list of strings" && fileError?.found == "a string")

        let json = try TestFiles.scratch("molt.json", #"{"readinessTimeoutMs": "5000"}"#)
        let jsonError = await #expect(throws: ConfigError.self) { try await load(["--config", json]) }
        #expect(jsonError?.description == "\(json):1:24: readinessTimeoutMs: expected an integer, found a string")

        let environmentError = await #expect(throws: ConfigError.self) {
            try await load([], environment: ["MOLT_READINESS_TIMEOUT_MS": "soon"])
        }
        #expect(environmentError?.origin == .environment && environmentError?.keyPath == "MOLT_READINESS_TIMEOUT_MS")
        #expect(environmentError?.expected == "an integer" && environmentError?.found == "'soon'")

        let argumentError = await #expect(throws: ConfigError.self) { try await load(["--drain-timeout-ms", "-"]) }
        #expect(argumentError?.origin == .arguments && argumentError?.keyPath == "--drain-timeout-ms")

        let levelError = await #expect(throws: ConfigError.self) { try await load(["--log-level", "loud"]) }
        #expect(levelError?.keyPath == "--log-level" && levelError?.found == "'loud'")
        let addressError = await #expect(throws: ConfigError.self) { try await load([], environment: ["MOLT_ADMIN_ADDRESS": "nowhere"]) }
        #expect(addressError?.keyPath == "MOLT_ADMIN_ADDRESS")
    }

    @Test func eachSourceIsReadByTheVersionItDeclares() async throws {
        let file = try TestFiles.scratch("molt.yaml", "version: 9\n")
        let fileError = await #expect(throws: ConfigError.self) { try await load(["--config", file]) }
        #expect(fileError?.origin.file == file && fileError?.keyPath == "version")
        let environmentError = await #expect(throws: ConfigError.self) { try await load([], environment: ["MOLT_CONFIG_VERSION": "2"]) }
        #expect(environmentError?.keyPath == "MOLT_CONFIG_VERSION")
        let argumentError = await #expect(throws: ConfigError.self) { try await load(["--config-version", "x"]) }
        #expect(argumentError?.keyPath == "--config-version")
        let explicit = try await load(["--config-version", "1", "--app-id", "a"], environment: ["MOLT_CONFIG_VERSION": "1"])
        #expect(explicit.config.appID == "a" && explicit.warnings.isEmpty)
    }

    @Test(arguments: [ConfigSyntax.yaml, .json])
    func renderedConfigLoadsBackToTheSameConfig(syntax: ConfigSyntax) async throws {
        let original = try #require(expectedByVersion[1])
        let text = original.rendered(as: syntax, redactingSecrets: false)
        #expect(text.hasPrefix(syntax == .yaml ? "version: 1\n" : "{\n  \"version\": 1,"))
        let file = try TestFiles.scratch("rendered.\(syntax.rawValue)", text)
        let loaded = try await load(["--config", file])
        #expect(loaded.config == original && loaded.warnings.isEmpty)
        #expect(original.rendered(as: syntax).contains("<redacted>") && !original.rendered(as: syntax).contains("app-token"))
    }

    @Test func migrateRewritesInTheCurrentVersion() async throws {
        let file = try TestFiles.scratch("old.yaml", "pluginsDir: /p\nlogLevel: debug\nnonsense: 1\n")
        let (text, warnings) = try BootstrapConfig.migrate(file: file)
        #expect(text == "version: 1\npluginsDirectory: \"/p\"\nlogLevel: \"debug\"\n")
        #expect(warnings.map(\.kind) == [.deprecated, .unknownKey])
        let migrated = try TestFiles.scratch("new.yaml", text)
        #expect(try await load(["--config", migrated]).config == load(["--config", file]).config)
        #expect(try BootstrapConfig.migrate(file: file, to: .json).text == "{\n  \"version\": 1,\n  \"pluginsDirectory\": \"/p\",\n  \"logLevel\": \"debug\"\n}\n")
    }
}
