/// Which secrets the app may read from each secret store: Dapr's Configuration `spec.secrets.scopes`
/// (docs "Limit the secrets that can be read from secret stores"; rules as dapr/dapr
/// `pkg/config` `SecretsScope.IsSecretAllowed`). Set once at start (bootstrap setting `secrets.scopes`),
/// immutable after: any thread may ask.
///
/// For a store without a scope every secret is allowed. For a store with one:
/// 1. a non-empty `allowedSecrets` decides alone: only the secrets it lists (`deniedSecrets` and
///    `defaultAccess` are not consulted);
/// 2. else a secret in `deniedSecrets` is denied;
/// 3. else `defaultAccess` decides (allow when not given).
/// Names match exactly (case-sensitive), as in Dapr.
public struct SecretScopes: Sendable, Equatable {
    public enum Access: String, Sendable, Equatable {
        case allow, deny
    }

    public struct Scope: Sendable, Equatable {
        public var defaultAccess: Access
        public var allowedSecrets: Set<String>
        public var deniedSecrets: Set<String>

        public init(defaultAccess: Access = .allow, allowedSecrets: Set<String> = [], deniedSecrets: Set<String> = []) {
            self.defaultAccess = defaultAccess
            self.allowedSecrets = allowedSecrets
            self.deniedSecrets = deniedSecrets
        }

        public func allows(_ key: String) -> Bool {
            if !allowedSecrets.isEmpty { return allowedSecrets.contains(key) }
            if deniedSecrets.contains(key) { return false }
            return defaultAccess == .allow
        }
    }

    /// Scope by store name; at most one per store.
    public let scopes: [String: Scope]

    public init(_ scopes: [String: Scope] = [:]) {
        self.scopes = scopes
    }

    /// No scopes: every secret of every store is allowed.
    public static let allowAll = SecretScopes()

    /// Whether the app may read secret `key` of store `store`.
    public func allowed(store: String, key: String) -> Bool {
        scopes[store]?.allows(key) ?? true
    }
}
