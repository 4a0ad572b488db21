import EventRouting

/// A Dapr declarative subscription (`kind: Subscription`) read from a component file: molt delivers the
/// topic's messages to the app's route, as it does for the subscriptions the app lists at `GET /dapr/subscribe`.
/// Routing rules (v2alpha1 `routes.rules`) choose the path per event: the first whose CEL `match` holds, else
/// `routes.default`; their expressions are compiled here, so a malformed one is refused when the file is read.
///
///     apiVersion: dapr.io/v2alpha1
///     kind: Subscription
///     metadata: { name: orders }
///     spec:
///       pubsubname: pubsub
///       topic: orders
///       routes:                           # v1alpha1: route: /orders
///         rules:
///           - match: event.type == "order.created" && event.data.total > 100
///             path: /orders/large
///         default: /orders
///       deadLetterTopic: orders-dead
///       metadata: { maxRetries: "5" }
///     scopes: [checkout]                  # app ids; absent or empty: every app
public struct SubscriptionSpec: Sendable, Equatable {
    /// metadata.name.
    public var name: String
    public var pubsub: String
    public var topic: String
    /// The path events no rule matches go to: routes.default (v2alpha1) or route (v1alpha1); "" when only rules
    /// are given (an event none matches is then dropped, as in Dapr).
    public var route: String
    /// routes.rules in order, their `match` compiled.
    public var rules: [RoutingRule]
    /// "" when there is none.
    public var deadLetterTopic: String
    public var metadata: [String: String]
    /// App ids the subscription applies to; empty means every app.
    public var scopes: [String]
    public var origin: ConfigOrigin?

    public init(name: String, pubsub: String, topic: String, route: String, rules: [RoutingRule] = [], deadLetterTopic: String = "",
                metadata: [String: String] = [:], scopes: [String] = [], origin: ConfigOrigin? = nil) {
        (self.name, self.pubsub, self.topic, self.route, self.rules, self.deadLetterTopic, self.metadata, self.scopes, self.origin) =
            (name, pubsub, topic, route, rules, deadLetterTopic, metadata, scopes, origin)
    }

    /// Whether the subscription applies to the app `appID` (Dapr's scopes).
    public func applies(to appID: String) -> Bool { scopes.isEmpty || scopes.contains(appID) }
}

/// Reads Dapr `kind: Subscription` documents (apiVersion dapr.io/v1alpha1 or dapr.io/v2alpha1).
enum DaprSubscriptionFormat {
    static let apiVersions: Set<String> = ["dapr.io/v1alpha1", "dapr.io/v2alpha1"]
    private static let topLevelKeys: Set<String> = ["apiVersion", "kind", "metadata", "spec", "scopes"]
    private static let specKeys: Set<String> = ["pubsubname", "topic", "route", "routes", "deadLetterTopic", "metadata", "bulkSubscribe"]

    static func read(_ document: SourceNode, warnings: inout [ConfigWarning]) throws -> SubscriptionSpec {
        let apiVersionNode = try document.required("apiVersion", expected: "a string")
        let apiVersion = try apiVersionNode.string()
        guard apiVersions.contains(apiVersion) else {
            throw ConfigError(origin: apiVersionNode.origin, keyPath: "apiVersion", expected: "'dapr.io/v2alpha1' or 'dapr.io/v1alpha1'",
                              found: "'\(apiVersion)'", message: "unsupported Subscription apiVersion '\(apiVersion)'")
        }
        for (key, value) in try document.entries() where !topLevelKeys.contains(key) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
        }
        let name = try document.required("metadata", expected: "a mapping").required("name", expected: "a string").string()
        let spec = try document.required("spec", expected: "a mapping")
        for (key, value) in try spec.entries() where !specKeys.contains(key) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
        }
        let pubsub = try nonEmpty(spec.required("pubsubname", expected: "the name of a pubsub component"))
        let topic = try nonEmpty(spec.required("topic", expected: "a topic name"))
        var route = try spec.child("route")?.string() ?? ""
        var rules: [RoutingRule] = []
        if let routes = try spec.child("routes") {
            for (key, value) in try routes.entries() where !["default", "rules"].contains(key) {
                warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
            }
            if let given = try routes.child("default")?.string(), !given.isEmpty { route = given }
            for rule in try routes.child("rules")?.items() ?? [] {
                rules.append(try routingRule(rule, warnings: &warnings))
            }
        }
        guard !route.isEmpty || !rules.isEmpty else {
            throw ConfigError(origin: spec.origin, keyPath: spec.path(appending: "routes.default"), expected: "a path such as /orders",
                              message: "subscription '\(name)' has no route: give spec.routes.default (or spec.route) or spec.routes.rules")
        }
        if let bulk = try spec.child("bulkSubscribe") {
            warnings.append(ConfigWarning(origin: bulk.origin, keyPath: bulk.path, kind: .ignored,
                                          message: "bulkSubscribe is ignored: molt delivers one event per request"))
        }
        var metadata: [String: String] = [:]
        if let node = try spec.child("metadata") {
            for (key, value) in try node.entries() { metadata[key] = try value.scalarText() }
        }
        return SubscriptionSpec(name: name, pubsub: pubsub, topic: topic, route: route, rules: rules,
                                deadLetterTopic: try spec.child("deadLetterTopic")?.string() ?? "", metadata: metadata,
                                scopes: try document.child("scopes")?.stringList() ?? [], origin: document.origin)
    }

    /// One `routes.rules` item: `path` required, `match` compiled (absent or blank: the rule always matches, as in
    /// Dapr). A malformed match names its key path, its file position and the column in the expression.
    private static func routingRule(_ rule: SourceNode, warnings: inout [ConfigWarning]) throws -> RoutingRule {
        for (key, value) in try rule.entries() where !["match", "path"].contains(key) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
        }
        let path = try nonEmpty(rule.required("path", expected: "the app path of the rule"))
        guard let matchNode = try rule.child("match") else { return RoutingRule(match: nil, path: path) }
        let text = try matchNode.string()
        do {
            return try RoutingRule(match: text, path: path)
        } catch {
            // The position counts in the expression as written, 1-based.
            throw ConfigError(origin: matchNode.origin, keyPath: matchNode.path, expected: "a CEL expression",
                              message: "the CEL expression '\(text)' does not compile: \(error)")
        }
    }

    private static func nonEmpty(_ node: SourceNode) throws -> String {
        let text = try node.string()
        guard !text.isEmpty else { throw ConfigError(origin: node.origin, keyPath: node.path, expected: "a non-empty string", found: "''",
                                                     message: "\(node.path) is empty") }
        return text
    }
}
