import Config
import Engine
import GRPCCore
import HTTPServing
import MoltProtos
import Persistence

/// The Control API's subscription requests read and checked: fields or Dapr `kind: Subscription` YAML, each
/// problem an INVALID_ARGUMENT naming the field (and, for YAML, the line).
enum SubscriptionRequests {
    /// The definitions of `request`, in order, and the warnings reading them produced (unknown YAML keys).
    static func definitions(_ request: Molt_Control_V1_ApplySubscriptionRequest) throws(RPCError) -> ([StoredSubscription], [String]) {
        switch request.definition {
        case .subscription(let fields)?:
            return ([try definition(fields)], [])
        case .yaml(let text)?:
            let origin = request.yamlOrigin.isEmpty ? "request" : request.yamlOrigin
            do {
                let (read, warnings) = try SubscriptionDocuments.parse(text, origin: origin)
                var definitions: [StoredSubscription] = []
                for (spec, rules) in read {
                    if let problem = nameProblem(spec.name) {
                        throw RPCError(code: .invalidArgument, message: "\(spec.origin.map { "\($0)" } ?? origin): metadata.name: \(problem)")
                    }
                    definitions.append(StoredSubscription(
                        name: spec.name, pubsubname: spec.pubsub, topic: spec.topic, defaultRoute: spec.route,
                        rules: rules.map { StoredSubscription.Rule(match: $0.match, path: $0.path) },
                        deadLetterTopic: spec.deadLetterTopic, metadata: spec.metadata, scopes: spec.scopes))
                }
                return (definitions, warnings.map(\.description))
            } catch let error as RPCError {
                throw error
            } catch {
                throw RPCError(code: .invalidArgument, message: "\(error)")
            }
        case nil:
            throw RPCError(code: .invalidArgument, message: "the request has no subscription: give subscription (fields) or yaml")
        }
    }

    static func definition(_ fields: Molt_Control_V1_Subscription) throws(RPCError) -> StoredSubscription {
        func required(_ value: String, _ field: String, _ what: String) throws(RPCError) {
            if value.isEmpty { throw RPCError(code: .invalidArgument, message: "subscription.\(field) is empty: give \(what)") }
        }
        if let problem = nameProblem(fields.name) { throw RPCError(code: .invalidArgument, message: "subscription.name: \(problem)") }
        try required(fields.pubsubname, "pubsubname", "the name of a pubsub component")
        try required(fields.topic, "topic", "a topic name")
        try required(fields.defaultRoute, "default_route", "the app path events are POSTed to, such as /orders")
        for (index, rule) in fields.rules.enumerated() {
            try required(rule.path, "rules[\(index)].path", "the app path of the rule")
        }
        return StoredSubscription(name: fields.name, pubsubname: fields.pubsubname, topic: fields.topic, defaultRoute: fields.defaultRoute,
                                  rules: fields.rules.map { StoredSubscription.Rule(match: $0.match, path: $0.path) },
                                  deadLetterTopic: fields.deadLetterTopic, metadata: fields.metadata, scopes: fields.scopes)
    }

    /// Subscription names follow the components' rule (lowercase RFC 1123, as Kubernetes names).
    static func nameProblem(_ name: String) -> String? {
        ComponentLimits.nameProblem(name).map { $0.replacing("component name", with: "subscription name") }
    }
}

extension Molt_Control_V1_Subscription {
    init(_ definition: StoredSubscription) {
        self.init()
        name = definition.name
        pubsubname = definition.pubsubname
        topic = definition.topic
        defaultRoute = definition.defaultRoute
        rules = definition.rules.map { rule in
            var converted = Molt_Control_V1_SubscriptionRule()
            (converted.match, converted.path) = (rule.match, rule.path)
            return converted
        }
        deadLetterTopic = definition.deadLetterTopic
        metadata = definition.metadata
        scopes = definition.scopes
    }

    /// A file's or an etcd key's (its rules are not kept: only counted).
    init(_ spec: SubscriptionSpec) {
        self.init()
        name = spec.name
        pubsubname = spec.pubsub
        topic = spec.topic
        defaultRoute = spec.route
        deadLetterTopic = spec.deadLetterTopic
        metadata = spec.metadata
        scopes = spec.scopes
    }

    /// A programmatic one (it has no name).
    init(_ subscription: AppSubscription) {
        self.init()
        pubsubname = subscription.pubsub
        topic = subscription.topic
        defaultRoute = subscription.route
        deadLetterTopic = subscription.deadLetterTopic
        metadata = subscription.metadata
    }
}
