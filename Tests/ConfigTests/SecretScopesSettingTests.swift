import Config
import Testing

/// Setting `secrets.scopes`: Dapr's `spec.secrets.scopes` shape in a file, JSON text elsewhere, every
/// mistake an error naming the field.
@Suite struct SecretScopesSettingTests {
    private func load(_ arguments: [String] = [], environment: [String: String] = [:]) async throws -> LoadedBootstrapConfig {
        try await BootstrapConfig.load(arguments: arguments, environment: environment)
    }

    @Test func aFileGivesScopesAsDaprsConfigurationDoes() async throws {
        let file = try TestFiles.scratch("molt.yaml", """
            appID: orders
            secrets:
              scopes:
                - storeName: vault
                  defaultAccess: Deny
                  allowedSecrets: [db-password]
                - storeName: files
                  deniedSecrets: [root-token]
            """)
        let loaded = try await load(["--config", file])
        #expect(loaded.config.secretScopes == [
            .init(storeName: "vault", defaultAccess: .deny, allowedSecrets: ["db-password"]),
            .init(storeName: "files", defaultAccess: .allow, deniedSecrets: ["root-token"]),
        ])
        #expect(loaded.config.appID == "orders" && loaded.warnings.isEmpty)
        #expect(loaded.sources["secrets.scopes"]?.hasPrefix("\(file):4:") == true)
    }

    @Test func environmentAndArgumentsGiveJSON() async throws {
        let json = #"[{"storeName": "vault", "defaultAccess": "deny"}]"#
        let fromEnvironment = try await load([], environment: ["MOLT_SECRETS_SCOPES": json])
        #expect(fromEnvironment.config.secretScopes == [.init(storeName: "vault", defaultAccess: .deny)])
        let fromArguments = try await load(["--secrets-scopes", #"[{"storeName":"files"}]"#], environment: ["MOLT_SECRETS_SCOPES": json])
        #expect(fromArguments.config.secretScopes == [.init(storeName: "files")])
        #expect(try await load().config.secretScopes.isEmpty)
    }

    @Test func mistakesAreErrorsNamingTheField() async throws {
        for (text, keyPath) in [
            (#"[{"storeName": "vault", "defaultAccess": "maybe"}]"#, "MOLT_SECRETS_SCOPES[0].defaultAccess"),
            (#"[{"storeName": "vault", "allowedSecret": ["a"]}]"#, "MOLT_SECRETS_SCOPES[0].allowedSecret"),
            (#"[{"defaultAccess": "deny"}]"#, "MOLT_SECRETS_SCOPES[0].storeName"),
            (#"[{"storeName": "a"}, {"storeName": "a"}]"#, "MOLT_SECRETS_SCOPES[1].storeName"),
            (#"[{"storeName": "a", "deniedSecrets": "b"}]"#, "MOLT_SECRETS_SCOPES[0].deniedSecrets"),
            (#"{"storeName": "a"}"#, "MOLT_SECRETS_SCOPES"),
        ] {
            let error = await #expect(throws: ConfigError.self, "\(text)") {
                try await load([], environment: ["MOLT_SECRETS_SCOPES": text])
            }
            #expect(error?.keyPath == keyPath, "\(text): \(String(describing: error))")
        }
        let file = try TestFiles.scratch("bad.yaml", "secrets:\n  scopes:\n    - storeName: vault\n      defaultAccess: sometimes\n")
        let fileError = await #expect(throws: ConfigError.self) { try await load(["--config", file]) }
        #expect(fileError?.keyPath == "secrets.scopes[0].defaultAccess" && fileError?.origin.line == 4)
    }

    @Test(arguments: [ConfigSyntax.yaml, .json])
    func renderedScopesLoadBack(syntax: ConfigSyntax) async throws {
        var config = BootstrapConfig()
        config.secretScopes = [.init(storeName: "vault", defaultAccess: .deny, allowedSecrets: ["a", "b"], deniedSecrets: ["c"])]
        let file = try TestFiles.scratch("scopes.\(syntax.rawValue)", config.rendered(as: syntax))
        #expect(try await load(["--config", file]).config == config)
    }
}
