import Config
import Engine
import PluginHost
import Testing

/// The components every fixture in Fixtures/components describes, whatever its format.
private let expectedComponents = [
    ComponentSpec(kind: .state, name: "statestore", plugin: "redis-state",
                  metadata: ["redisHost": "localhost:6379", "redisPassword": "s3cret", "ttlInSeconds": "3600"]),
    ComponentSpec(kind: .lock, name: "lockstore", plugin: "memorylock", metadata: ["maxLocks": "1000"]),
]

private func sortedByKey(_ components: [ComponentSpec]) -> [ComponentSpec] { components.sorted { $0.key < $1.key } }

@Suite struct ComponentSourcesTests {
    @Test(arguments: ["molt.json", "molt.yaml", "dapr", "dapr-multi.yaml", "layotto-config.json"])
    func everyFormatLoadsTheSameComponents(fixture: String) throws {
        let loaded = try ComponentSources.load(paths: [TestFiles.fixture("components/\(fixture)")])
        #expect(sortedByKey(loaded.components) == sortedByKey(expectedComponents))
        #expect(loaded.components.allSatisfy { $0.origin?.file.hasSuffix(".json") == true || $0.origin?.file.hasSuffix(".yaml") == true })
    }

    @Test func moltFormatWarnsOfUnknownKeysAndFailsUnderStrict() throws {
        let path = TestFiles.fixture("components/molt.yaml")
        let loaded = try ComponentSources.load(paths: [path])
        let warning = try #require(loaded.warnings.first)
        #expect(loaded.warnings.count == 1)
        #expect(warning.kind == .unknownKey)
        #expect(warning.keyPath == "components[1].description")
        #expect(warning.origin.file == path && warning.origin.line == 14)
        let error = #expect(throws: ConfigError.self) { try ComponentSources.load(paths: [path], strict: true) }
        #expect(error?.keyPath == "components[1].description")
    }

    @Test func daprMultiDocumentWarnsOfWhatItSkipsOrIgnores() throws {
        let loaded = try ComponentSources.load(paths: [TestFiles.fixture("components/dapr-multi.yaml")])
        let byPath = Dictionary(grouping: loaded.warnings, by: \.keyPath)
        #expect(byPath["kind"]?.first?.message.contains("Configuration") == true)     // Configuration document skipped
        #expect(byPath["spec.initTimeout"]?.first?.kind == .ignored)
        #expect(byPath["scopes"]?.first?.kind == .ignored)
        #expect(byPath["spec.type"]?.first?.message.contains("crypto.dapr.localstorage") == true) // other building block skipped
        #expect(byPath["spec.colour"]?.first?.kind == .unknownKey)
        #expect(loaded.warnings.count == 5)
    }

    @Test func layottoComponentsAreDeprecatedAndOtherSectionsIgnored() throws {
        let loaded = try ComponentSources.load(paths: [TestFiles.fixture("components/layotto-config.json")])
        let deprecations = loaded.warnings.filter(\.isDeprecation)
        #expect(deprecations.count == 2)
        #expect(deprecations.allSatisfy { $0.description.contains("DEPRECATED") && $0.message.contains("legacy") })
        let ignoredSections = Set(loaded.warnings.filter { $0.kind == .ignored }.map { $0.keyPath.split(separator: ".").last.map(String.init) ?? "" })
        #expect(ignoredSections == ["hellos", "pub_subs", "app"])
    }

    @Test func oldLayottoSectionsWithoutTypeUseTheKeyAsNameAndType() throws {
        let text = #"{"servers": [{"listeners": [{"filter_chains": [{"filters": [{"config": {"grpc_config": {"state": {"redis": {"metadata": {"redisHost": "r:6379"}}}}}}]}]}]}]}"#
        let loaded = try ComponentSources.parse(text, file: "config.json")
        #expect(loaded.components == [ComponentSpec(kind: .state, name: "redis", plugin: "redis-state", metadata: ["redisHost": "r:6379"])])
        #expect(loaded.warnings.contains { $0.isDeprecation && $0.message.contains("no 'type'") })
    }

