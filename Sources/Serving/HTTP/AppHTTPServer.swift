import Engine
import Hummingbird
import Logging
import PluginHost
import ServingCore

/// The app API over HTTP, on Dapr's paths and with Dapr's bodies (default port 3500).
///
/// Health routes are always open; with `apiToken` every other route needs the `dapr-api-token` header.
/// Every store call goes through `telemetry.call`; requests refused before one are counted with
/// `telemetry.rejected`. The returned application is a Service: on graceful shutdown it stops accepting
/// and lets in-flight requests finish. `appID` is the `id` of `GET /v1.0/metadata` (omitted when nil).
public func makeAppHTTPServer(engine: Engine, telemetry: Telemetry, address: ListenAddress, apiToken: SharedSecret?,
                              readiness: @escaping @Sendable () -> Bool, logger: Logger,
                              appID: String? = nil) -> Application<RouterResponder<BasicRequestContext>> {
    let router = Router()
    // Added before the token middleware: the middleware applies only to routes added after it.
    router.get("/v1.0/healthz") { _, _ in
        readiness() ? Response(status: .noContent)
            : .error(code: "ERR_HEALTH_NOT_READY", message: "dapr is not ready", status: .internalServerError)
    }
    router.get("/v1.0/healthz/outbound") { _, _ in
        readiness() ? Response(status: .noContent)
            : .error(code: "ERR_OUTBOUND_HEALTH_NOT_READY", message: "dapr outbound is not ready", status: .internalServerError)
    }
    if let apiToken { router.add(middleware: AppTokenMiddleware(token: apiToken)) }
    router.add(middleware: APIFailureMiddleware())

    let api = AppHTTPAPI(engine: engine, telemetry: telemetry)
    router.post("/v1.0/state/:store") { request, context in try await api.saveState(request, context) }
    router.get("/v1.0/state/:store/:key") { request, context in
        try await api.getState(request, store: try context.pathParameter("store"), key: try context.pathParameter("key"))
    }
    router.delete("/v1.0/state/:store/:key") { request, context in
        try await api.deleteState(request, store: try context.pathParameter("store"), key: try context.pathParameter("key"))
    }
    router.post("/v1.0/state/:store/bulk") { request, context in try await api.bulkGetState(request, context) }
    router.post("/v1.0/state/:store/transaction") { request, context in try await api.transactState(request, context) }
    // The literal segments above shadow keys named "bulk" and "transaction" for every method: serve those too.
    for literalKey in ["bulk", "transaction"] {
        router.get("/v1.0/state/:store/\(literalKey)") { request, context in
            try await api.getState(request, store: try context.pathParameter("store"), key: literalKey)
        }
        router.delete("/v1.0/state/:store/\(literalKey)") { request, context in
            try await api.deleteState(request, store: try context.pathParameter("store"), key: literalKey)
        }
    }
    router.post("/v1.0-alpha1/lock/:store") { request, context in try await api.tryLock(request, context) }
    router.post("/v1.0-alpha1/unlock/:store") { request, context in try await api.unlock(request, context) }
    router.get("/v1.0/metadata") { _, _ in api.metadata(appID: appID) }

    return Application(router: router, configuration: ApplicationConfiguration(
        address: .hostname(address.host, port: address.port), serverName: nil), logger: logger)
}

/// Refuses requests without the app API token with 401 ERR_UNAUTHORIZED, as Dapr does.
struct AppTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    static var header: HeaderName { HeaderName(TokenHeader.app)! }
    let token: SharedSecret

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        guard token.matches(request.headers[Self.header]) else {
            return .error(code: "ERR_UNAUTHORIZED", message: "invalid api token", status: .unauthorized)
        }
        return try await next(request, context)
    }
}

/// Turns an `APIFailure` thrown by a handler into Dapr's JSON error answer.
struct APIFailureMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let failure as APIFailure {
            context.logger.debug("app call failed", metadata: [
                "path": "\(request.uri.path)", "errorCode": "\(failure.daprErrorCode)", "error": "\(failure.message)",
            ])
            return .failure(failure)
        }
    }
}

