/// Dapr's state key prefixing, so molt and daprd share a store's data: an app's key `k` is stored as
/// `<prefix>||k`. The prefix comes from the state component's `keyPrefix` metadata, as in Dapr:
/// `appid` (the default: the app ID), `name` (the store name), `none` (no prefix), or any other
/// text used as the prefix itself. Each generation computes its prefix once (`Generation`), so a
/// call's key is built from the generation that serves it.
public enum StateKeyPrefix {
    public static let separator = "||"

    /// The prefix, separator included; "" for `keyPrefix: none` (or `appid` with no app ID).
    static func prefix(config: [String: String], store: String, appID: String) -> String {
        switch (config["keyPrefix"] ?? "appid").lowercased() {
        case "none": return ""
        case "appid": return appID.isEmpty ? "" : appID + separator
        case "name": return store + separator
        default: return config["keyPrefix"]! + separator
        }
    }

    /// The stored key of an app key. With a prefix, a key containing "||" is refused (as in Dapr),
    /// so that stored keys map back to exactly one app key.
    static func stored(_ key: String, prefix: String) throws(CallError) -> String {
        guard !prefix.isEmpty else { return key }
        if containsSeparator(key) { throw .invalidRequest("input key '\(key)' can't contain '\(separator)'") }
        return prefix + key
    }

    /// True when `key` holds "||". Compares bytes (`String.contains(String)` goes through the string
    /// processing library's generic search, a few percent of a GetState's CPU).
    private static func containsSeparator(_ key: String) -> Bool {
        var afterBar = false
        for byte in key.utf8 {
            let isBar = byte == UInt8(ascii: "|")
            if isBar && afterBar { return true }
            afterBar = isBar
        }
        return false
    }

    /// The app key of a stored key (bulk answers).
    static func appKey(_ storedKey: String, prefix: String) -> String {
        storedKey.hasPrefix(prefix) ? String(storedKey.dropFirst(prefix.count)) : storedKey
    }
}