    @Test func daprVersionIsAMajorRequirementResolvedByTheCatalog() throws {
        let text = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata: {name: lockstore}
            spec: {type: lock.in-memory, version: v1, metadata: [{name: maxLocks, value: 10}, {name: enabled, value: true}]}
            """
        let component = try #require(try ComponentSources.parse(text, file: "lock.yaml").components.first)
        #expect(component.version == .major(1))
        #expect(component.metadata == ["maxLocks": "10", "enabled": "true"])
        #expect(throws: ConfigError.self) { try component.definition() }
        let definition = try component.definition { plugin, major in
            plugin == "memorylock" && major == 1 ? SemanticVersion("1.4.2") : nil
        }
        #expect(definition == ComponentDefinition(kind: .lock, name: "lockstore", plugin: "memorylock", version: SemanticVersion("1.4.2"),
                                                  config: ["maxLocks": "10", "enabled": "true"]))
    }

    @Test func moltFormatWithoutVersionIsVersion1AndGivesEngineDefinitions() throws {
        let loaded = try ComponentSources.load(paths: [TestFiles.fixture("components/molt.json")])
        let definitions = try loaded.components.map { try $0.definition() }
        #expect(definitions.first == ComponentDefinition(kind: .state, name: "statestore", plugin: "redis-state",
                                                         config: ["redisHost": "localhost:6379", "redisPassword": "s3cret", "ttlInSeconds": "3600"]))
        let exact = try ComponentSources.parse(#"{"components": [{"kind": "lock", "name": "l", "plugin": "memorylock", "version": "1.0.0"}]}"#, file: "c.json")
        #expect(exact.components.first?.version == .exact(SemanticVersion("1.0.0")!))
    }

    @Test func typeErrorsNameFileKeyPathAndExpectedType() throws {
        let listMetadata = try TestFiles.scratch("bad.json", #"{"components": [{"kind": "lock", "name": "l", "plugin": "memorylock", "metadata": ["maxLocks"]}]}"#)
        let metadataError = #expect(throws: ConfigError.self) { try ComponentSources.load(paths: [listMetadata]) }
        #expect(metadataError?.origin.file == listMetadata)
        #expect(metadataError?.keyPath == "components[0].metadata")
        #expect(metadataError?.expected == "a mapping" && metadataError?.found == "a list")
        #expect(metadataError?.description.contains("\(listMetadata):1:") == true)

        let missingName = try TestFiles.scratch("statestore.yaml", """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata: {name: statestore}
            spec:
              type: state.redis
              metadata:
                - name: redisHost
                  value: localhost:6379
                - value: s3cret
            """)
        let nameError = #expect(throws: ConfigError.self) { try ComponentSources.load(paths: [missingName]) }
        #expect(nameError?.origin.file == missingName)
        #expect(nameError?.keyPath == "spec.metadata[1].name")
        #expect(nameError?.expected == "a string" && nameError?.found == "nothing")
    }

    @Test func secretKeyRefWithoutASecretStoreIsRefused() throws {
        let text = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata: {name: statestore}
            spec:
              type: state.redis
              metadata:
                - name: redisPassword
                  secretKeyRef: {name: redis, key: password}
            """
        let error = #expect(throws: ConfigError.self) { try ComponentSources.parse(text, file: "s.yaml") }
        #expect(error?.keyPath == "spec.metadata[0].secretKeyRef")
        #expect(error?.message.contains("needs auth.secretStore") == true)
    }

