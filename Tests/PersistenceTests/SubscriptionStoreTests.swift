import FoundationEssentials
import MoltTestSupport
import Persistence
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SubscriptionStoreTests {
    let orders = StoredSubscription(name: "orders", pubsubname: "pubsub", topic: "orders", defaultRoute: "/orders",
                                    rules: [.init(match: "event.type == \"big\"", path: "/big")], deadLetterTopic: "orders-dead",
                                    metadata: ["maxRetries": "3"], scopes: ["checkout"])
    let audit = StoredSubscription(name: "audit", pubsubname: "pubsub", topic: "audit", defaultRoute: "/audit")

    @Test func theSetRoundTripsAndTheLastSaveWins() async throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        let store = try SubscriptionStore(directory: directory)
        #expect(store.load() == [])
        try await store.save([orders, audit])
        #expect(try SubscriptionStore(directory: directory).load() == [audit, orders])  // name order
        try await store.save([audit])
        #expect(try SubscriptionStore(directory: directory).load() == [audit])
        try await store.save([])
        #expect(try SubscriptionStore(directory: directory).load() == [])
    }

    @Test func aCorruptOrNewerFileRestoresNothing() async throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        let store = try SubscriptionStore(directory: directory)
        try await store.save([orders])
        let path = store.path
        let text = String(decoding: readWholeBytes(path), as: UTF8.self)
        // Same shape, another route: the checksum no longer matches.
        write(text.replacing("/orders", with: "/elsewhere"), to: path)
        #expect(store.load() == [])
        write(String(text.prefix(text.count / 2)), to: path)
        #expect(store.load() == [])
        write(text.replacing("\"format\" : 1", with: "\"format\" : 99"), to: path)
        #expect(store.load() == [])
        // The next save replaces the bad file.
        try await store.save([audit])
        #expect(store.load() == [audit])
    }

    func readWholeBytes(_ path: String) -> [UInt8] {
        let file = fopen(path, "r")!
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }

    func write(_ text: String, to path: String) {
        let file = fopen(path, "w")!
        fputs(text, file)
        fclose(file)
    }
}
