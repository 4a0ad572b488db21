import Engine
import PluginHost

/// Dapr's state key prefixing, so molt and daprd share a store's data: an app's key `k` is stored as
/// `<prefix>||k`. The prefix comes from the state component's `keyPrefix` metadata, as in Dapr:
/// `appid` (the default: the app ID), `name` (the store name), `none` (no prefix), or any other
/// text used as the prefix itself.
public struct StateKeys: Sendable {
    public static let separator = "||"
    private let engine: Engine
    private let appID: String

    public init(engine: Engine, appID: String) {
        self.engine = engine
        self.appID = appID
    }

    /// The prefix (with the separator) of `store`'s keys; "" for `keyPrefix: none`. A store that is
    /// not configured gets the default; the call then fails with the store-not-found error.
    public func prefix(store: String) -> String {
        let setting = engine.activeConfig(of: ComponentKey(kind: .state, name: store))?["keyPrefix"] ?? "appid"
        switch setting.lowercased() {
        case "none": return ""
        case "appid": return appID.isEmpty ? "" : appID + Self.separator
        case "name": return store + Self.separator
        default: return setting + Self.separator
        }
    }

    /// The stored key of an app key. With a prefix, a key containing "||" is refused (as in Dapr),
    /// so that stored keys map back to exactly one app key.
    public static func stored(_ key: String, prefix: String) throws(APIFailure) -> String {
        guard !prefix.isEmpty else { return key }
        if key.contains(Self.separator) {
            throw .badRequest("input key '\(key)' can't contain '\(Self.separator)'")
        }
        return prefix + key
    }

    /// The app key of a stored key (bulk answers).
    public static func appKey(_ storedKey: String, prefix: String) -> String {
        storedKey.hasPrefix(prefix) ? String(storedKey.dropFirst(prefix.count)) : storedKey
    }
}
