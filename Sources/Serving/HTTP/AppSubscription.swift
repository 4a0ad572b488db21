#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import EventRouting
import ServingCore

/// One classic subscription: molt subscribes to `topic` of `pubsub` and POSTs each event to the app at the path
/// `path(for:)` chooses: the first routing rule whose match holds, else `route`.
/// Programmatic (the app's answer to `GET /dapr/subscribe`) or declarative (a Dapr `kind: Subscription` file).
public struct AppSubscription: Sendable, Equatable {
    public var pubsub: String
    public var topic: String
    /// The app path of events no rule matches (Dapr's `routes.default`, or `route`), starting with `/`; "" when
    /// only rules are given (an event none matches is then dropped, as in Dapr).
    public var route: String
    /// `routes.rules` in order (their paths starting with `/`).
    public var rules: [RoutingRule]
    /// "" when there is none.
    public var deadLetterTopic: String
    /// Passed to the pubsub's subscribe (e.g. `rawPayload`); molt reads `maxRetries` from it too.
    public var metadata: [String: String]
    /// For logs: `programmatic` or `declarative 'name' (file:line)`.
    public var source: String

    public init(pubsub: String, topic: String, route: String, rules: [RoutingRule] = [], deadLetterTopic: String = "",
                metadata: [String: String] = [:], source: String) {
        func slashed(_ path: String) -> String { path.isEmpty || path.hasPrefix("/") ? path : "/" + path }
        self.pubsub = pubsub
        self.topic = topic
        self.route = slashed(route)
        self.rules = rules.map { RoutingRule(match: $0.match, path: slashed($0.path)) }
        self.deadLetterTopic = deadLetterTopic
        self.metadata = metadata
        self.source = source
    }

    /// `maxRetries` of the metadata, or `RedeliveryBudget.defaultMaxRetries`.
    public var maxRetries: Int { RedeliveryBudget(metadata: metadata, deadLetterTopic: deadLetterTopic).maxRetries }

    /// The app's answer to `GET /dapr/subscribe`, as Dapr reads it (dapr/dapr `pkg/runtime/pubsub`
    /// `GetSubscriptionsHTTP`): a JSON list of `{pubsubname, topic, route | routes: {rules: [{match, path}],
    /// default}, metadata, deadLetterTopic}`. The default route is `routes.default`, else `route`; each rule's match
    /// is compiled. Entries molt cannot use (a match that does not compile among them) are skipped and come back as
    /// problems, one line each, naming the entry; the others are used (Dapr refuses the whole list instead).
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
            let entryName = "entry \(index) (pubsub '\(pubsub)', topic '\(topic)')"
            var route = string(fields["route"])
            var rules: [RoutingRule] = []
            if case .object(let routes)? = fields["routes"] {
                let given = string(routes["default"])
                if !given.isEmpty { route = given }
                do {
                    rules = try routingRules(routes["rules"])
                } catch {
                    problems.append("\(entryName): \(error); skipped")
                    continue
                }
            }
            guard !route.isEmpty || !rules.isEmpty else {
                problems.append("\(entryName) has no route, routes.default nor routes.rules; skipped")
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
            subscriptions.append(AppSubscription(pubsub: pubsub, topic: topic, route: route, rules: rules,
                                                 deadLetterTopic: string(fields["deadLetterTopic"]), metadata: metadata, source: "programmatic"))
        }
        return (subscriptions, problems)
    }

    /// `routes.rules` of a programmatic entry: a list of `{match, path}`, each match compiled.
    private static func routingRules(_ value: JSONValue?) throws(SubscriptionListError) -> [RoutingRule] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else { throw SubscriptionListError(message: "routes.rules is not a list") }
        var rules: [RoutingRule] = []
        for (index, item) in items.enumerated() {
            guard case .object(let rule) = item else { throw SubscriptionListError(message: "routes.rules[\(index)] is not an object") }
            guard case .string(let path)? = rule["path"], !path.isEmpty else {
                throw SubscriptionListError(message: "routes.rules[\(index)] has no path")
            }
            var match = ""
            switch rule["match"] {
            case .string(let text)?: match = text
            case nil, .null?: break
            default: throw SubscriptionListError(message: "routes.rules[\(index)].match is not a string")
            }
            do {
                rules.append(try RoutingRule(match: match, path: path))
            } catch {
                throw SubscriptionListError(message: "routes.rules[\(index)].match '\(match)' does not compile: \(error)")
            }
        }
        return rules
    }
}

struct SubscriptionListError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
