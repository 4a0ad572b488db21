import Config
import EventRouting
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
        #expect(new.route == "/b" && new.deadLetterTopic == "b-dead")
        #expect(new.rules == [RoutingRule(match: try CELExpression("event.type == 'x'"), path: "/x")])
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
        ("spec: {pubsubname: p, topic: a, routes: {rules: [{match: true, path: /x}]}}", "spec.routes.rules[0].match"),
        ("spec: {pubsubname: p, topic: a, routes: {rules: [{match: 'a ==', path: /x}], default: /a}}", "spec.routes.rules[0].match"),
        ("spec: {pubsubname: p, topic: a, routes: {rules: [{match: 'a', path: ''}]}}", "spec.routes.rules[0].path"),
    ])
    func malformedOnesNameTheField(spec: String, keyPath: String) throws {
        let error = #expect(throws: ConfigError.self) {
            try parse("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n" + spec)
        }
        #expect(error?.keyPath == keyPath)
    }

    @Test func rulesAloneAreEnoughAndKeepTheirOrder() throws {
        let loaded = try parse("""
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata: {name: s}
            spec:
              pubsubname: p
              topic: a
              routes:
                rules:
                  - match: event.type == "widget"
                    path: /widgets
                  - match: "  "
                    path: /rest
            """)
        let rules = loaded.subscriptions[0].rules
        #expect(loaded.subscriptions[0].route == "")
        #expect(rules.map(\.path) == ["/widgets", "/rest"] && rules[0].match?.text == "event.type == \"widget\"" && rules[1].match == nil)
    }

    @Test func aMalformedMatchNamesTheFieldTheLineAndTheColumn() throws {
        let error = #expect(throws: ConfigError.self) {
            try parse("""
                apiVersion: dapr.io/v2alpha1
                kind: Subscription
                metadata: {name: s}
                spec:
                  pubsubname: p
                  topic: a
                  routes:
                    rules:
                      - match: event.type == "a"
                        path: /a
                      - match: event.type == "b" && event.data.(x)
                        path: /b
                    default: /c
                """)
        }
        #expect(error?.keyPath == "spec.routes.rules[1].match")
        #expect(error?.origin.line == 11)
        #expect(error?.description.hasPrefix("subs.yaml:11:16: spec.routes.rules[1].match: the CEL expression") == true, "\(String(describing: error))")
        #expect(error?.message.hasSuffix("does not compile: column 33: expected a field or method name after '.', found '('") == true,
                "\(String(describing: error))")
    }

    @Test func anUnknownApiVersionIsRefused() throws {
        let error = #expect(throws: ConfigError.self) {
            try parse("apiVersion: dapr.io/v3\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: a, route: /a}")
        }
        #expect(error?.keyPath == "apiVersion")
    }
}
