import Engine
import NIOCore
import NIOHTTP1
import PluginHost
import ServingCore

/// The handlers of the app API over HTTP. Each parses and validates its request first (a failure there
/// is a rejected call), then makes its store calls through telemetry, which classifies their failures.
/// Path parameters arrive decoded (`AppHTTPRoute`); a handler runs on its connection's event loop.
struct AppHTTPAPI: Sendable {
    let engine: Engine
    let telemetry: Telemetry
    let secrets: SecretsAPI
    let configuration: ConfigurationAPI
    let pubsub: PubsubAPI
    /// Delivers HTTP configuration subscriptions to the app; nil without an app channel.
    let updateDelivery: ConfigurationUpdateDelivery?

    // MARK: - state

    /// `POST /v1.0/state/{store}`: saves the items in order; the first failure answers.
    func saveState(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        let setRequests = try await validating(.state, store, "save") { () async throws(APIFailure) in
            try request.decodeJSON([StateItemBody].self).map { item throws(APIFailure) in try item.setRequest() }
        }
        for setRequest in setRequests {
            _ = try await telemetry.call(.state, store, "save", daprOperation: "STATE_SAVE") { () async throws(CallError) in
                try await engine.setState(store: store, setRequest)
            }
        }
        return .noContent
    }

    /// `GET /v1.0/state/{store}/{key}`: the stored bytes as they are, ETag and `metadata.*` headers; 204 when missing.
    func getState(_ request: HTTPServerRequest, store: String, key: String) async throws(APIFailure) -> HTTPServerResponse {
        let (key, consistency) = try await validating(.state, store, "get") { () async throws(APIFailure) in
            (try StateRequests.key(key),
             try StateConsistency(daprName: request.queryValue("consistency")))
        }
        let metadata = request.queryMetadata
        let state = try await telemetry.call(.state, store, "get", daprOperation: "STATE_GET") { () async throws(CallError) in
            try await engine.getState(store: store, key: key, consistency: consistency, metadata: metadata)
        }.value
        guard state.found else { return .noContent }
        var headers = HTTPHeaders()
        if let etag = state.etag { headers.replaceOrAddLegalized(name: "ETag", value: etag) }
        for (name, value) in state.metadata {
            headers.replaceOrAddLegalized(name: "metadata.\(name)", value: value)
        }
        return .json(bytes: state.value, headers: headers)
    }

    /// `DELETE /v1.0/state/{store}/{key}`: etag from If-Match, options and metadata from the query.
    func deleteState(_ request: HTTPServerRequest, store: String, key: String) async throws(APIFailure) -> HTTPServerResponse {
        let deleteRequest = try await validating(.state, store, "delete") { () async throws(APIFailure) in
            try StateRequests.delete(
                key: key, etag: request.header("If-Match"),
                concurrency: try StateConcurrency(daprName: request.queryValue("concurrency")),
                consistency: try StateConsistency(daprName: request.queryValue("consistency")),
                metadata: request.queryMetadata)
        }
        _ = try await telemetry.call(.state, store, "delete", daprOperation: "STATE_DELETE") { () async throws(CallError) in
            try await engine.deleteState(store: store, deleteRequest)
        }
        return .noContent
    }

