import AppChannel
import Engine
import Logging
import PluginHost
import ServingCore

/// Delivers the updates of an HTTP configuration subscription to the app through the app channel, as Dapr
/// does (dapr/dapr `pkg/api/http/http.go`, `configurationEventHandler.updateEventHandler`): for each key of an
/// update, `POST /configuration/{store}/{key}` with `Content-Type: application/json` and the whole update as
/// the body, `{"id": subscription id, "items": {key: {"value", "version", "metadata"}}}` (components-contrib's
/// `configuration.UpdateEvent`; empty fields left out, so a deleted item is `{}`), newline-terminated as Go's
/// `json.Encoder` writes it.
///
/// Dapr counts any status but 200 as a failure, logs it ("error sending configuration item to the app") and
/// goes on: the subscription stays, the item is not sent again (no retry without a resiliency policy), and the
/// next key or update is delivered. molt does the same, with the log rate-limited per subscription.
///
/// Thread: one task per subscription (the cooperative pool), which awaits each POST in order; the I/O is on the
/// app channel's event loops. The task ends when the subscription ends (unsubscribe ends its stream).
struct ConfigurationUpdateDelivery: Sendable {
    let appChannel: AppChannel
    let logger: Logger

    /// Starts delivering `subscription`'s updates; returns at once.
    func start(_ subscription: ConfigurationSubscription, store: String) {
        let (appChannel, logger) = (appChannel, logger)
        Task {
            var failures = RateLimitedLog(interval: .seconds(10))
            for await items in subscription.updates {
                let body = Self.body(id: subscription.id, items: items)
                for item in items {
                    let path = Self.path(store: store, key: item.key)
                    let problem: String?
                    do {
                        let response = try await appChannel.post(path: path, body: body)
                        problem = response.status == 200 ? nil : "the app answered status \(response.status)"
                    } catch {
                        problem = "\(error)"
                    }
                    guard let problem else { continue }
                    failures.record { suppressed in
                        logger.warning("error sending configuration item to the app; the subscription goes on", metadata: [
                            "store": "\(store)", "subscription": "\(subscription.id)", "path": "\(path)", "error": "\(problem)",
                            "failures_not_logged": "\(suppressed)",
                        ])
                    }
                }
            }
        }
    }

    /// `/configuration/{store}/{key}`: Dapr joins the names as they are; molt percent-encodes what a path
    /// segment cannot hold as is (space, `?`, `#`, `%`, non-ASCII, …), so the app's router sees one path.
    static func path(store: String, key: String) -> String {
        "/configuration/\(percentEncoded(store))/\(percentEncoded(key))"
    }

    static func body(id: String, items: [ConfigurationItem]) -> [UInt8] {
        let event = UpdateEventBody(id: id, items: Dictionary(items.map { ($0.key, ConfigurationItemBody($0)) }, uniquingKeysWith: { $1 }))
        // Encoding strings and string maps cannot fail.
        let json = (try? JSONCoding.encoder.encode(event)).map(Array.init) ?? Array(#"{"id":""}"#.utf8)
        return json + [UInt8(ascii: "\n")]
    }

    private static let pathSafe = Array("-._~!$&'()*+,;=:@/".utf8)

    /// RFC 3986 pchar (unreserved, sub-delims, ':' and '@') and '/' stay as they are.
    private static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            if (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || pathSafe.contains(byte) {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }
}

/// components-contrib's `configuration.UpdateEvent` as JSON.
struct UpdateEventBody: Encodable {
    let id: String
    let items: [String: ConfigurationItemBody]
}

/// Logs the first of a run of failures, then at most one per `interval`, saying how many were not logged.
/// A value owned by one task (no locking).
struct RateLimitedLog {
    let interval: Duration
    private var lastLogged: ContinuousClock.Instant?
    private var suppressed = 0

    init(interval: Duration) {
        self.interval = interval
    }

    /// Calls `log` with the number of failures not logged since the last call, or counts this one.
    mutating func record(_ log: (Int) -> Void) {
        let now = ContinuousClock.now
        if let lastLogged, now - lastLogged < interval {
            suppressed += 1
            return
        }
        log(suppressed)
        lastLogged = now
        suppressed = 0
    }
}
