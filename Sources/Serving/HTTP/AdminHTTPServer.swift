import Engine
import Hummingbird
import Logging
import Prometheus
import ServingCore

/// The admin endpoints (default 127.0.0.1:34999), on Layotto's actuator paths and JSON convention:
///
/// - `GET /actuator/health/liveness`: 200 `{"status":"UP"}` while the process runs.
/// - `GET /actuator/health/readiness`: 200 `{"status":"UP","components":{...}}` when `readiness()`, else
///   503 with `"status":"DOWN"`; each component as `"<kind>/<name>":{"generation":N,"plugin":"name@version"}`.
/// - `GET /metrics`: Prometheus text exposition of `registry`, gauges refreshed first.
public func makeAdminHTTPServer(engine: Engine, telemetry: Telemetry, registry: PrometheusCollectorRegistry, address: ListenAddress,
                                readiness: @escaping @Sendable () -> Bool,
                                logger: Logger) -> Application<RouterResponder<BasicRequestContext>> {
    let router = Router()
    router.get("/actuator/health/liveness") { _, _ in
        Response.json(HealthResponseBody(status: "UP", components: nil))
    }
    router.get("/actuator/health/readiness") { _, _ in
        let ready = readiness()
        var components: [String: HealthResponseBody.Component] = [:]
        for status in engine.components {
            components[status.key.description] = .init(generation: status.generation, plugin: status.plugin)
        }
        return Response.json(HealthResponseBody(status: ready ? "UP" : "DOWN", components: components),
                             status: ready ? .ok : .serviceUnavailable)
    }
    router.get("/metrics") { _, _ in
        telemetry.refreshGauges()
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
    return Application(router: router, configuration: ApplicationConfiguration(
        address: .hostname(address.host, port: address.port), serverName: nil), logger: logger)
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
