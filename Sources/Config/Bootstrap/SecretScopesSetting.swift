/// Setting `secrets.scopes`: which secrets the app may read from each secret store, as Dapr's
/// Configuration `spec.secrets.scopes` (same field names and rules). In a config file a list of
/// mappings; in the environment (`MOLT_SECRETS_SCOPES`),
/// the same list as JSON text.
extension BootstrapConfig {
    public struct SecretScope: Sendable, Equatable {
        public enum Access: String, Sendable, Equatable { case allow, deny }

        public var storeName: String
        /// What a secret in neither list gets (Dapr's default: allow).
        public var defaultAccess: Access
        /// When not empty, the only secrets allowed (the other two fields are then not consulted).
        public var allowedSecrets: [String]
        public var deniedSecrets: [String]

        public init(storeName: String, defaultAccess: Access = .allow, allowedSecrets: [String] = [], deniedSecrets: [String] = []) {
            self.storeName = storeName
            self.defaultAccess = defaultAccess
            self.allowedSecrets = allowedSecrets
            self.deniedSecrets = deniedSecrets
        }
    }
}

enum SecretScopesSetting {
    static let fields = ["storeName", "defaultAccess", "allowedSecrets", "deniedSecrets"]
    static let expected = "a list of secret scopes ({storeName, defaultAccess, allowedSecrets, deniedSecrets})"

    /// Parses and validates a list of scopes. Every error names the field (`secrets.scopes[1].defaultAccess`).
    /// An unknown field is an error, not a warning: a misspelt `allowedSecrets` would silently widen access.
    static func parse(_ node: SourceNode) throws -> [BootstrapConfig.SecretScope] {
        guard case .sequence = node.node else { throw node.typeError(expected: expected) }
        var scopes: [BootstrapConfig.SecretScope] = []
        for item in try node.items() {
            for (key, value) in try item.entries() where !fields.contains(key) {
                throw ConfigError(origin: value.origin, keyPath: value.path,
                                  message: "unknown field '\(key)' in a secret scope (fields: \(fields.joined(separator: ", ")))")
            }
            let nameNode = try item.required("storeName", expected: "a secret store name")
            let storeName = try nameNode.string()
            guard !storeName.isEmpty else { throw nameNode.typeError(expected: "a secret store name", "it is empty") }
            // Dapr: "%q storeName is repeated in secrets configuration".
            guard !scopes.contains(where: { $0.storeName == storeName }) else {
                throw ConfigError(origin: nameNode.origin, keyPath: nameNode.path,
                                  message: "storeName '\(storeName)' is repeated: give each secret store one scope")
            }
            var access = BootstrapConfig.SecretScope.Access.allow
            if let accessNode = try item.child("defaultAccess") {
                // Dapr compares case-insensitively and takes "" as allow.
                let text = try accessNode.string()
                guard let parsed = text.isEmpty ? .allow : BootstrapConfig.SecretScope.Access(rawValue: text.lowercased()) else {
                    throw ConfigError.type(accessNode.origin, accessNode.path, expected: "allow or deny", found: "'\(text)'")
                }
                access = parsed
            }
            scopes.append(BootstrapConfig.SecretScope(
                storeName: storeName, defaultAccess: access,
                allowedSecrets: try item.child("allowedSecrets")?.stringList() ?? [],
                deniedSecrets: try item.child("deniedSecrets")?.stringList() ?? []))
        }
        return scopes
    }

    /// `text` (JSON or YAML flow) from the environment or the command line.
    static func parse(text: String, origin: ConfigOrigin, keyPath: String) throws -> [BootstrapConfig.SecretScope] {
        let documents = try SourceNode.documents(of: text, file: origin.file)
        guard let root = documents.first, documents.count == 1 else {
            throw ConfigError.type(origin, keyPath, expected: expected, found: text.isEmpty ? "nothing" : "'\(text)'")
        }
        return try parse(SourceNode(node: root.node, file: origin.file, path: keyPath))
    }

    /// The scopes as one JSON line (also YAML flow), for rendering and for the layers' string values.
    static func json(_ scopes: [BootstrapConfig.SecretScope]) -> String {
        let quoted = ConfigRenderer.quoted
        return "[" + scopes.map { scope in
            "{\"storeName\": \(quoted(scope.storeName)), \"defaultAccess\": \(quoted(scope.defaultAccess.rawValue)), "
                + "\"allowedSecrets\": [\(scope.allowedSecrets.map(quoted).joined(separator: ", "))], "
                + "\"deniedSecrets\": [\(scope.deniedSecrets.map(quoted).joined(separator: ", "))]}"
        }.joined(separator: ", ") + "]"
    }
}
