import ServingCore
import Testing

/// Dapr's secret scoping rules (`SecretsScope.IsSecretAllowed`): allowedSecrets decides alone, then
/// deniedSecrets, then defaultAccess; a store without a scope allows everything.
@Suite struct SecretScopesTests {
    @Test func aStoreWithoutAScopeAllowsEverySecret() {
        let scopes = SecretScopes(["vault": .init(defaultAccess: .deny)])
        #expect(scopes.allowed(store: "files", key: "anything"))
        #expect(SecretScopes.allowAll.allowed(store: "vault", key: "db-password"))
    }

    @Test func defaultAccessDecidesSecretsInNeitherList() {
        #expect(SecretScopes(["vault": .init(defaultAccess: .allow)]).allowed(store: "vault", key: "a"))
        #expect(!SecretScopes(["vault": .init(defaultAccess: .deny)]).allowed(store: "vault", key: "a"))
    }

    @Test func deniedSecretsAreDeniedUnderDefaultAllow() {
        let scopes = SecretScopes(["vault": .init(defaultAccess: .allow, deniedSecrets: ["root-token"])])
        #expect(!scopes.allowed(store: "vault", key: "root-token"))
        #expect(scopes.allowed(store: "vault", key: "db-password"))
    }

    @Test func allowedSecretsDecideAloneWhenGiven() {
        // A listed secret is allowed even when also denied and the default is deny; anything else is denied
        // even under default allow.
        let scopes = SecretScopes(["vault": .init(defaultAccess: .deny, allowedSecrets: ["db-password"], deniedSecrets: ["db-password"])])
        #expect(scopes.allowed(store: "vault", key: "db-password"))
        let allowDefault = SecretScopes(["vault": .init(defaultAccess: .allow, allowedSecrets: ["db-password"])])
        #expect(!allowDefault.allowed(store: "vault", key: "other"))
    }

    @Test func namesMatchExactly() {
        let scopes = SecretScopes(["vault": .init(allowedSecrets: ["db-password"])])
        #expect(!scopes.allowed(store: "vault", key: "DB-PASSWORD"))
        #expect(!scopes.allowed(store: "vault", key: "db-password "))
        #expect(!scopes.allowed(store: "vault", key: "db"))
    }
}
