import Engine
import MoltTestSupport
import PluginHost
import Testing

/// `ComponentLimits`: every limit admits a definition exactly at it and refuses one just over it,
/// before any plugin starts, naming the component, the size and the limit; what runs is untouched.
@Suite struct LimitsTests {
    /// `count` keys "k0000", "k0001", … (5 bytes each) with `value`.
    static func metadata(entries count: Int, value: String = "v") -> [String: String] {
        Dictionary(uniqueKeysWithValues: (0..<count).map { (key(index: $0), value) })
    }

    static func key(index: Int) -> String {
        let digits = String(index)
        return "k" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// 16 values of 64 KiB minus their key's 5 bytes: exactly `maxMetadataBytes`, plus `extra` bytes.
    static func metadataOfTotalSize(extra: Int) -> [String: String] {
        var metadata = Dictionary(uniqueKeysWithValues: (0..<16).map {
            (key(index: $0), String(repeating: "x", count: ComponentLimits.maxMetadataValueBytes - 5))
        })
        metadata[key(index: 0)]! += String(repeating: "x", count: extra)
        return metadata
    }

    // (what, metadata exactly at the limit, metadata one over it, the message of the one over)
    static let metadataCases: [(String, [String: String], [String: String], String)] = [
        ("entries", metadata(entries: ComponentLimits.maxMetadataEntries), metadata(entries: ComponentLimits.maxMetadataEntries + 1),
         "lock/c has 1025 metadata entries, over the limit of 1024"),
        ("key bytes", [String(repeating: "k", count: 256): "v"], [String(repeating: "k", count: 257): "v", "zz": "1"],
         "metadata key '\(String(repeating: "k", count: 32))…' of lock/c is 257 bytes, over the limit of 256 bytes"),
        ("value bytes", ["note": String(repeating: "v", count: 65536)], ["note": String(repeating: "v", count: 65537), "pad": "1"],
         "the value of metadata key 'note' of lock/c is 65537 bytes, over the limit of 65536 bytes"),
        ("total bytes", metadataOfTotalSize(extra: 0), metadataOfTotalSize(extra: 1),
         "the metadata of lock/c is 1048577 bytes (keys and values), over the limit of 1048576 bytes"),
    ]

    @Test(arguments: metadataCases.indices)
    func metadataAtTheLimitAppliesAndOneOverIsRefused(index: Int) async throws {
        let (_, atLimit, overLimit, message) = Self.metadataCases[index]
        let engine = try makeEngine(["probe-1.0.0.so"])
        let added = await engine.apply(lockDefinition("c", plugin: "probe", atLimit))
        #expect(added.action == .added, "\(added)")

        let refused = await engine.apply(lockDefinition("c", plugin: "probe", overLimit))
        #expect(refused.action == .failed && refused.failure == .invalidDefinition)
        #expect(refused.error == message)
        #expect(refused.newPlugin == nil, "no binary was resolved for a refused definition")
        let key = ComponentKey(kind: .lock, name: "c")
        #expect(engine.components.map(\.generation) == [1])
        #expect(engine.activeConfig(of: key) == atLimit)
        #expect(try await engine.tryLock(store: "c", resource: "r", owner: "o", expiryInSeconds: 5).value)

        // A new component over the limit is not added; in a batch it aborts the batch.
        let new = await engine.apply(lockDefinition("d", plugin: "probe", overLimit))
        #expect(new.action == .failed && new.error == message.replacingOccurrences(of: "lock/c", with: "lock/d"))
        let batch = await engine.applyBatch([lockDefinition("e", plugin: "probe"), lockDefinition("c", plugin: "probe", overLimit)])
        #expect(!batch.succeeded)
        #expect(batch.results.map(\.error) == ["batch aborted: lock/c failed; nothing was changed", message])
        #expect(engine.components.map(\.key.name) == ["c"])
        await engine.shutdown()
    }

    @Test func metadataProblemNamesTheSmallestOffendingKey() {
        let key = ComponentKey(kind: .state, name: "s")
        let long = String(repeating: "v", count: ComponentLimits.maxMetadataValueBytes + 1)
        #expect(ComponentLimits.metadataProblem(["b": long, "a": long, "c": long], of: key)
            == "the value of metadata key 'a' of state/s is 65537 bytes, over the limit of 65536 bytes")
        #expect(ComponentLimits.metadataProblem([:], of: key) == nil)
        // Bytes, not characters: 128 two-byte characters are 256 bytes, one more is over.
        #expect(ComponentLimits.metadataProblem([String(repeating: "é", count: 128): "v"], of: key) == nil)
        #expect(ComponentLimits.metadataProblem([String(repeating: "é", count: 129): "v"], of: key)?.contains("is 258 bytes") == true)
        // The excerpt of a long key is cut by scalars: one character of 200 combining accents is not quoted whole.
        let oneCharacter = "e" + String(repeating: "\u{301}", count: 200)
        #expect(ComponentLimits.metadataProblem([oneCharacter: "v"], of: key)
            == "metadata key 'e\(String(repeating: "\u{301}", count: 31))…' of state/s is 401 bytes, over the limit of 256 bytes")
    }

    /// "c0000", "c0001", …: name order is index order.
    static func names(_ range: Range<Int>) -> [String] { range.map { "c" + key(index: $0).dropFirst() } }

    /// The component count limit of these engines: small, so these tests do not flood the shared
    /// cooperative pool (molt's own limit, 1024, is proven end to end by the API tests).
    static let componentLimit = 16

    static func limitedEngine() throws -> Engine {
        try makeEngine(["probe-1.0.0.so"]) { $0.maxComponents = componentLimit }
    }

    @Test func theEngineKeepsTheNamedComponentLimitByDefault() {
        #expect(EngineSettings().maxComponents == ComponentLimits.maxComponents)
        #expect(ComponentLimits.maxComponents == 1024)
    }

    @Test func theComponentAfterTheLimitIsRefusedAndTheOthersKeepServing() async throws {
        let engine = try Self.limitedEngine()
        let limit = Self.componentLimit
        // One batch fills the engine to exactly the limit.
        let fill = await engine.applyBatch(Self.names(0..<limit).map { lockDefinition($0, plugin: "probe") })
        #expect(fill.succeeded && fill.results.count == limit)
        #expect(engine.components.count == limit)

        let one = await engine.apply(lockDefinition("extra", plugin: "probe"))
        #expect(one.action == .failed && one.failure == .invalidDefinition)
        #expect(one.error == "adding lock/extra would make 17 components, over the limit of 16; remove components first")
        #expect(one.newPlugin == nil, "refused before any binary was resolved")
        let batch = await engine.applyBatch([lockDefinition("c0000", plugin: "probe", ["v": "2"]),
                                             lockDefinition("extra", plugin: "probe"), lockDefinition("extra2", plugin: "probe")])
        #expect(batch.results.map(\.error) == ["batch aborted: lock/extra failed; nothing was changed",
                                               "adding 2 components (lock/extra, …) would make 18 components, over the limit of 16; remove components first",
                                               "batch aborted: lock/extra failed; nothing was changed"])
        #expect(engine.components.count == limit)
        #expect(engine.components.allSatisfy { $0.generation == 1 })
        // Changing a running component is not adding one.
        #expect(await engine.apply(lockDefinition("c0000", plugin: "probe", ["v": "2"])).action == .reloaded)
        #expect(try await engine.tryLock(store: "c0015", resource: "r", owner: "o", expiryInSeconds: 5).value)

        // Room made by a removal is usable at once.
        #expect(await engine.remove(ComponentKey(kind: .lock, name: "c0001")).action == .removed)
        #expect(await engine.apply(lockDefinition("extra", plugin: "probe")).action == .added)
        #expect(await engine.apply(lockDefinition("extra2", plugin: "probe")).action == .failed)
        await engine.shutdown()
    }

    @Test func concurrentAddsNeverExceedTheLimit() async throws {
        let engine = try Self.limitedEngine()
        let limit = Self.componentLimit
        let results = await withTaskGroup(of: ApplyResult.self) { group in
            // Not ready at the first poll: every apply suspends between its count check and its insertion.
            for name in Self.names(0..<(limit + 6)) {
                group.addTask { await engine.apply(lockDefinition(name, plugin: "probe", ["readyAfterPolls": "1"])) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0.action == .added }.count == limit)
        let refused = results.filter { $0.action == .failed }
        #expect(refused.count == 6)
        #expect(refused.allSatisfy { $0.error?.hasSuffix("would make 17 components, over the limit of 16; remove components first") == true })
        #expect(engine.components.count == limit)
        await engine.shutdown()
    }

    @Test func bootstrapOverTheLimitStartsTheFirstInNameOrder() async throws {
        let engine = try Self.limitedEngine()
        let limit = Self.componentLimit
        let results = await engine.bootstrap(Self.names(0..<(limit + 2)).reversed().map { lockDefinition($0, plugin: "probe") })
        #expect(results.count == limit + 2)
        #expect(engine.components.map(\.key.name) == Self.names(0..<limit))
        let refused = results.filter { !$0.succeeded }
        #expect(refused.map(\.key.name) == Self.names(limit..<(limit + 2)))
        #expect(refused.first?.error == "lock/c0016 not started: the bootstrap would make 18 components, over the limit of 16 "
            + "(the first 16 new ones in name order were started)")
        #expect(!engine.isReady, "a bootstrap component that did not start leaves molt not ready")
        await engine.shutdown()
    }

    /// The plugin message buffer holds a message quoting a whole metadata value at the limit.
    @Test func pluginMessageQuotingAValueAtTheLimitIsWhole() async throws {
        #expect(PluginHostLimits.messageCapacity >= ComponentLimits.maxMetadataValueBytes + 4096)
        let engine = try makeEngine(["memorylock-2.0.0.so"])
        let value = String(repeating: "1", count: ComponentLimits.maxMetadataValueBytes)
        let result = await engine.apply(lockDefinition("lockstore", plugin: "memorylock", ["maxLocks": value]))
        #expect(result.action == .failed && result.failure == .rejected)
        let error = try #require(result.error)
        #expect(error == "memorylock@2.0.0 init failed: memorylock: invalid value \"\(value)\" for config key maxLocks: "
            + "expected an integer >= 0 (0 = unlimited)")
    }
}
