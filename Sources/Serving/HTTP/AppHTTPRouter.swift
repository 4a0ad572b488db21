import AppChannel
import Engine
import Logging
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import ServingCore

/// The app API over HTTP, on Dapr's paths and with Dapr's bodies (default port 3500).
///
/// Health routes are always open; with `apiToken` every other route needs the `dapr-api-token` header.
/// Every store call goes through `telemetry.call`; requests refused before one are counted with
/// `telemetry.rejected`. `secretScopes` limits the secrets the app may read. The returned Service serves until graceful shutdown, then stops accepting, lets
/// the requests in flight finish and returns (`HTTPServer`). `appID` is the `id` of `GET /v1.0/metadata`
/// (omitted when nil). `appChannel` (molt's client to the app on its app port) delivers HTTP configuration
/// subscriptions; without it HTTP subscribe answers ERR_APP_CHANNEL_NIL, as Dapr without an app channel.
public func makeAppHTTPServer(engine: Engine, telemetry: Telemetry, address: ListenAddress, apiToken: SharedSecret?,
                              readiness: @escaping @Sendable () -> Bool, logger: Logger, appID: String? = nil,
                              secretScopes: SecretScopes = .allowAll, appChannel: AppChannel? = nil,
                              eventLoopGroup: MultiThreadedEventLoopGroup = .singleton) -> some Service {
    let api = AppHTTPAPI(engine: engine, telemetry: telemetry, secrets: SecretsAPI(engine: engine, telemetry: telemetry, scopes: secretScopes),
                         configuration: ConfigurationAPI(engine: engine, telemetry: telemetry),
                         pubsub: PubsubAPI(engine: engine, telemetry: telemetry, appID: appID ?? ""),
                         updateDelivery: appChannel.map { ConfigurationUpdateDelivery(appChannel: $0, logger: logger) })
    let responder = AppHTTPResponder(api: api, apiToken: apiToken,
                                     readiness: readiness, appID: appID, logger: logger)
    return HTTPServer(name: "app HTTP API", responder: responder, address: address, maxBodyBytes: AppAPILimits.maxHTTPBodyBytes,
                      eventLoopGroup: eventLoopGroup, logger: logger)
}

/// A route of the app HTTP API, matched on the method and the non-empty path segments as sent
/// (case-sensitive; `//v1.0/metadata/` is `/v1.0/metadata`). The captured segments are still encoded.
enum AppHTTPRoute {
    case healthz
    case healthzOutbound
    case saveState(store: Substring)
    case getState(store: Substring, key: Substring)
    case deleteState(store: Substring, key: Substring)
    case bulkGetState(store: Substring)
    case transactState(store: Substring)
    case tryLock(store: Substring)
    case unlock(store: Substring)
    case invokeBinding(name: Substring)
    case getSecret(store: Substring, key: Substring)
    case bulkGetSecrets(store: Substring)
    case getConfiguration(store: Substring)
    case subscribeConfiguration(store: Substring)
    case unsubscribeConfiguration(store: Substring, id: Substring)
    /// The topic is every segment after the pubsub, joined by `/` (Dapr's `{topic:*}`); empty when none.
    case publish(pubsub: Substring, topic: [Substring])
    case bulkPublish(pubsub: Substring, topic: [Substring])
    case metadata

    /// nil: no route has this path, or not with this method (both are a 404, as on Hummingbird).
    init?(method: HTTPMethod, segments: [Substring]) {
        switch (method, segments.count) {
        case (.GET, 2) where segments[0] == "v1.0" && segments[1] == "healthz": self = .healthz
        case (.GET, 3) where segments[0] == "v1.0" && segments[1] == "healthz" && segments[2] == "outbound": self = .healthzOutbound
        case (.GET, 2) where segments[0] == "v1.0" && segments[1] == "metadata": self = .metadata
        case (.POST, 3) where segments[0] == "v1.0" && segments[1] == "state": self = .saveState(store: segments[2])
        case (_, 4) where segments[0] == "v1.0" && segments[1] == "state":
            let (store, key) = (segments[2], segments[3])
            // "bulk" and "transaction" are POST routes; GET and DELETE serve the keys of those names.
            switch method {
            case .GET: self = .getState(store: store, key: key)
            case .DELETE: self = .deleteState(store: store, key: key)
            case .POST where key == "bulk": self = .bulkGetState(store: store)
            case .POST where key == "transaction": self = .transactState(store: store)
            default: return nil
            }
        case (.POST, 3) where segments[0] == "v1.0-alpha1" && segments[1] == "lock": self = .tryLock(store: segments[2])
        case (.POST, 3) where segments[0] == "v1.0-alpha1" && segments[1] == "unlock": self = .unlock(store: segments[2])
        case (.POST, 3) where segments[0] == "v1.0" && segments[1] == "bindings": self = .invokeBinding(name: segments[2])
        // As Dapr's routes `secrets/{secretStoreName}/bulk` (first) and `secrets/{secretStoreName}/{key}`: the key is
        // one segment (a '/' in it is sent as %2F), so a secret named "bulk" cannot be read alone over HTTP.
        case (.GET, 4) where segments[0] == "v1.0" && segments[1] == "secrets":
            self = segments[3] == "bulk" ? .bulkGetSecrets(store: segments[2]) : .getSecret(store: segments[2], key: segments[3])
        // Dapr serves the configuration API under both v1.0 and v1.0-alpha1.
        case (.GET, 3...5) where (segments[0] == "v1.0" || segments[0] == "v1.0-alpha1") && segments[1] == "configuration":
            switch segments.count {
            case 3: self = .getConfiguration(store: segments[2])
            case 4 where segments[3] == "subscribe": self = .subscribeConfiguration(store: segments[2])
            case 5 where segments[4] == "unsubscribe": self = .unsubscribeConfiguration(store: segments[2], id: segments[3])
            default: return nil
            }
        case (.POST, 3...) where segments[0] == "v1.0" && segments[1] == "publish":
            self = .publish(pubsub: segments[2], topic: Array(segments[3...]))
        case (.POST, 4...) where segments[0] == "v1.0-alpha1" && segments[1] == "publish" && segments[2] == "bulk":
            self = .bulkPublish(pubsub: segments[3], topic: Array(segments[4...]))
        default: return nil
        }
    }
}

