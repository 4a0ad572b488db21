import Config
import Testing

private func load(_ arguments: [String] = [], environment: [String: String] = [:]) async throws -> LoadedBootstrapConfig {
    try await BootstrapConfig.load(arguments: arguments, environment: environment)
}

/// The app channel's settings: `appPort` (Dapr's `--app-port` and `APP_PORT`), `appProtocol`, `appHost`.
@Suite struct AppChannelSettingsTests {
    @Test func withoutAnAppPortThereIsNoAppChannel() async throws {
        let loaded = try await load()
        #expect(loaded.config.appPort == nil && loaded.config.appProtocol == "http" && loaded.config.appHost == "127.0.0.1")
        #expect(loaded.sources["appPort"] == nil)
    }

    @Test func theAppPortComesFromEverySourceInPrecedenceOrder() async throws {
        let file = try TestFiles.scratch("molt.yaml", "appPort: 3000\nappHost: app.local\n")
        #expect(try await load(["--config", file]).config.appPort == 3000)
        #expect(try await load(["--config", file]).config.appHost == "app.local")
        // Dapr's APP_PORT is above the file, MOLT_APP_PORT above it, the command line above all.
        let dapr = try await load(["--config", file], environment: ["APP_PORT": "3001"])
        #expect(dapr.config.appPort == 3001 && dapr.sources["appPort"] == "environment APP_PORT")
        let molt = try await load(["--config", file], environment: ["APP_PORT": "3001", "MOLT_APP_PORT": "3002"])
        #expect(molt.config.appPort == 3002 && molt.sources["appPort"] == "environment MOLT_APP_PORT")
        let argument = try await load(["--config", file, "--app-port", "3003", "--app-protocol", "http"],
                                      environment: ["APP_PORT": "3001", "MOLT_APP_PORT": "3002"])
        #expect(argument.config.appPort == 3003 && argument.config.appProtocol == "http")
    }

    @Test func anAppPortOutsideOneTo65535IsRefusedByName() async throws {
        for (arguments, environment, keyPath) in [
            (["--app-port", "0"], [String: String](), "--app-port"),
            ([], ["MOLT_APP_PORT": "65536"], "MOLT_APP_PORT"),
            ([], ["APP_PORT": "-1"], "APP_PORT"),
            ([], ["APP_PORT": "http"], "APP_PORT"),
        ] {
            let error = await #expect(throws: ConfigError.self) { try await load(arguments, environment: environment) }
            #expect(error?.keyPath == keyPath, "\(arguments) \(environment)")
        }
        let error = await #expect(throws: ConfigError.self) { try await load(["--app-port", "0"]) }
        #expect(error?.expected == "a port number (1-65535)" && error?.found == "'0'")
        let fileError = await #expect(throws: ConfigError.self) {
            try await load(["--config", try TestFiles.scratch("molt.yaml", "appPort: 70000\n")])
        }
        #expect(fileError?.keyPath == "appPort" && fileError?.origin.line == 1)
    }

    @Test func anAppProtocolOtherThanHTTPOrGRPCIsRefusedNamingTheAcceptedOnes() async throws {
        #expect(try await load(["--app-protocol", "grpc"]).config.appProtocol == "grpc")
        let error = await #expect(throws: ConfigError.self) { try await load(["--app-protocol", "grpcs"]) }
        #expect(error?.keyPath == "--app-protocol" && error?.found == "'grpcs'")
        #expect(error?.expected?.hasPrefix("one of http, grpc") == true, "\(String(describing: error))")
        let environmentError = await #expect(throws: ConfigError.self) { try await load([], environment: ["MOLT_APP_PROTOCOL": "h2c"]) }
        #expect(environmentError?.keyPath == "MOLT_APP_PROTOCOL")
    }

    @Test func theAppSettingsAreRenderedAndChangesAreNamed() async throws {
        let loaded = try await load(["--app-port", "8080"])
        let yaml = loaded.config.rendered()
        #expect(yaml.contains("appPort: 8080") && yaml.contains("appProtocol: \"http\"") && yaml.contains("appHost: \"127.0.0.1\""))
        #expect(BootstrapConfig().changedSettings(in: loaded.config) == ["appPort"])
    }
}
