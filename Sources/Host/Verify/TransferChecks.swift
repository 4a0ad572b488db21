import PluginHost

/// State transfer (export_state → import_state), as a reload or a version swap does it: a populated
/// instance exports, a fresh instance imports, and what was there must be there (held locks still held by
/// their owners, keys with their values). Each format the plugin declares, to a fresh instance of the
/// same binary; with `--previous`, new → old and old → new in the newest common format (what the engine
/// picks); and a truncated export must be refused (the reload is then aborted, the old instance keeps
/// serving, rather than going ahead with half the state).
struct TransferChecks {
    struct Subject {
        let binary: PluginBinary
        let config: [String: String]
    }

    let harness: VerifyHarness
    let subject: Subject
    let previous: Subject?
    let prefix: String

    func run(_ report: VerifyReport) async {
        let info = subject.binary.info
        guard let formats = info.stateFormats else {
            let why = info.holdsState
                ? "no export/import, and the plugin declares MOLT_PLUGIN_HOLDS_STATE: a reload or version swap is refused unless the loss is accepted"
                : "no export/import (optional for a plugin whose state lives elsewhere)"
            report.record(CheckResult(name: "state transfer", status: .skip, detail: why))
            return
        }
        for format in formats {
            await report.check("state transfer: export, import into a new instance (format \(format))") { () throws(CheckOutcome) in
                try await transfer(from: subject, to: subject, format: format, tag: "f\(format)")
            }
        }
        await report.check("state transfer: a truncated export is refused") { () throws(CheckOutcome) in
            try await truncated(format: formats.upperBound)
        }
        guard let previous else { return }
        let old = previous.binary.info
        guard let oldFormats = old.stateFormats, oldFormats.overlaps(formats) else {
            let why = old.stateFormats.map { "no common state format: \(info.id) has \(formats), \(old.id) has \($0)" }
                ?? "\(old.id) has no state transfer"
            report.record(CheckResult(name: "state transfer: \(info.id) <-> \(old.id)", status: .fail,
                                      detail: "\(why): a swap between them loses the state"))
            return
        }
        let format = min(oldFormats.upperBound, formats.upperBound)
        await report.check("state transfer: \(info.id) -> \(old.id) (format \(format))") { () throws(CheckOutcome) in
            try await transfer(from: subject, to: previous, format: format, tag: "down")
        }
        await report.check("state transfer: \(old.id) -> \(info.id) (format \(format))") { () throws(CheckOutcome) in
            try await transfer(from: previous, to: subject, format: format, tag: "up")
        }
    }

    private func transfer(from source: Subject, to target: Subject, format: UInt32, tag: String) async throws(CheckOutcome) -> String {
        let sample = TransferSample(kind: source.binary.info.kind, prefix: "\(prefix)-\(tag)")
        let bytes = try await exported(from: source, sample: sample, format: format)
        return try await harness.withInstance(target.binary, config: target.config, role: "importing instance of") { instance throws(CheckOutcome) in
            if let refusal = try await harness.importState(instance, bytes, format: format) {
                throw .fail("\(instance.id) import_state refused the \(bytes.count) bytes \(source.binary.info.id) exported "
                    + "(format \(format)): \(refusal.status.rawValue): \(refusal.message)")
            }
            try await sample.check(instance, after: "import into \(instance.id)")
            return "\(sample.summary) handed over in \(bytes.count) bytes"
        }
    }

    private func truncated(format: UInt32) async throws(CheckOutcome) -> String {
        let sample = TransferSample(kind: subject.binary.info.kind, prefix: "\(prefix)-cut")
        let bytes = try await exported(from: subject, sample: sample, format: format)
        guard !bytes.isEmpty else { throw .fail("export_state (format \(format)) of \(sample.summary) wrote 0 bytes: the state is lost") }
        let cut = Array(bytes.dropLast())
        return try await harness.withInstance(subject.binary, config: subject.config, role: "importing instance of") { instance throws(CheckOutcome) in
            guard let refusal = try await harness.importState(instance, cut, format: format) else {
                throw .fail("import_state accepted an export of \(sample.summary) cut from \(bytes.count) to \(cut.count) bytes: "
                    + "corrupt input must be refused with a message (the reload then keeps the old instance)")
            }
            guard !refusal.message.isEmpty else { throw .fail("import_state refused a truncated export without a message") }
            return "refused (\(refusal.status.rawValue)): \(refusal.message)"
        }
    }

    /// A new instance of `source`, populated with `sample`, exported in `format`.
    private func exported(from source: Subject, sample: TransferSample, format: UInt32) async throws(CheckOutcome) -> [UInt8] {
        try await harness.withInstance(source.binary, config: source.config, role: "exporting instance of") { instance throws(CheckOutcome) in
            try await sample.populate(instance)
            return try await harness.exportState(instance, format: format)
        }
    }
}

/// What a transfer check puts into the exporting instance and looks for in the importing one: three
/// locks held by three owners (kind lock), three keys with binary values (kind state), or five messages,
/// queued and unanswered (kind pubsub, PubsubSample.swift).
struct TransferSample {
    let kind: ComponentKind
    let prefix: String

    var names: [String] { (1...3).map { "\(prefix)-\($0)" } }
    var summary: String {
        switch kind {
        case .lock: "3 held locks"
        case .state: "3 keys"
        case .pubsub: Self.pubsubSummary
        case .binding, .secretstore, .configuration: "its state (no sample: kind \(kind.rawValue))"
        }
    }

    func populate(_ instance: TestInstance) async throws(CheckOutcome) {
        switch kind {
        case .lock:
            let locks = LockChecks(instance: instance, prefix: prefix)
            for (index, resource) in names.enumerated() {
                try expect(try await locks.tryLock(resource, "owner-\(index + 1)", expiry: 300), true,
                           "setup: try_lock of free resource '\(resource)' by 'owner-\(index + 1)'")
            }
        case .state:
            let state = StateChecks(instance: instance, prefix: "")
            for (index, key) in names.enumerated() { try await state.set(key, StateChecks.value("transferred \(index + 1)")) }
        case .pubsub:
            try await populatePubsub(instance)
        case .binding, .secretstore, .configuration:
            break  // no sample: the transfer is checked for its mechanics only (export, import)
        }
    }

    /// Every lock still held by its owner (another owner cannot take it, the owner unlocks it; an unlock by
    /// another owner is the lock checks' business), every key with its value.
    func check(_ instance: TestInstance, after: String) async throws(CheckOutcome) {
        switch kind {
        case .lock:
            let locks = LockChecks(instance: instance, prefix: prefix)
            for (index, resource) in names.enumerated() {
                let owner = "owner-\(index + 1)"
                if try await locks.tryLock(resource, "intruder") {
                    throw .fail("after \(after), '\(resource)' (held by '\(owner)' for 300 s) was acquired by another owner: the lock was lost")
                }
                let own = try await locks.unlock(resource, owner)
                guard own == .success else {
                    throw .fail("after \(after), unlock of '\(resource)' by its owner '\(owner)' answered \(own.name), want SUCCESS: the owner was lost")
                }
            }
        case .state:
            let state = StateChecks(instance: instance, prefix: "")
            for (index, key) in names.enumerated() {
                try await state.expectValue(key, StateChecks.value("transferred \(index + 1)"), after: after)
            }
        case .pubsub:
            try await checkPubsub(instance, after: after)
        case .binding, .secretstore, .configuration:
            break
        }
    }
}