/// Answers one whole request of the app API: the health routes (always open), then the token check
/// for everything else, a 404 included (401 ERR_UNAUTHORIZED, as Dapr), then the route's handler; an
/// `APIFailure` becomes Dapr's JSON error.
/// Runs on the request's event loop (the task `HTTPChannelHandler` starts).
///
/// A class: every request's task holds the responder, and both loops serve requests at once. Copying a
/// struct of a dozen references (engine, telemetry, ...) retained each of them, shared objects whose
/// counts then moved between the two CPUs on every call; a class is one reference.
final class AppHTTPResponder: HTTPResponder {
    let api: AppHTTPAPI
    let apiToken: SharedSecret?
    let readiness: @Sendable () -> Bool
    /// The `id` of `GET /v1.0/metadata` (omitted when nil).
    let appID: String?
    let logger: Logger

    init(api: AppHTTPAPI, apiToken: SharedSecret?, readiness: @escaping @Sendable () -> Bool, appID: String?, logger: Logger) {
        self.api = api
        self.apiToken = apiToken
        self.readiness = readiness
        self.appID = appID
        self.logger = logger
    }

    func respond(to request: HTTPServerRequest) async -> HTTPServerResponse {
        let route = AppHTTPRoute(method: request.method, segments: request.pathSegments)
        switch route {
        case .healthz:
            return readiness() ? .noContent
                : .error(code: "ERR_HEALTH_NOT_READY", message: "dapr is not ready", status: .internalServerError)
        case .healthzOutbound:
            return readiness() ? .noContent
                : .error(code: "ERR_OUTBOUND_HEALTH_NOT_READY", message: "dapr outbound is not ready", status: .internalServerError)
        default:
            break
        }
        if let apiToken, !apiToken.matches(request.header(TokenHeader.app)) {
            return .error(code: "ERR_UNAUTHORIZED", message: "invalid api token", status: .unauthorized)
        }
        guard let route else { return .notFound }
        do throws(APIFailure) {
            return try await serve(route, request)
        } catch {
            logger.debug("app call failed", metadata: [
                "path": "\(request.path)", "errorCode": "\(error.daprErrorCode)", "error": "\(error.message)",
            ])
            return .failure(error)
        }
    }

    private func serve(_ route: AppHTTPRoute, _ request: HTTPServerRequest) async throws(APIFailure) -> HTTPServerResponse {
        switch route {
        case .healthz, .healthzOutbound:
            return .noContent  // answered by `respond`, before the token check
        case .saveState(let store):
            return try await api.saveState(request, store: try pathParameter(store, name: "store"))
        case .getState(let store, let key):
            return try await api.getState(request, store: try pathParameter(store, name: "store"), key: try pathParameter(key, name: "key"))
        case .deleteState(let store, let key):
            return try await api.deleteState(request, store: try pathParameter(store, name: "store"), key: try pathParameter(key, name: "key"))
        case .bulkGetState(let store):
            return try await api.bulkGetState(request, store: try pathParameter(store, name: "store"))
        case .transactState(let store):
            return try await api.transactState(request, store: try pathParameter(store, name: "store"))
        case .tryLock(let store):
            return try await api.tryLock(request, store: try pathParameter(store, name: "store"))
        case .unlock(let store):
            return try await api.unlock(request, store: try pathParameter(store, name: "store"))
        case .invokeBinding(let name):
            return try await api.invokeBinding(request, name: try pathParameter(name, name: "binding name"))
        case .getSecret(let store, let key):
            return try await api.getSecret(request, store: try pathParameter(store, name: "store"), key: try pathParameter(key, name: "key"))
        case .bulkGetSecrets(let store):
            return try await api.bulkGetSecrets(request, store: try pathParameter(store, name: "store"))
        case .getConfiguration(let store):
            return try await api.getConfiguration(request, store: try pathParameter(store, name: "store"))
        case .subscribeConfiguration(let store):
            return try await api.subscribeConfiguration(request, store: try pathParameter(store, name: "store"))
        case .unsubscribeConfiguration(let store, let id):
            return try api.unsubscribeConfiguration(request, store: try pathParameter(store, name: "store"), id: try pathParameter(id, name: "id"))
        case .publish(let pubsub, let topic):
            return try await api.publish(request, pubsub: try pathParameter(pubsub, name: "pubsub"), topic: try topicParameter(topic))
        case .bulkPublish(let pubsub, let topic):
            return try await api.bulkPublish(request, pubsub: try pathParameter(pubsub, name: "pubsub"), topic: try topicParameter(topic))
        case .metadata:
            return api.metadata(appID: appID)
        }
    }
}

/// A topic captured as the path's remaining segments, each percent-decoded, joined by `/`.
private func topicParameter(_ segments: [Substring]) throws(APIFailure) -> String {
    try segments.map { segment throws(APIFailure) in try pathParameter(segment, name: "topic") }.joined(separator: "/")
}
