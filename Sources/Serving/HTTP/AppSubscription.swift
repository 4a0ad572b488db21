#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ServingCore

/// One classic subscription: molt subscribes to `topic` of `pubsub` and POSTs each event to the app at `route`.
/// Programmatic (the app's answer to `GET /dapr/subscribe`) or declarative (a Dapr `kind: Subscription` file).
public struct AppSubscription: Sendable, Equatable {
    public var pubsub: String
    public var topic: String
    /// The app path events are POSTed to, starting with `/`.
    public var route: String
    /// "" when there is none.
    public var deadLetterTopic: String
    /// Passed to the pubsub's subscribe (e.g. `rawPayload`); molt reads `maxRetries` from it too.
    public var metadata: [String: String]
    /// For logs: `programmatic` or `declarative 'name' (file:line)`.
    public var source: String
    /// Routing rules given and not evaluated (their CEL `match` is out of molt's scope): logged at start.
    public var ignoredRules: Int

    public init(pubsub: String, topic: String, route: String, deadLetterTopic: String = "", metadata: [String: String] = [:],
                source: String, ignoredRules: Int = 0) {
        self.pubsub = pubsub
        self.topic = topic
        self.route = route.hasPrefix("/") ? route : "/" + route
        self.deadLetterTopic = deadLetterTopic
        self.metadata = metadata
        self.source = source
        self.ignoredRules = ignoredRules
    }

    /// `maxRetries` of the metadata, or `RedeliveryBudget.defaultMaxRetries`.
    public var maxRetries: Int { RedeliveryBudget(metadata: metadata, deadLetterTopic: deadLetterTopic).maxRetries }

    /// The app's answer to `GET /dapr/subscribe`, as Dapr reads it (dapr/dapr `pkg/runtime/pubsub`
    /// `GetSubscriptionsHTTP`): a JSON list of `{pubsubname, topic, route | routes: {rules: [{match, path}],
    /// default}, metadata, deadLetterTopic}`. The route is `routes.default`, else `route`, else a rule without a
    /// `match` (rules with one are not evaluated). Entries molt cannot use come back as problems, one line each.
    public static func programmatic(_ body: [UInt8]) throws -> (subscriptions: [AppSubscription], problems: [String]) {
        let trimmed = body.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        if trimmed.isEmpty { return ([], []) }
        let value = try JSONCoding.decoder.decode(JSONValue.self, from: Data(body))
        if value == .null { return ([], []) }
        guard case .array(let entries) = value else {
            throw SubscriptionListError(message: "GET /dapr/subscribe answered JSON that is not a list")
        }
        var subscriptions: [AppSubscription] = []
        var problems: [String] = []
        for (index, entry) in entries.enumerated() {
            guard case .object(let fields) = entry else {
                problems.append("entry \(index) is not an object; skipped")
                continue
            }
            func string(_ value: JSONValue?) -> String {
                if case .string(let text)? = value { return text }
                return ""
            }
            let (pubsub, topic) = (string(fields["pubsubname"]), string(fields["topic"]))
            guard !pubsub.isEmpty, !topic.isEmpty else {
                problems.append("entry \(index) has no pubsubname or no topic; skipped")
                continue
            }
            var route = string(fields["route"])
            var ignoredRules = 0
            if case .object(let routes)? = fields["routes"] {
                let given = string(routes["default"])
                if !given.isEmpty { route = given }
                if case .array(let rules)? = routes["rules"] {
                    ignoredRules = rules.count
                    if route.isEmpty {
                        for case .object(let rule) in rules where string(rule["match"]).isEmpty && !string(rule["path"]).isEmpty {
                            route = string(rule["path"])
                            break
                        }
                    }
                }
            }
            guard !route.isEmpty else {
                problems.append("entry \(index) (pubsub '\(pubsub)', topic '\(topic)') has no route nor routes.default; skipped "
                                + "(molt does not evaluate routing rules)")
                continue
            }
            var metadata: [String: String] = [:]
            if case .object(let given)? = fields["metadata"] {
                for (key, value) in given {
                    switch value {
                    case .string(let text): metadata[key] = text
                    case .integer(let number): metadata[key] = String(number)
                    case .bool(let flag): metadata[key] = String(flag)
                    default: break
                    }
                }
            }
            subscriptions.append(AppSubscription(pubsub: pubsub, topic: topic, route: route, deadLetterTopic: string(fields["deadLetterTopic"]),
                                                 metadata: metadata, source: "programmatic", ignoredRules: ignoredRules))
        }
        return (subscriptions, problems)
    }
}

struct SubscriptionListError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
