import PluginHost

/// Dapr's state store semantics as molt_plugin.h states them ("kind state"): a missing key is found=false
/// (not an error); set/get round-trips bytes; etags (when the store returns them) guard writes, a stale
/// one refused with ETAG_MISMATCH; first-write without an etag refused when the key exists; delete with
/// an etag; bulk get (one item per key, in order) and transactions (all or nothing) when exported. Keys
/// carry a prefix unique to the run and are deleted at the end (a store may be shared, e.g. a Redis).
struct StateChecks {
    let instance: TestInstance
    /// Makes keys unique to this run ("molt-verify-…||").
    let prefix: String

    static let keyNames = ["missing", "round-trip", "etag", "first-write", "first-write-new", "delete", "bulk-1", "bulk-2",
                           "bulk-missing", "tx-1", "tx-2", "tx-3", "atomic-a", "atomic-b"]

    func run(_ report: VerifyReport) async {
        await report.check("state: get of a missing key") { () throws(CheckOutcome) in
            let response = try await get(key("missing"))
            guard !response.found else { throw .fail("get of '\(key("missing"))', never set, answered found=true") }
            return "found=false"
        }
        await report.check("state: set, then get") { () throws(CheckOutcome) in
            let value = Self.value("round trip")
            try await set(key("round-trip"), value)
            try await expectValue(key("round-trip"), value, after: "set")
            return "\(value.count) bytes round-tripped" + (try await get(key("round-trip")).etag.map { ", etag '\($0)'" } ?? ", no etag")
        }
        await report.check("state: a stale etag is refused") { () throws(CheckOutcome) in try await staleEtag() }
        await report.check("state: first-write on an existing key is refused") { () throws(CheckOutcome) in try await firstWrite() }
        await report.check("state: delete") { () throws(CheckOutcome) in try await delete() }
        await report.check("state: bulk get") { () throws(CheckOutcome) in try await bulkGet() }
        await report.check("state: transaction") { () throws(CheckOutcome) in try await transaction() }
        await report.check("state: a failing transaction applies nothing") { () throws(CheckOutcome) in try await atomicTransaction() }
        for name in Self.keyNames { _ = try? await instance.refusal("cleanup") { d throws(PluginError) in
            try await instance.plugin.delete(StateDeleteRequest(key: key(name)), deadline: d)
        } }
    }

    /// Sets the key twice, then sets it with the first (stale) etag: ETAG_MISMATCH, value unchanged;
    /// with the current etag: accepted.
    private func staleEtag() async throws(CheckOutcome) -> String {
        let key = key("etag")
        try await set(key, Self.value("first"))
        guard let stale = try await get(key).etag else {
            throw .skip("the store returns no etags (get gives etag NULL); etag checks do not apply")
        }
        try await set(key, Self.value("second"))
        guard let current = try await get(key).etag else { throw .fail("get of '\(key)' gave an etag once, then none after a set") }
        guard current != stale else { throw .fail("set of '\(key)' left its etag '\(stale)' unchanged: a stale etag cannot be told apart") }
        try await expectRefused(.etagMismatch, "set of '\(key)' with stale etag '\(stale)' (current '\(current)')") { d throws(PluginError) in
            try await instance.plugin.set(StateSetRequest(key: key, value: Self.value("third"), etag: stale), deadline: d)
        }
        try await expectValue(key, Self.value("second"), after: "the refused set")
        try await set(key, Self.value("fourth"), etag: current)
        return "ETAG_MISMATCH for a stale etag, accepted with the current one"
    }

    private func firstWrite() async throws(CheckOutcome) -> String {
        let key = key("first-write")
        try await set(key, Self.value("first"))
        try await expectRefused(.etagMismatch, "set of existing key '\(key)' with first-write and no etag") { d throws(PluginError) in
            try await instance.plugin.set(StateSetRequest(key: key, value: Self.value("second"), concurrency: .firstWrite), deadline: d)
        }
        try await expectValue(key, Self.value("first"), after: "the refused first-write")
        try await set(self.key("first-write-new"), Self.value("new"), concurrency: .firstWrite)
        return "ETAG_MISMATCH when the key exists, accepted for a new key"
    }

    private func delete() async throws(CheckOutcome) -> String {
        let key = key("delete")
        try await set(key, Self.value("first"))
        let etag = try await get(key).etag
        var detail = "deleted"
        if let etag {
            try await set(key, Self.value("second"))
            try await expectRefused(.etagMismatch, "delete of '\(key)' with stale etag '\(etag)'") { d throws(PluginError) in
                try await instance.plugin.delete(StateDeleteRequest(key: key, etag: etag), deadline: d)
            }
            try await expectValue(key, Self.value("second"), after: "the refused delete")
            let current = try await get(key).etag
            try await instance.call("delete of '\(key)' with its current etag '\(current ?? "none")'") { d throws(PluginError) in
                try await instance.plugin.delete(StateDeleteRequest(key: key, etag: current), deadline: d)
            }
            detail = "stale etag refused, deleted with the current one"
        } else {
            try await instance.call("delete of '\(key)'") { d throws(PluginError) in
                try await instance.plugin.delete(StateDeleteRequest(key: key), deadline: d)
            }
        }
        if try await get(key).found { throw .fail("get of '\(key)' after its delete answered found=true") }
        return detail
    }

