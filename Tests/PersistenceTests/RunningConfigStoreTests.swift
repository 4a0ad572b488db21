import Engine
import FoundationEssentials
import MoltTestSupport
import Persistence
import PluginHost
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct RunningConfigStoreTests {
    func definition(_ name: String, _ config: [String: String] = [:]) -> ComponentDefinition {
        ComponentDefinition(kind: .lock, name: name, plugin: "probe", version: SemanticVersion("1.0.0"), config: config)
    }

    func write(_ text: String, to path: String) {
        let file = fopen(path, "w")!
        fputs(text, file)
        fclose(file)
    }

    @Test func snapshotsRoundTripAndTheNewestWins() throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        let store = try RunningConfigStore(directory: directory)
        #expect(store.load() == nil)
        try store.committed([definition("a", ["v": "1"])])
        try store.committed([definition("a", ["v": "2"]), definition("b")])
        let loaded = try #require(try RunningConfigStore(directory: directory).load())
        #expect(loaded.sequence == 2)
        #expect(loaded.components == [definition("a", ["v": "2"]), definition("b")])
        #expect(loaded.removed.isEmpty)
    }

    /// An older molt accepted any name; a snapshot it wrote reads back whole, and the names this molt
    /// refuses are set apart with the rule, to be reported rather than started or silently dropped.
    @Test func restoredComponentsWithInvalidNamesAreSetApartWithTheReason() throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        try RunningConfigStore(directory: directory).committed([definition("fine"), definition("../../escape"), definition("Upper")])
        let loaded = try #require(try RunningConfigStore(directory: directory).load())
        let (start, refused) = RunningConfigStore.startable(RunningConfigStore.restore(bootstrap: [definition("boot")], snapshot: loaded))
        #expect(start.map(\.key.name) == ["fine", "boot"])
        #expect(refused.map(\.0.key.name) == ["../../escape", "Upper"])
        #expect(refused.allSatisfy { $0.1.contains("lowercase RFC 1123 labels") })
    }

    @Test func aCorruptOrPartialNewestSnapshotFallsBackToTheLastGoodOne() throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        let store = try RunningConfigStore(directory: directory)
        try store.committed([definition("a", ["v": "1"])])
        try store.committed([definition("a", ["v": "2"])])
        let newest = "\(directory)/running-00000000000000000002.json"
        // A torn write: the first half of the file.
        let whole = String(decoding: readWholeFile(newest)!, as: UTF8.self)
        write(String(whole.prefix(whole.count / 2)), to: newest)
        #expect(try RunningConfigStore(directory: directory).load()?.components == [definition("a", ["v": "1"])])
        // A flipped value: parses, but the checksum does not match.
        write(whole.replacingOccurrences(of: "\"2\"", with: "\"3\""), to: newest)
        #expect(try RunningConfigStore(directory: directory).load()?.sequence == 1)
        // A format from a newer molt is skipped too.
        write(whole.replacingOccurrences(of: "\"format\" : 1", with: "\"format\" : 99"), to: newest)
        #expect(try RunningConfigStore(directory: directory).load()?.sequence == 1)
    }

    @Test func onlyTheThreeNewestSnapshotsAreKept() throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        let store = try RunningConfigStore(directory: directory)
        for round in 1...6 { try store.committed([definition("a", ["round": "\(round)"])]) }
        let names = try #require(directoryEntryNames(directory)).filter { !$0.hasPrefix(".") }
        #expect(names == ["running-00000000000000000004.json", "running-00000000000000000005.json", "running-00000000000000000006.json"])
    }

    @Test func restoreKeepsWhatRanAndAddsOnlyUnknownBootstrapComponents() throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        let store = try RunningConfigStore(directory: directory)
        try store.committed([definition("a", ["v": "applied"]), definition("gone")])
        try store.committed([definition("a", ["v": "applied"])])  // "gone" was removed at run time
        let snapshot = try #require(try RunningConfigStore(directory: directory).load())
        #expect(snapshot.removed == [ComponentKey(kind: .lock, name: "gone")])
        let restored = RunningConfigStore.restore(
            bootstrap: [definition("a", ["v": "file"]), definition("gone"), definition("new")], snapshot: snapshot)
        #expect(restored == [definition("a", ["v": "applied"]), definition("new")])
        #expect(RunningConfigStore.restore(bootstrap: [definition("x")], snapshot: nil) == [definition("x")])
    }

    @Test func theEngineWritesEveryChangeBeforeAcknowledgingItButNotItsShutdown() async throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        let store = try RunningConfigStore(directory: directory)
        let catalog = PluginCatalog(loader: try Fixtures.loader(with: ["probe-1.0.0.so"]))
        catalog.rescan()
        let engine = Engine(catalog: catalog, journal: store)
        #expect(await engine.apply(ComponentDefinition(kind: .lock, name: "a", plugin: "probe")).action == .added)
        #expect(await engine.apply(ComponentDefinition(kind: .lock, name: "b", plugin: "probe")).action == .added)
        #expect(await engine.apply(ComponentDefinition(kind: .lock, name: "a", config: ["live.x": "1"])).action == .appliedInPlace)
        #expect(try RunningConfigStore(directory: directory).load()?.components.map(\.config) == [["live.x": "1"], [:]])
        #expect(await engine.remove(ComponentKey(kind: .lock, name: "b")).action == .removed)
        let afterRemove = try #require(try RunningConfigStore(directory: directory).load())
        #expect(afterRemove.components.map(\.key.name) == ["a"] && afterRemove.removed.map(\.name) == ["b"])
        #expect(afterRemove.components.first?.version == SemanticVersion("1.0.0"))
        await engine.shutdown()
        #expect(try RunningConfigStore(directory: directory).load()?.sequence == afterRemove.sequence)
    }
}