/// The handlers of the app API. Each parses and validates its request first (a failure there is a
/// rejected call), then makes its store calls through telemetry, which classifies their failures.
struct AppHTTPAPI: Sendable {
    let engine: Engine
    let telemetry: Telemetry

    // MARK: - state

    /// `POST /v1.0/state/{store}`: saves the items in order; the first failure answers.
    func saveState(_ request: Request, _ context: some RequestContext) async throws(APIFailure) -> Response {
        let store = try context.pathParameter("store")
        let setRequests = try await validating(.state, store, "save") { () async throws(APIFailure) in
            try await request.decodeJSON([StateItemBody].self).map { item throws(APIFailure) in try item.setRequest() }
        }
        for setRequest in setRequests {
            _ = try await telemetry.call(.state, store, "save", daprOperation: "STATE_SAVE") { () async throws(CallError) in
                try await engine.setState(store: store, setRequest)
            }
        }
        return Response(status: .noContent)
    }

    /// `GET /v1.0/state/{store}/{key}`: the stored bytes as they are, ETag and `metadata.*` headers; 204 when missing.
    func getState(_ request: Request, store: String, key: String) async throws(APIFailure) -> Response {
        let (key, consistency) = try await validating(.state, store, "get") { () async throws(APIFailure) in
            (try StateRequests.key(key),
             try StateConsistency(daprName: request.queryValue("consistency")))
        }
        let metadata = request.queryMetadata
        let state = try await telemetry.call(.state, store, "get", daprOperation: "STATE_GET") { () async throws(CallError) in
            try await engine.getState(store: store, key: key, consistency: consistency, metadata: metadata)
        }.value
        guard state.found else { return Response(status: .noContent) }
        var headers = HTTPFields()
        if let etag = state.etag { headers[.eTag] = etag }
        for (name, value) in state.metadata {
            if let field = HeaderName("metadata.\(name)") { headers[field] = value }
        }
        return .json(bytes: state.value, headers: headers)
    }

    /// `DELETE /v1.0/state/{store}/{key}`: etag from If-Match, options and metadata from the query.
    func deleteState(_ request: Request, store: String, key: String) async throws(APIFailure) -> Response {
        let deleteRequest = try await validating(.state, store, "delete") { () async throws(APIFailure) in
            try StateRequests.delete(
                key: key, etag: request.headers[.ifMatch],
                concurrency: try StateConcurrency(daprName: request.queryValue("concurrency")),
                consistency: try StateConsistency(daprName: request.queryValue("consistency")),
                metadata: request.queryMetadata)
        }
        _ = try await telemetry.call(.state, store, "delete", daprOperation: "STATE_DELETE") { () async throws(CallError) in
            try await engine.deleteState(store: store, deleteRequest)
        }
        return Response(status: .noContent)
    }

    /// `POST /v1.0/state/{store}/bulk`: one item per key, in order.
    func bulkGetState(_ request: Request, _ context: some RequestContext) async throws(APIFailure) -> Response {
        let store = try context.pathParameter("store")
        let (body, keys) = try await validating(.state, store, "bulk_get") { () async throws(APIFailure) in
            let body = try await request.decodeJSON(BulkGetBody.self)
            return (body, try body.keys.map { key throws(APIFailure) in try StateRequests.key(key) })
        }
        let metadata = request.queryMetadata
        let items = try await telemetry.call(.state, store, "bulk_get", daprOperation: "STATE_BULK_GET") { () async throws(CallError) in
            try await engine.bulkGetState(store: store, keys: keys, parallelism: UInt32(clamping: max(0, body.parallelism ?? 0)),
                                          metadata: metadata)
        }.value
        return .json(bytes: Self.bulkGetJSON(items))
    }

