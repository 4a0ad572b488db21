import Engine
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import ServingCore

/// The admin endpoints (default 127.0.0.1:34999), on Layotto's actuator paths and JSON convention, with
/// no token (`AdminHTTPResponder`). The returned Service serves until graceful shutdown, then stops
/// accepting, lets the requests in flight finish and returns (`HTTPServer`).
public func makeAdminHTTPServer(engine: Engine, telemetry: Telemetry, registry: PrometheusCollectorRegistry, address: ListenAddress,
                                readiness: @escaping @Sendable () -> Bool,
                                logger: Logger) -> some Service {
    let responder = AdminHTTPResponder(engine: engine, telemetry: telemetry, registry: registry, readiness: readiness)
    return HTTPServer(name: "admin HTTP API", responder: responder, address: address, maxBodyBytes: AdminHTTPResponder.maxBodyBytes,
                      eventLoopGroup: .singleton, logger: logger)
}

/// Answers the admin endpoints:
///
/// - `GET /actuator/health/liveness`: 200 `{"status":"UP"}` while the process runs.
/// - `GET /actuator/health/readiness`: 200 `{"status":"UP","components":{...}}` when `readiness()`, else
///   503 with `"status":"DOWN"`; each component as `"<kind>/<name>":{"generation":N,"plugin":"name@version"}`.
/// - `GET /metrics`: Prometheus text exposition of `registry`, gauges refreshed first.
///
/// Paths are matched as the app API's (`AppHTTPRoute`): non-empty segments as sent, case-sensitive, the
/// query ignored. Any other path, and any other method on these paths (HEAD included), is a bare 404, as
/// molt's earlier Hummingbird router answered. Every answer is cheap and never waits: it runs on the loop.
struct AdminHTTPResponder: HTTPResponder {
    /// The endpoints read no body: one longer than this is not collected (`HTTPServerRequest.Body.tooLarge`).
    static let maxBodyBytes = 64 << 10

    let engine: Engine
    let telemetry: Telemetry
    let registry: PrometheusCollectorRegistry
    let readiness: @Sendable () -> Bool

    func respond(to request: HTTPServerRequest) async -> HTTPServerResponse {
        guard request.method == .GET else { return .notFound }
        switch request.pathSegments {
        case ["actuator", "health", "liveness"]:
            return .json(HealthResponseBody(status: "UP", components: nil))
        case ["actuator", "health", "readiness"]:
            let ready = readiness()
            var components: [String: HealthResponseBody.Component] = [:]
            for status in engine.components {
                components[status.key.description] = .init(generation: status.generation, plugin: status.plugin)
            }
            return .json(HealthResponseBody(status: ready ? "UP" : "DOWN", components: components),
                         status: ready ? .ok : .serviceUnavailable)
        case ["metrics"]:
            telemetry.refreshGauges()
            return HTTPServerResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                                      body: ByteBuffer(bytes: registry.emitToBuffer()))
        default:
            return .notFound
        }
    }
}

/// Layotto's health body.
struct HealthResponseBody: Encodable {
    struct Component: Encodable {
        var generation: UInt64
        var plugin: String
    }

    /// UP or DOWN.
    var status: String
    var components: [String: Component]?
}
