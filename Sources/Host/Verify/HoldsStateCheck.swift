import PluginHost

/// Whether the plugin's MOLT_PLUGIN_HOLDS_STATE says the truth (molt_plugin.h, "MOLT_PLUGIN_HOLDS_STATE"):
/// two instances with the same config, a lock taken (or a key set) in the first, looked for in the second.
/// Seen there: a backend keeps the state (a Redis client), the flag is optional. Not seen: the state lives
/// in the instance, and a plugin that does not declare it lets a reload or version swap drop it silently,
/// the failure issue 16 was filed for. Kind pubsub: messages queued in the first, delivered by a
/// subscription of the second or not (PubsubSample.swift). ABI 1.0 plugins have no flags: skipped.
struct HoldsStateCheck {
    let harness: VerifyHarness
    let binary: PluginBinary
    let config: [String: String]
    let prefix: String

    func run(_ report: VerifyReport) async {
        await report.check("holds state") { () throws(CheckOutcome) in
            let info = binary.info
            guard (info.abiVersion.major, info.abiVersion.minor) >= (1, 1) else {
                throw .skip("built for ABI 1.0, whose identity has no flags")
            }
            guard ![.binding, .secretstore, .configuration].contains(info.kind) else { throw .skip("kind \(info.kind.rawValue): no lock or key of its own to look for") }
            let sample = TransferSample(kind: info.kind, prefix: prefix)
            let shared = try await harness.withInstance(binary, config: config, role: "first instance of") { first throws(CheckOutcome) in
                try await sample.populate(first)
                let seen = try await harness.withInstance(binary, config: config, role: "second instance of") { second throws(CheckOutcome) in
                    try await sample.isVisible(in: second)
                }
                try await sample.clear(first)  // a shared backend keeps what the check wrote otherwise
                return seen
            }
            let what = switch info.kind {
            case .lock: "a lock taken in one instance"
            case .pubsub: "a message queued in one instance"
            default: "a key set in one instance"
            }
            switch (shared, info.holdsState) {
            case (true, true): return "declared (\(what) is seen by another instance, too)"
            case (true, false): return "not declared, and none held: \(what) is seen by another instance (a backend keeps it)"
            case (false, true): return "declared: \(what) is not seen by another instance"
            case (false, false):
                throw .fail("\(what) is not seen by another instance with the same config, so the state lives in the instance, "
                    + "but the plugin does not declare MOLT_PLUGIN_HOLDS_STATE (Swift: static var holdsState: Bool { true }): "
                    + "a reload or version swap would drop it without a word")
            }
        }
    }
}

extension TransferSample {
    /// Whether another instance sees the sample (without changing it when it does): the first lock is
    /// held (another owner cannot take it), or the first key is there with its value.
    func isVisible(in instance: TestInstance) async throws(CheckOutcome) -> Bool {
        switch kind {
        case .lock:
            return !(try await LockChecks(instance: instance, prefix: prefix).tryLock(names[0], "intruder"))
        case .state:
            let response = try await StateChecks(instance: instance, prefix: "").get(names[0])
            return response.found && response.value == StateChecks.value("transferred 1")
        case .pubsub:
            return try await pubsubVisible(in: instance)
        case .binding, .secretstore, .configuration:
            return false  // no sample (see `populate`)
        }
    }

    /// Removes the sample from the instance that holds it: the locks unlocked by their owners, the keys deleted.
    func clear(_ instance: TestInstance) async throws(CheckOutcome) {
        for (index, name) in names.enumerated() {
            switch kind {
            case .lock:
                _ = try await LockChecks(instance: instance, prefix: prefix).unlock(name, "owner-\(index + 1)")
            case .state:
                try await instance.call("delete of '\(name)'") { d throws(PluginError) in
                    try await instance.plugin.delete(StateDeleteRequest(key: name), deadline: d)
                }
            case .pubsub, .binding, .secretstore, .configuration:
                break  // pubsub: a shared broker's messages were consumed by `isVisible`
            }
        }
    }
}