    private func bulkGet() async throws(CheckOutcome) -> String {
        guard instance.plugin.binary.symbols.stateBulkGet != nil else {
            throw .skip("no molt_state_bulk_get (optional: the host issues one get per key)")
        }
        let keys = [key("bulk-1"), key("bulk-missing"), key("bulk-2")]
        try await set(keys[0], Self.value("bulk one"))
        try await set(keys[2], Self.value("bulk two"))
        let items = try await instance.call("bulk_get of \(keys.count) keys") { d throws(PluginError) in
            try await instance.plugin.bulkGet(keys: keys, deadline: d)
        }
        guard items.map(\.key) == keys else {
            throw .fail("bulk_get of \(keys) answered items for \(items.map(\.key)): want one item per key, in request order")
        }
        for (item, wanted) in zip(items, [Self.value("bulk one"), nil, Self.value("bulk two")]) {
            if let error = item.error { throw .fail("bulk_get item '\(item.key)' has error: \(error)") }
            guard item.found == (wanted != nil), item.value == (wanted ?? []) else {
                throw .fail("bulk_get item '\(item.key)' answered found=\(item.found) with \(item.value.count) bytes, want "
                    + (wanted.map { "found=true with the \($0.count) bytes set" } ?? "found=false"))
            }
        }
        return "3 items in order, the missing one found=false"
    }

    private func transaction() async throws(CheckOutcome) -> String {
        guard instance.plugin.binary.symbols.stateTransact != nil else {
            throw .skip("no molt_state_transact (optional: transactions answer unsupported)")
        }
        let (one, two, three) = (key("tx-1"), key("tx-2"), key("tx-3"))
        try await set(three, Self.value("to delete"))
        try await instance.call("transaction (set '\(one)', set '\(two)', delete '\(three)')") { d throws(PluginError) in
            try await instance.plugin.transact([
                .set(StateSetRequest(key: one, value: Self.value("tx one"))),
                .set(StateSetRequest(key: two, value: Self.value("tx two"))),
                .delete(StateDeleteRequest(key: three)),
            ], deadline: d)
        }
        try await expectValue(one, Self.value("tx one"), after: "the transaction")
        try await expectValue(two, Self.value("tx two"), after: "the transaction")
        if try await get(three).found { throw .fail("'\(three)', deleted by the transaction, is still found") }
        return "2 sets and a delete applied"
    }

    /// A transaction whose last operation fails (a stale etag, or first-write on an existing key when the
    /// store has no etags): refused, and its first operation not applied (the header: all or none).
    private func atomicTransaction() async throws(CheckOutcome) -> String {
        guard instance.plugin.binary.symbols.stateTransact != nil else { throw .skip("no molt_state_transact") }
        let (a, b) = (key("atomic-a"), key("atomic-b"))
        try await set(a, Self.value("a before"))
        let failing: StateSetRequest
        if let stale = try await get(a).etag {
            try await set(a, Self.value("a before"))
            failing = StateSetRequest(key: a, value: Self.value("a after"), etag: stale)
        } else {
            failing = StateSetRequest(key: a, value: Self.value("a after"), concurrency: .firstWrite)
        }
        let why = failing.etag.map { "stale etag '\($0)'" } ?? "first-write on an existing key"
        let refused = try await instance.refusal("transaction") { d throws(PluginError) in
            try await instance.plugin.transact([.set(StateSetRequest(key: b, value: Self.value("b"))), .set(failing)], deadline: d)
        }
        guard let refused else { throw .fail("a transaction whose second set has a \(why) on '\(a)' succeeded") }
        if try await get(b).found {
            throw .fail("a transaction refused (\(refused.status.rawValue): \(refused.message)) still applied its first operation: '\(b)' was set")
        }
        try await expectValue(a, Self.value("a before"), after: "the refused transaction")
        return "refused (\(refused.status.rawValue)), nothing applied"
    }

    // MARK: - Helpers

    func key(_ name: String) -> String { "\(prefix)\(name)" }

    /// Bytes that are not UTF-8 text (a NUL, 0xff) around `text`.
    static func value(_ text: String) -> [UInt8] { [0, 0xff, 0x80] + Array(text.utf8) + [0] }

    func get(_ key: String) async throws(CheckOutcome) -> StateGetResponse {
        try await instance.call("get of '\(key)'") { d throws(PluginError) in try await instance.plugin.get(key: key, deadline: d) }
    }

    func set(_ key: String, _ value: [UInt8], etag: String? = nil, concurrency: StateConcurrency = .unspecified) async throws(CheckOutcome) {
        let what = "set of '\(key)'" + (etag.map { " with etag '\($0)'" } ?? "") + (concurrency == .firstWrite ? " (first-write)" : "")
        try await instance.call(what) { d throws(PluginError) in
            try await instance.plugin.set(StateSetRequest(key: key, value: value, etag: etag, concurrency: concurrency), deadline: d)
        }
    }

    func expectValue(_ key: String, _ value: [UInt8], after: String) async throws(CheckOutcome) {
        let response = try await get(key)
        guard response.found else { throw .fail("get of '\(key)' after \(after) answered found=false") }
        guard response.value == value else {
            throw .fail("get of '\(key)' after \(after) answered \(response.value.count) other bytes than the \(value.count) set")
        }
    }

    private func expectRefused(_ wanted: PluginStatus, _ what: String, _ body: (CallDeadline) async throws(PluginError) -> Void) async throws(CheckOutcome) {
        guard let refused = try await instance.refusal(what, body) else { throw .fail("\(what) succeeded, want \(wanted.rawValue)") }
        guard refused.status == wanted else {
            throw .fail("\(what) was refused with \(refused.status.rawValue) (\(refused.message)), want \(wanted.rawValue)")
        }
    }
}
