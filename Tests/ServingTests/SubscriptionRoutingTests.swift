import EventRouting
import HTTPServing
import ServingCore
import Testing

/// A subscription's routing rules choose each event's path as Dapr's findMatchingRoute does: the first rule whose
/// match holds, then the default route; no match without a default is nil (dropped); an evaluation error stops.
@Suite struct SubscriptionRoutingTests {
    private func event(type: String, data: JSONValue) -> JSONValue {
        .object(["id": .string("1"), "type": .string(type), "source": .string("app"), "specversion": .string("1.0"),
                 "topic": .string("orders"), "pubsubname": .string("pubsub"), "data": data])
    }

    private func subscription(_ rules: [(String, String)], default route: String) throws -> AppSubscription {
        AppSubscription(pubsub: "pubsub", topic: "orders", route: route,
                        rules: try rules.map { try RoutingRule(match: $0.0, path: $0.1) }, source: "test")
    }

    @Test func theFirstMatchingRuleWinsThenTheDefault() throws {
        let spec = try subscription([("event.type == 'order.created' && event.data.total > 100", "/large"),
                                     ("event.type == 'order.created'", "orders/created"),
                                     ("", "/catch-all-before-default")], default: "/orders")
        #expect(try spec.path(for: event(type: "order.created", data: .object(["total": .integer(150)]))) == "/large")
        #expect(try spec.path(for: event(type: "order.created", data: .object(["total": .number(99.5)]))) == "/orders/created")
        // A rule without a match always applies (Dapr's nil Match).
        #expect(try spec.path(for: event(type: "order.paid", data: .object([:]))) == "/catch-all-before-default")
    }

    @Test func withoutADefaultAnEventNoRuleMatchesHasNoPath() throws {
        let spec = try subscription([("event.type == 'a'", "/a")], default: "")
        #expect(try spec.path(for: event(type: "a", data: .null)) == "/a")
        #expect(try spec.path(for: event(type: "b", data: .null)) == nil)
        #expect(try subscription([], default: "/only").path(for: .string("not even an object")) == "/only")
    }

    @Test func anEvaluationErrorStopsRoutingAndNamesTheRule() throws {
        let spec = try subscription([("event.type == 'x'", "/x"), ("event.data.kind == 'y'", "/y"), ("true", "/z")], default: "/d")
        let error = #expect(throws: RoutingError.self) { try spec.path(for: event(type: "a", data: .object([:]))) }
        #expect(error?.rule == 1 && error?.message == "no such key: kind")
        #expect(error?.description == "routes.rules[1].match 'event.data.kind == 'y'': no such key: kind")
        let notBool = try subscription([("event.type", "/x")], default: "/d")
        let second = #expect(throws: RoutingError.self) { try notBool.path(for: event(type: "a", data: .null)) }
        #expect(second?.message == "the result is a string, not a bool")
    }

    @Test func jsonNumbersAreDoublesAsInDapr() throws {
        let spec = try subscription([("event.data.n == 2 && event.data.n * 2.0 == 4.0", "/two"), ("event.data.n + 1 == 3", "/never")],
                                    default: "/d")
        #expect(try spec.path(for: event(type: "t", data: .object(["n": .integer(2)]))) == "/two")
        #expect(throws: RoutingError.self) { try spec.path(for: event(type: "t", data: .object(["n": .integer(3)]))) }
    }

    @Test func programmaticRulesAreCompiledAndABadEntryIsSkippedNamingIt() throws {
        let body = """
            [{"pubsubname": "pubsub", "topic": "a", "routes": {"rules": [{"match": "event.type == 'x'", "path": "/x"}], "default": "/a"}},
             {"pubsubname": "pubsub", "topic": "b", "routes": {"rules": [{"match": "event.type = 'x'", "path": "/x"}]}},
             {"pubsubname": "pubsub", "topic": "c", "routes": {"rules": [{"match": "event.type == 'c'", "path": "c"}]}},
             {"pubsubname": "pubsub", "topic": "d", "routes": {"rules": [{"match": "true"}]}, "route": "/d"},
             {"pubsubname": "pubsub", "topic": "e", "routes": {"rules": [{"match": 3, "path": "/e"}]}},
             {"pubsubname": "pubsub", "topic": "f", "routes": {}}]
            """
        let (subscriptions, problems) = try AppSubscription.programmatic(Array(body.utf8))
        #expect(subscriptions.map(\.topic) == ["a", "c"])
        #expect(subscriptions[0].route == "/a" && subscriptions[0].rules.map(\.path) == ["/x"])
        #expect(subscriptions[1].route == "" && subscriptions[1].rules.map(\.path) == ["/c"])
        #expect(problems == [
            "entry 1 (pubsub 'pubsub', topic 'b'): routes.rules[0].match 'event.type = 'x'' does not compile: column 12: '=' is not an operator (did you mean '=='?); skipped",
            "entry 3 (pubsub 'pubsub', topic 'd'): routes.rules[0] has no path; skipped",
            "entry 4 (pubsub 'pubsub', topic 'e'): routes.rules[0].match is not a string; skipped",
            "entry 5 (pubsub 'pubsub', topic 'f') has no route, routes.default nor routes.rules; skipped",
        ])
    }
}