    @Test func secretKeyRefBecomesAReferenceToTheAuthSecretStore() throws {
        let text = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata: {name: statestore}
            spec:
              type: state.redis
              metadata:
                - name: redisPassword
                  secretKeyRef: {name: "redis,prod", key: password}
                - name: redisUsername
                  secretKeyRef: {name: user}
            auth: {secretStore: vault}
            """
        let component = try #require(ComponentSources.parse(text, file: "s.yaml").components.first)
        #expect(component.metadata["redisPassword"] == "secretKeyRef(store=vault,name=redis%2Cprod,key=password)")
        #expect(component.metadata["redisUsername"] == "secretKeyRef(store=vault,name=user,key=user)")
        let reference = try SecretReference.parse(component.metadata["redisPassword"]!)
        #expect(reference == SecretReference(store: "vault", name: "redis,prod", key: "password"))
    }

    @Test func moltFormatSecretKeyRefAndLookalikeValues() throws {
        let text = """
            components:
              - kind: state
                name: statestore
                plugin: redis-state
                secretStore: vault
                metadata:
                  redisPassword: {secretKeyRef: {name: redis, key: password}}
                  redisHost: {secretKeyRef: {store: other, name: host}}
            """
        let component = try #require(ComponentSources.parse(text, file: "c.yaml").components.first)
        #expect(component.metadata["redisPassword"] == "secretKeyRef(store=vault,name=redis,key=password)")
        #expect(component.metadata["redisHost"] == "secretKeyRef(store=other,name=host,key=host)")
        let lookalike = """
            components:
              - {kind: state, name: s, plugin: redis-state, metadata: {redisPassword: "secretKeyRef(store=vault)"}}
            """
        let error = #expect(throws: ConfigError.self) { try ComponentSources.parse(lookalike, file: "c.yaml") }
        #expect(error?.message.contains("'name' is missing") == true)
    }

    @Test func aComponentDefinedTwiceNamesBothFiles() throws {
        let first = TestFiles.fixture("components/molt.json"), second = TestFiles.fixture("components/dapr/lockstore.yaml")
        let error = #expect(throws: ConfigError.self) { try ComponentSources.load(paths: [first, second]) }
        #expect(error?.message.contains(first) == true && error?.message.contains(second) == true)
        #expect(error?.message.contains("lock/lockstore") == true)
    }

    @Test func daprTypesMapThroughOneTable() {
        #expect(ComponentTypeTable.plugin(forDaprType: "state.redis")! == (.state, "redis-state"))
        #expect(ComponentTypeTable.plugin(forDaprType: "lock.in-memory")! == (.lock, "memorylock"))
        #expect(ComponentTypeTable.plugin(forDaprType: "state.mongodb")! == (.state, "mongodb"))
        #expect(ComponentTypeTable.plugin(forDaprType: "crypto.dapr.localstorage") == nil)
        #expect(ComponentTypeTable.plugin(forDaprType: "pubsub.redis")! == (.pubsub, "redis-streams"))
        // Dapr's output bindings (`bindings.*`) are components of kind binding; "binding.x" is no Dapr type.
        #expect(ComponentTypeTable.plugin(forDaprType: "bindings.ratelimit")! == (.binding, "ratelimit"))
        #expect(ComponentTypeTable.plugin(forDaprType: "binding.ratelimit") == nil)
    }

    @Test func aDaprOutputBindingIsABindingComponent() throws {
        let loaded = try ComponentSources.parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata: { name: limiter }
            spec:
              type: bindings.ratelimit
              version: v1
              metadata:
                - { name: rate, value: "10" }
            """, file: "limiter.yaml")
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        let component = try #require(loaded.components.first)
        #expect(component.kind == .binding && component.name == "limiter" && component.plugin == "ratelimit" && component.metadata == ["rate": "10"])
    }
}

@Test func malformedYAMLIsAnErrorNotAnEmptyFile() throws {
    // An empty file is a warning; a file that does not parse must be an error, or a watcher would
    // read a half-written or broken file as "no components" and remove them.
    #expect(throws: ConfigError.self) {
        try ComponentSources.parse("apiVersion: dapr.io/v1alpha1\nkind: Component\nspec: [unclosed\n", file: "broken.yaml")
    }
}
