import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import MoltProtos

/// Issues the load generator's calls on molt's Dapr gRPC API and records each in a `LoadRecorder`.
/// Immutable after init, so shared by every call task.
struct Caller: Sendable {
    let daprs: [Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>]
    /// Target index (into --target) of each client, for the records.
    let clientTargets: [UInt16]
    let stateStore: String
    let lockStore: String
    let metadata: Metadata
    let options: CallOptions

    init(daprs: [Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>], clientTargets: [UInt16], stateStore: String,
         lockStore: String, token: String?, timeout: Duration) {
        self.daprs = daprs
        self.clientTargets = clientTargets
        self.stateStore = stateStore
        self.lockStore = lockStore
        var metadata: Metadata = [:]
        if let token { metadata.addString(token, forKey: "dapr-api-token") }
        self.metadata = metadata
        var options = CallOptions.defaults
        options.timeout = timeout
        // Fail fast when the connection is down (gRPC's default): a sidecar restart shows as failed calls.
        options.waitForReady = false
        self.options = options
    }

    /// One due call (and, for an acquired lock, the unlock right after it), recorded when it ends.
    /// The caller has already counted it in flight (`LoadRecorder.callStarted`).
    func perform(_ op: LoadOp, index: Int, prefix: String, valueBytes: Int, due: ContinuousClock.Instant,
                 start: ContinuousClock.Instant, recorder: LoadRecorder) async {
        let client = index % daprs.count
        let dapr = daprs[client], target = clientTargets[client]
        func record(_ op: LoadOp, from begin: ContinuousClock.Instant, error: String?, acked: (key: String, value: String)? = nil) {
            let now = ContinuousClock.now
            recorder.finish(CallRecord(dueMicros: LoadGenCommand.micros(begin - start), op: op, latencyMicros: LoadGenCommand.micros(now - begin),
                                       target: target, error: error), ackedWrite: acked)
        }
        switch op {
        case .save:
            let key = "\(prefix)-k\(index)"
            let value = Self.value(index: index, bytes: valueBytes)
            var item = Dapr_Proto_Common_V1_StateItem()
            item.key = key
            item.value = Data(value.utf8)
            var request = Dapr_Proto_Runtime_V1_SaveStateRequest()
            request.storeName = stateStore
            request.states = [item]
            do {
                _ = try await dapr.saveState(request, metadata: metadata, options: options)
                record(.save, from: due, error: nil, acked: (key, value))
            } catch {
                record(.save, from: due, error: Self.describe(error))
            }
        case .get:
            var request = Dapr_Proto_Runtime_V1_GetStateRequest()
            request.storeName = stateStore
            request.key = "\(prefix)-k\(max(0, index - 100))"
            do {
                _ = try await dapr.getState(request, metadata: metadata, options: options)
                record(.get, from: due, error: nil)
            } catch {
                record(.get, from: due, error: Self.describe(error))
            }
        case .trylock, .unlock:
            let resource = "\(prefix)-r\(index % 256)", owner = "\(prefix)-o\(index)"
            let acquired: Bool
            do {
                acquired = try await tryLock(dapr, resource: resource, owner: owner, expirySeconds: 30)
                record(.trylock, from: due, error: nil)
            } catch {
                record(.trylock, from: due, error: Self.describe(error))
                return
            }
            guard acquired else { return }
            recorder.callStarted()
            let begin = ContinuousClock.now
            do {
                let status = try await unlock(dapr, resource: resource, owner: owner)
                record(.unlock, from: begin, error: status == .success ? nil : "LOCK LOST: unlock of a held lock answered \(status)")
            } catch {
                record(.unlock, from: begin, error: Self.describe(error))
            }
        }
    }

    func tryLock(_ dapr: Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>, resource: String, owner: String,
                 expirySeconds: Int32) async throws -> Bool {
        var request = Dapr_Proto_Runtime_V1_TryLockRequest()
        request.storeName = lockStore
        request.resourceID = resource
        request.lockOwner = owner
        request.expiryInSeconds = expirySeconds
        return try await dapr.tryLockAlpha1(request, metadata: metadata, options: options).success
    }

    func unlock(_ dapr: Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>, resource: String,
                owner: String) async throws -> Dapr_Proto_Runtime_V1_UnlockResponse.Status {
        var request = Dapr_Proto_Runtime_V1_UnlockRequest()
        request.storeName = lockStore
        request.resourceID = resource
        request.lockOwner = owner
        return try await dapr.unlockAlpha1(request, metadata: metadata, options: options).status
    }

    /// "<app id>||" from GetMetadata (molt's default keyPrefix), retried for up to 10 s while molt starts.
    func storedKeyPrefix() async throws -> String {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while true {
            do {
                let id = try await daprs[0].getMetadata(Dapr_Proto_Runtime_V1_GetMetadataRequest(), metadata: metadata, options: options).id
                return id.isEmpty ? "" : id + "||"
            } catch {
                if ContinuousClock.now >= deadline { throw BenchError("GetMetadata on the first target failed: \(Self.describe(error))") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Acquires `count` locks for `owner` (expiry 1 h), 64 at a time; every one must be granted.
    func acquireHeld(count: Int, prefix: String, owner: String) async throws {
        for batchStart in stride(from: 0, to: count, by: 64) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in batchStart..<min(count, batchStart + 64) {
                    group.addTask {
                        let resource = "\(prefix)-held-\(index)"
                        guard try await tryLock(daprs[index % daprs.count], resource: resource, owner: owner, expirySeconds: 3600) else {
                            throw BenchError("--hold-locks: \(resource) was not granted (held by another owner?)")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Checks the held locks: another owner must be refused, then the holder's unlock must succeed.
    func checkHeld(count: Int, prefix: String, owner: String) async -> HeldLocksSummary {
        var summary = HeldLocksSummary(held: count, still_held: 0, lost: 0, examples: [])
        for batchStart in stride(from: 0, to: count, by: 64) {
            let results = await withTaskGroup(of: String?.self) { group in
                for index in batchStart..<min(count, batchStart + 64) {
                    group.addTask {
                        let resource = "\(prefix)-held-\(index)", dapr = daprs[index % daprs.count]
                        do {
                            if try await tryLock(dapr, resource: resource, owner: "\(prefix)-intruder", expirySeconds: 1) {
                                _ = try? await unlock(dapr, resource: resource, owner: "\(prefix)-intruder")
                                return "\(resource): another owner acquired it"
                            }
                            let status = try await unlock(dapr, resource: resource, owner: owner)
                            return status == .success ? nil : "\(resource): the holder's unlock answered \(status)"
                        } catch {
                            return "\(resource): \(Self.describe(error))"
                        }
                    }
                }
                var problems: [String?] = []
                for await result in group { problems.append(result) }
                return problems
            }
            for problem in results {
                if let problem {
                    summary.lost += 1
                    if summary.examples.count < 20 { summary.examples.append(problem) }
                } else {
                    summary.still_held += 1
                }
            }
        }
        return summary
    }

    /// "<code>: <message>" for gRPC errors.
    static func describe(_ error: any Error) -> String {
        if let error = error as? RPCError { return "\(error.code): \(error.message)" }
        return "\(error)"
    }

    /// The saved value of call `index`: its index, padded to `bytes`.
    static func value(index: Int, bytes: Int) -> String {
        let head = "v\(index)-"
        return head + String(repeating: "x", count: max(0, bytes - head.utf8.count))
    }
}
