/// The Dapr `kind: Subscription` documents of a YAML text given on its own (the Control API's
/// `ApplySubscription`), with their routing rules as given: every document must be a Subscription.
public enum SubscriptionDocuments {
    /// One rule of `spec.routes.rules`, carried as data (its `match` is not evaluated here).
    public struct Rule: Sendable, Equatable {
        public var match: String
        public var path: String
        public init(match: String, path: String) { (self.match, self.path) = (match, path) }
    }

    /// The subscriptions of `text` in document order, each with its rules; `origin` names the text in errors
    /// (`origin:line: key.path: problem`). Warnings are unknown or ignored keys.
    public static func parse(_ text: String, origin: String) throws -> (subscriptions: [(spec: SubscriptionSpec, rules: [Rule])],
                                                                        warnings: [ConfigWarning]) {
        let documents = try SourceNode.documents(of: text, file: origin)
        guard !documents.isEmpty else {
            throw ConfigError(origin: ConfigOrigin(file: origin), keyPath: "", message: "no YAML document: give a kind: Subscription document")
        }
        var warnings: [ConfigWarning] = []
        var read: [(spec: SubscriptionSpec, rules: [Rule])] = []
        for document in documents {
            let kindNode = try document.required("kind", expected: "'Subscription'")
            let kind = try kindNode.string()
            guard kind == "Subscription" else {
                throw ConfigError(origin: kindNode.origin, keyPath: "kind", expected: "'Subscription'", found: "'\(kind)'",
                                  message: "a \(kind) document is not a subscription" + (kind == "Component" ? " (components go through `molt apply`)" : ""))
            }
            let spec = try DaprSubscriptionFormat.read(document, warnings: &warnings)
            var rules: [Rule] = []
            for rule in try document.child("spec")?.child("routes")?.child("rules")?.items() ?? [] {
                rules.append(Rule(match: try rule.child("match")?.string() ?? "", path: try rule.required("path", expected: "a path").string()))
            }
            read.append((spec, rules))
        }
        return (read, warnings)
    }
}
