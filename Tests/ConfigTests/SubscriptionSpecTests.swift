import Config
import Testing

/// Dapr `kind: Subscription` documents read alongside components (v1alpha1 `route`, v2alpha1 `routes`), and
/// malformed ones refused naming the field.
@Suite struct SubscriptionSpecTests {
    private func parse(_ text: String) throws -> LoadedComponents { try ComponentSources.parse(text, file: "subs.yaml") }

    @Test func bothApiVersionsAreReadWithComponents() throws {
        let loaded = try parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata: {name: pubsub}
            spec: {type: pubsub.in-memory-pubsub, version: v1}
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata: {name: old}
            spec: {pubsubname: pubsub, topic: a, route: /a}
            ---
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata: {name: new}
            spec:
              pubsubname: pubsub
              topic: b
              routes:
                rules: [{match: "event.type == 'x'", path: /x}]
                default: /b
              deadLetterTopic: b-dead
              metadata: {maxRetries: 3, rawPayload: "true"}
            scopes: [app1, app2]
            """)
        #expect(loaded.components.map(\.name) == ["pubsub"])
        #expect(loaded.subscriptions.count == 2)
        let (old, new) = (loaded.subscriptions[0], loaded.subscriptions[1])
        #expect(old.name == "old" && old.pubsub == "pubsub" && old.topic == "a" && old.route == "/a" && old.deadLetterTopic == "")
        #expect(old.applies(to: "anything"))
        #expect(new.route == "/b" && new.ignoredRules == 1 && new.deadLetterTopic == "b-dead")
        #expect(new.metadata == ["maxRetries": "3", "rawPayload": "true"])
        #expect(new.scopes == ["app1", "app2"] && new.applies(to: "app2") && !new.applies(to: "molt"))
        #expect(new.origin?.line == 11)
        #expect(!loaded.warnings.contains { $0.message.contains("Subscription") })
    }

    @Test(arguments: [
        ("spec: {topic: a, route: /a}", "spec.pubsubname"),
        ("spec: {pubsubname: p, route: /a}", "spec.topic"),
        ("spec: {pubsubname: p, topic: ''}", "spec.topic"),
        ("spec: {pubsubname: p, topic: a}", "spec.routes.default"),
        ("spec: {pubsubname: p, topic: a, routes: {rules: [{match: x}]}}", "spec.routes.rules[0].path"),
        ("spec: {pubsubname: p, topic: [a], route: /a}", "spec.topic"),
    ])
    func malformedOnesNameTheField(spec: String, keyPath: String) throws {
        let error = #expect(throws: ConfigError.self) {
            try parse("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n" + spec)
        }
        #expect(error?.keyPath == keyPath)
    }

    @Test func anUnknownApiVersionIsRefused() throws {
        let error = #expect(throws: ConfigError.self) {
            try parse("apiVersion: dapr.io/v3\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: a, route: /a}")
        }
        #expect(error?.keyPath == "apiVersion")
    }
}
