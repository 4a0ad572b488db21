import Config
import Engine
import Foundation
import Testing

/// Component files are held to the engine's `ComponentLimits` when read, so a refusal names the file
/// and the component's line (at start-up, `molt apply -f`, the agents).
@Suite struct ComponentFileLimitsTests {
    static func moltFile(_ components: [[String: Any]]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: ["components": components], options: [.sortedKeys]), as: UTF8.self)
    }

    static func lock(_ name: String, _ metadata: [String: String] = [:]) -> [String: Any] {
        ["kind": "lock", "name": name, "plugin": "memorylock", "metadata": metadata]
    }

    @Test func metadataValueAtTheLimitLoadsAndOneOverIsRefusedWithItsLine() throws {
        let atLimit = String(repeating: "v", count: ComponentLimits.maxMetadataValueBytes)
        let loaded = try ComponentSources.parse(try Self.moltFile([Self.lock("a", ["note": atLimit])]), file: "c.json")
        #expect(loaded.components.first?.metadata["note"]?.utf8.count == ComponentLimits.maxMetadataValueBytes)

        let yaml = """
            components:
              - kind: lock
                name: a
                plugin: memorylock
              - kind: lock
                name: b
                plugin: memorylock
                metadata:
                  note: \(atLimit)v
            """
        let error = #expect(throws: ConfigError.self) { try ComponentSources.parse(yaml, file: "c.yaml") }
        #expect(error?.description == "c.yaml:5:5: the value of metadata key 'note' of lock/b is 65537 bytes, over the limit of 65536 bytes")
    }

    @Test func daprComponentWithTooManyMetadataEntriesIsRefused() throws {
        let entries = (0...ComponentLimits.maxMetadataEntries).map { "    - {name: k\($0), value: \"1\"}" }.joined(separator: "\n")
        let yaml = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata: {name: lockstore}
            spec:
              type: lock.in-memory
              metadata:
            \(entries)
            """
        let error = #expect(throws: ConfigError.self) { try ComponentSources.parse(yaml, file: "lock.yaml") }
        #expect(error?.description == "lock.yaml:1:1: lock/lockstore has 1025 metadata entries, over the limit of 1024")
    }

    @Test func filesDefiningMoreThanTheComponentLimitAreRefused() throws {
        let limit = ComponentLimits.maxComponents
        let first = try TestFiles.scratch("first.json", try Self.moltFile((0..<limit).map { Self.lock("c\($0)") }))
        #expect(try ComponentSources.load(paths: [first]).components.count == limit)
        let second = try TestFiles.scratch("second.json", try Self.moltFile([Self.lock("one-more")]))
        let error = #expect(throws: ConfigError.self) { try ComponentSources.load(paths: [first, second]) }
        #expect(error?.description == "\(second):1:16: component lock/one-more is one too many: 1025 components are defined, "
            + "over the limit of 1024 per molt")
        let single = try Self.moltFile((0...limit).map { Self.lock("c\($0)") })
        #expect(throws: ConfigError.self) { try ComponentSources.parse(single, file: "all.json") }
    }
}
