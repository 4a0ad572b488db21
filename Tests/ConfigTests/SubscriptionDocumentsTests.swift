import Config
import Testing

/// The YAML text of the Control API's ApplySubscription: Subscription documents only, rules carried as given.
@Suite struct SubscriptionDocumentsTests {
    @Test func documentsAreReadInOrderWithTheirRules() throws {
        let text = """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata: {name: orders}
            spec:
              pubsubname: pubsub
              topic: orders
              routes:
                default: /orders
                rules:
                  - match: event.type == "big"
                    path: /big
                  - path: /fallback
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata: {name: audit}
            spec: {pubsubname: pubsub, topic: audit, route: /audit, extra: 1}
            """
        let (read, warnings) = try SubscriptionDocuments.parse(text, origin: "subs.yaml")
        #expect(read.map(\.spec.name) == ["orders", "audit"])
        #expect(read[0].spec.route == "/orders")
        #expect(read[0].rules == [.init(match: "event.type == \"big\"", path: "/big"), .init(match: "", path: "/fallback")])
        #expect(read[1].rules == [] && read[1].spec.route == "/audit")
        #expect(warnings.map(\.description).contains { $0.contains("subs.yaml:17") && $0.contains("extra") })
    }

    @Test func anythingButASubscriptionIsRefusedNamingFileLineAndField() throws {
        let component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\nspec: {type: pubsub.in-memory}\n"
        let refused = #expect(throws: ConfigError.self) { try SubscriptionDocuments.parse(component, origin: "c.yaml") }
        #expect(refused?.description.contains("c.yaml:2") == true)
        #expect(refused?.description.contains("molt apply") == true)
        let noTopic = "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: x}\nspec:\n  pubsubname: p\n  routes: {default: /x}\n"
        let missing = #expect(throws: ConfigError.self) { try SubscriptionDocuments.parse(noTopic, origin: "x.yaml") }
        #expect(missing?.description.contains("x.yaml:") == true)
        #expect(missing?.description.contains("spec.topic") == true)
        #expect(throws: ConfigError.self) { try SubscriptionDocuments.parse("", origin: "empty.yaml") }
    }
}