    /// `POST /v1.0/state/{store}/transaction`: all operations or none.
    func transactState(_ request: Request, _ context: some RequestContext) async throws(APIFailure) -> Response {
        let store = try context.pathParameter("store")
        let (operations, metadata) = try await validating(.state, store, "transaction") { () async throws(APIFailure) in
            let body = try await request.decodeJSON(TransactionBody.self)
            return (try body.stateOperations(), body.metadata ?? [:])
        }
        _ = try await telemetry.call(.state, store, "transaction", daprOperation: "STATE_TRANSACTION") { () async throws(CallError) in
            try await engine.transactState(store: store, operations, metadata: metadata)
        }
        return Response(status: .noContent)
    }

    /// Dapr's bulk answer, `[{"key":..,"data":..,"etag":..}]`: `data` is the stored JSON spliced in as is
    /// (as a JSON string when the bytes are not JSON); a missing key has only `key`, a failed one `error`.
    static func bulkGetJSON(_ items: [StateBulkItem]) -> [UInt8] {
        func string(_ text: String) -> [UInt8] {
            // A string always encodes.
            (try? JSONCoding.encoder.encode(text)).map(Array.init) ?? Array("\"\"".utf8)
        }
        var json = Array("[".utf8)
        for (index, item) in items.enumerated() {
            if index > 0 { json += ",".utf8 }
            json += #"{"key":"#.utf8 + string(item.key)
            if let error = item.error {
                json += #","error":"#.utf8 + string(error)
            } else if item.found {
                json += #","data":"#.utf8
                json += JSONValue.isValidJSON(item.value) ? item.value : string(String(decoding: item.value, as: UTF8.self))
                if let etag = item.etag { json += #","etag":"#.utf8 + string(etag) }
            }
            json += "}".utf8
        }
        json += "]".utf8
        return json
    }

    // MARK: - lock

    /// `POST /v1.0-alpha1/lock/{store}` → `{"success":..}`.
    func tryLock(_ request: Request, _ context: some RequestContext) async throws(APIFailure) -> Response {
        let store = try context.pathParameter("store")
        let lock = try await validating(.lock, store, "try_lock") { () async throws(APIFailure) in
            try await request.decodeJSON(TryLockBody.self).validated(store: store)
        }
        let acquired = try await telemetry.call(.lock, store, "try_lock", daprOperation: "TRY_LOCK") { () async throws(CallError) in
            try await engine.tryLock(store: store, resource: lock.resource, owner: lock.owner, expiryInSeconds: lock.expiryInSeconds)
        }.value
        return .json(TryLockResponseBody(success: acquired))
    }

    /// `POST /v1.0-alpha1/unlock/{store}` → `{"status":..}`.
    func unlock(_ request: Request, _ context: some RequestContext) async throws(APIFailure) -> Response {
        let store = try context.pathParameter("store")
        let lock = try await validating(.lock, store, "unlock") { () async throws(APIFailure) in
            try await request.decodeJSON(UnlockBody.self).validated(store: store)
        }
        let status = try await telemetry.call(.lock, store, "unlock", daprOperation: "UNLOCK") { () async throws(CallError) in
            try await engine.unlock(store: store, resource: lock.resource, owner: lock.owner)
        }.value
        return .json(UnlockResponseBody(status: status.rawValue))
    }

    // MARK: - metadata

    /// `GET /v1.0/metadata`: the app ID and the components being served.
    func metadata(appID: String?) -> Response {
        let components = engine.registeredComponents.map { registered in
            let (name, version) = PluginID.split(registered.plugin)
            return MetadataResponseBody.Component(name: registered.key.name, type: "\(registered.key.kind.rawValue).\(name)", version: version)
        }
        return .json(MetadataResponseBody(id: appID, components: components))
    }

    // MARK: -

    /// Runs a request's parsing and validation; a failure there is counted as a rejected call.
    private func validating<Value>(_ kind: ComponentKind, _ store: String, _ operation: String,
                                   _ body: () async throws(APIFailure) -> Value) async throws(APIFailure) -> Value {
        do {
            return try await body()
        } catch {
            telemetry.rejected(kind, store, operation, error)
            throw error
        }
    }
}