    /// `POST /v1.0/state/{store}/bulk`: one item per key, in order.
    func bulkGetState(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        let (body, keys) = try await validating(.state, store, "bulk_get") { () async throws(APIFailure) in
            let body = try request.decodeJSON(BulkGetBody.self)
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
    func transactState(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        let (operations, metadata) = try await validating(.state, store, "transaction") { () async throws(APIFailure) in
            let body = try request.decodeJSON(TransactionBody.self)
            return (try body.stateOperations(), body.metadata ?? [:])
        }
        _ = try await telemetry.call(.state, store, "transaction", daprOperation: "STATE_TRANSACTION") { () async throws(CallError) in
            try await engine.transactState(store: store, operations, metadata: metadata)
        }
        return .noContent
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
    func tryLock(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        let lock = try await validating(.lock, store, "try_lock") { () async throws(APIFailure) in
            try TryLockBody(request).validated(store: store)
        }
        let acquired = try await telemetry.call(.lock, store, "try_lock", daprOperation: "TRY_LOCK") { () async throws(CallError) in
            try await engine.tryLock(store: store, resource: lock.resource, owner: lock.owner, expiryInSeconds: lock.expiryInSeconds)
        }.value
        // Built per call: a shared answer's buffers would be retained and released by both loops on every call.
        return .json(ByteBuffer(staticString: acquired ? #"{"success":true}"# : #"{"success":false}"#))
    }

    /// `POST /v1.0-alpha1/unlock/{store}` → `{"status":..}`.
    func unlock(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        let lock = try await validating(.lock, store, "unlock") { () async throws(APIFailure) in
            try UnlockBody(request).validated(store: store)
        }
        let status = try await telemetry.call(.lock, store, "unlock", daprOperation: "UNLOCK") { () async throws(CallError) in
            try await engine.unlock(store: store, resource: lock.resource, owner: lock.owner)
        }.value
        return .json(UnlockResponseBody(status: status.rawValue))
    }

    // MARK: - metadata

    /// `GET /v1.0/metadata`: the app ID and the components being served.
    func metadata(appID: String?) -> HTTPServerResponse {
        let components = engine.registeredComponents.map { registered in
            let (name, version) = PluginID.split(registered.plugin)
            return MetadataResponseBody.Component(name: registered.key.name, type: "\(registered.key.kind.daprBuildingBlock).\(name)", version: version,
                                                  capabilities: registered.capabilities.isEmpty ? nil : registered.capabilities)
        }
        return .json(MetadataResponseBody(id: appID, components: components))
    }

    // MARK: - output bindings (declared operations)

    /// `POST /v1.0/bindings/{name}` with `{"operation": .., "data": .., "metadata": ..}`: the operation's
    /// results as a JSON object (200), or 204 when it has none. `data` is the JSON object of arguments (for an
    /// operation whose only parameter is bytes: a JSON string's text, or any other JSON value's bytes).
    func invokeBinding(_ request: HTTPServerRequest, name: String) async throws(APIFailure) -> HTTPServerResponse {
        // Two reads of a small body: the operation first, then `data` straight into the declared types.
        let operation = try request.decodeJSON(InvokeBindingOperation.self).operation ?? ""
        let (key, declaration) = try BindingCalls.resolve(engine, name: name, operation: operation)
        let arguments = try await validating(key.kind, key.name, declaration.name) { () async throws(APIFailure) in
            if BindingCalls.rawPayloadParameter(of: declaration) != nil || declaration.parameters.isEmpty {
                return try BindingCalls.arguments(try request.decodeJSON(InvokeBindingBody.self).dataBytes, for: declaration)
            }
            guard case .bytes(let body) = request.body else { throw APIFailure.badRequest("HTTP body is too large") }
            do {
                return try BindingCalls.decode(InvokeBindingData.self, from: Array(body.readableBytesView), for: declaration).data.values
            } catch {
                // `data` may also be a JSON string holding the object (what some clients send): its text is the JSON.
                return try BindingCalls.arguments(try request.decodeJSON(InvokeBindingBody.self).dataBytes, for: declaration)
            }
        }
        let results = try await telemetry.call(key.kind, key.name, declaration.name, daprOperation: "INVOKE_OUTPUT_BINDING") { () async throws(CallError) in
            try await engine.invoke(key, operation: declaration.name, arguments: arguments)
        }.value
        return results.isEmpty ? .noContent : .json(bytes: BindingCalls.data(results, for: declaration))
    }

    // MARK: - secrets

    /// `GET /v1.0/secrets/{store}/{key}` (`metadata.X=Y` query parameters to the store) → the secret's values,
    /// `{"name": "value", …}`.
    func getSecret(_ request: HTTPServerRequest, store: String, key: String) async throws(APIFailure) -> HTTPServerResponse {
        .json(try await secrets.get(store: store, key: key, metadata: request.queryMetadata))
    }

    /// `GET /v1.0/secrets/{store}/bulk` → `{"secret": {"name": "value", …}, …}`, without the secrets the app's
    /// scopes deny.
    func bulkGetSecrets(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        .json(try await secrets.bulk(store: store, metadata: request.queryMetadata))
    }

    // MARK: - configuration

    /// `GET /v1.0/configuration/{store}?key=a&key=b` (no `key`: every item; `metadata.X=Y` to the store) →
    /// `{"a": {"value": …, "version": …, "metadata": {…}}, …}` (empty fields left out, as Dapr's encoding of
    /// its items); 204 when no item asked for exists, as Dapr.
    func getConfiguration(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        let keys = request.queryItems.filter { $0.name == "key" }.map(\.value)
        let items = try await configuration.get(store: store, keys: keys, metadata: request.queryMetadata)
        guard !items.isEmpty else { return .noContent }
        return .json(items.mapValues(ConfigurationItemBody.init))
    }

    /// `GET /v1.0/configuration/{store}/subscribe?key=a&key=b` (no `key`: every item; `metadata.X=Y` to the
    /// store) → `{"id": …}`. As Dapr, the updates go to the app: each changed item is POSTed to
    /// `/configuration/{store}/{key}` on its app port (`ConfigurationUpdateDelivery`) until
    /// `…/{id}/unsubscribe`. Without an app channel (no `--app-port`) this answers as Dapr does without one
    /// (after the same store checks): 500 ERR_APP_CHANNEL_NIL, also naming gRPC SubscribeConfiguration.
    func subscribeConfiguration(_ request: HTTPServerRequest, store: String) async throws(APIFailure) -> HTTPServerResponse {
        if let missing = configuration.missingStoreFailure(store) {
            telemetry.rejected(.configuration, store, "subscribe", missing)
            throw missing
        }
        guard let updateDelivery else {
            return .error(code: "ERR_APP_CHANNEL_NIL",
                          message: "app channel is not initialized. cannot subscribe to configuration updates: molt has no HTTP app channel "
                              + "to deliver HTTP subscription updates to (serve with --app-port and --app-protocol http); or subscribe with gRPC "
                              + "SubscribeConfiguration instead",
                          status: .internalServerError)
        }
        let keys = request.queryItems.filter { $0.name == "key" }.map(\.value)
        let subscription = try await configuration.subscribe(store: store, keys: keys, metadata: request.queryMetadata)
        updateDelivery.start(subscription, store: store)
        return .json(SubscribeConfigurationBody(id: subscription.id))
    }

    /// `GET /v1.0/configuration/{store}/{id}/unsubscribe` → `{"ok": true}`; for an id no subscription of the
    /// store has, 500 `{"message": …}` (Dapr's body: its `ok` is left out when false).
    func unsubscribeConfiguration(_ request: HTTPServerRequest, store: String, id: String) throws(APIFailure) -> HTTPServerResponse {
        if let missing = configuration.missingStoreFailure(store) {
            telemetry.rejected(.configuration, store, "unsubscribe", missing)
            throw missing
        }
        if configuration.unsubscribe(store: store, id: id) {
            return .json(UnsubscribeConfigurationBody(ok: true, message: nil))
        }
        return .json(UnsubscribeConfigurationBody(ok: nil, message: APIFailure.configurationUnsubscribeMessage(id: id)),
                     status: .internalServerError)
    }

    // MARK: - pub/sub

    /// `POST /v1.0/publish/{pubsub}/{topic}` (`metadata.X=Y` query parameters, e.g. `metadata.rawPayload=true`):
    /// the body, with its `Content-Type`, in a CloudEvent unless raw (`CloudEvents`); the caller's `traceparent`
    /// and `tracestate` headers go in the event. 204, as Dapr.
    func publish(_ request: HTTPServerRequest, pubsub: String, topic: String) async throws(APIFailure) -> HTTPServerResponse {
        guard case .bytes(let body) = request.body else {
            throw APIFailure.pubsubMessageTooLarge(topic: topic, pubsub: pubsub, size: AppAPILimits.maxHTTPBodyBytes + 1)
        }
        let entry = PubsubAPI.Entry(data: Array(body.readableBytesView), contentType: request.header("Content-Type") ?? "",
                                    metadata: request.queryMetadata)
        try await self.pubsub.publish(pubsub: pubsub, topic: topic, entry, traceParent: request.header("traceparent"),
                                      traceState: request.header("tracestate"))
        return .noContent
    }

    /// `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}` with `[{"entryId", "event", "contentType", "metadata"}]`:
    /// 204 when every entry is published; else, as Dapr, 500 with `{"failedEntries": [{"entryId", "error"}],
    /// "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"}` (the others stay published). An entry's `event` is JSON for a
    /// JSON or CloudEvents content type, base64 for `application/octet-stream`, else a string (Dapr's
    /// ConvertEventToBytes).
    func bulkPublish(_ request: HTTPServerRequest, pubsub: String, topic: String) async throws(APIFailure) -> HTTPServerResponse {
        let entries = try await validating(.pubsub, pubsub, "publish") { () async throws(APIFailure) in
            let body: [BulkPublishEntryBody]
            do throws(APIFailure) {
                body = try request.decodeJSON([BulkPublishEntryBody].self)
            } catch {
                throw APIFailure.pubsubEvents(topic: topic, pubsub: pubsub, error.message)
            }
            return try body.map { entry throws(APIFailure) in
                (id: entry.entryId ?? "", entry: PubsubAPI.Entry(data: try entry.eventBytes(topic: topic, pubsub: pubsub),
                                                                 contentType: entry.contentType ?? "", metadata: entry.metadata ?? [:]))
            }
        }
        let failed = try await self.pubsub.bulkPublish(pubsub: pubsub, topic: topic, entries: entries, metadata: request.queryMetadata,
                                                       traceParent: request.header("traceparent"), traceState: request.header("tracestate"))
        guard failed.isEmpty else {
            return .json(BulkPublishFailureBody(failedEntries: failed.map { BulkPublishFailureBody.Entry(entryId: $0.entryID, error: $0.error) },
                                                errorCode: "ERR_PUBSUB_PUBLISH_MESSAGE"),
                         status: .internalServerError)
        }
        return .noContent
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
