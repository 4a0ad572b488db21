import PluginHost

#if canImport(Glibc)
import Glibc
#endif

/// apply_config as the host calls it (the same config again → APPLIED; a change of an in-place key →
/// APPLIED, and the instance still serves), and init/destroy cycles with the process's RSS growth.
struct LifecycleChecks {
    let harness: VerifyHarness
    let binary: PluginBinary
    /// The normalized config (declared defaults filled in) and the config as given.
    let config: NormalizedConfig
    /// `--apply KEY=VALUE`: the in-place change to check, instead of one verify derives.
    let change: (key: String, value: String)?
    let cycles: Int
    let rssLimitMiB: Double
    let prefix: String

    func runApplyConfig(_ report: VerifyReport) async {
        guard binary.symbols.applyConfig != nil else {
            report.record(CheckResult(name: "apply_config", status: .skip,
                                      detail: "no molt_plugin_apply_config (optional: every change starts a new instance)"))
            return
        }
        await report.check("apply_config: the same config") { () throws(CheckOutcome) in
            try await harness.withInstance(binary, config: config.config, role: "instance of") { instance throws(CheckOutcome) in
                try expectApplied(try await harness.applyConfig(instance, config.config), "re-applying the running config")
                return "APPLIED"
            }
        }
        await report.check("apply_config: an in-place change") { () throws(CheckOutcome) in
            let (key, value) = try inPlaceChange()
            var wanted = config.explicit
            wanted[key] = value
            let changed: [String: String]
            do {
                changed = try binary.normalize(config: wanted, hostKeys: binary.info.kind == .state ? ["keyPrefix"] : []).config
            } catch {
                throw .fail("the change \(key)=\(value) is refused by the host: \(error)")
            }
            return try await harness.withInstance(binary, config: config.config, role: "instance of") { instance throws(CheckOutcome) in
                let what = "apply_config changing only '\(key)' from '\(config.config[key] ?? "(absent)")' to '\(value)'"
                try expectApplied(try await harness.applyConfig(instance, changed), what)
                try await exercise(instance, tag: "applied")
                return "\(key)=\(value) APPLIED, still serving"
            }
        }
    }

    /// `--apply`, else the first key declared applies_in_place whose value verify knows how to change.
    private func inPlaceChange() throws(CheckOutcome) -> (String, String) {
        let info = binary.info
        if let change {
            if info.honoursDeclaredKeys, let key = info.configKeys.first(where: { $0.name == change.key }), !key.appliesInPlace {
                throw .skip("--apply \(change.key): the key is not declared applies_in_place, so the host reloads for it without calling apply_config")
            }
            return change
        }
        guard info.honoursDeclaredKeys else {
            throw .skip("the plugin declares no keys (or is built for ABI 1.0): give a change with --apply KEY=VALUE")
        }
        let inPlace = info.configKeys.filter(\.appliesInPlace)
        guard !inPlace.isEmpty else {
            if info.openConfig?.appliesInPlace == true {
                throw .skip("the config is open ('*', applies in place) and no declared key applies in place: give a change with --apply KEY=VALUE")
            }
            throw .skip("no key is declared applies_in_place (every change reloads)")
        }
        for key in inPlace {
            if let value = Self.changed(config.config[key.name]) { return (key.name, value) }
        }
        throw .skip("no in-place key (\(inPlace.map(\.name).joined(separator: ", "))) has a number, boolean or duration value "
            + "verify can change: give one with --apply KEY=VALUE")
    }

    /// Another valid-looking value: a number + 1, a boolean flipped, a duration ("500ms", "3s") + 1 unit.
    static func changed(_ value: String?) -> String? {
        guard let value else { return nil }
        if let number = Int(value) { return String(number + 1) }
        switch value {
        case "true": return "false"
        case "false": return "true"
        default: break
        }
        let digits = value.prefix { $0.isASCII && $0.isNumber }
        let unit = value.dropFirst(digits.count)
        guard let number = Int(digits), ["ms", "s", "m", "h"].contains(unit) else { return nil }
        return "\(number + 1)\(unit)"
    }

    private func expectApplied(_ outcome: ApplyOutcome?, _ what: String) throws(CheckOutcome) {
        switch outcome {
        case .applied?: return
        case .needsReload(let why)?: throw .fail("\(what) answered NEEDS_RELOAD (\(why)), want APPLIED")
        case .rejected(let why)?: throw .fail("\(what) answered APPLY_ERROR (\(why)), want APPLIED")
        case nil: throw .fail("\(what): no apply_config")
        }
    }

    /// One operation that allocates and frees in the plugin: a lock taken and released, a key set,
    /// read and deleted, or a message published, delivered to a subscription and acked.
    func exercise(_ instance: TestInstance, tag: String) async throws(CheckOutcome) {
        switch binary.info.kind {
        case .lock:
            let locks = LockChecks(instance: instance, prefix: "\(prefix)-\(tag)")
            let resource = locks.name("exercise")
            try expect(try await locks.tryLock(resource, "alice"), true, "try_lock of free resource '\(resource)'")
            try await locks.expectUnlock(resource, "alice", .success, "'\(resource)' held by 'alice'")
        case .state:
            let state = StateChecks(instance: instance, prefix: "\(prefix)-\(tag)-")
            let key = state.key("exercise"), value = [UInt8](repeating: 7, count: 1024)
            try await state.set(key, value)
            try await state.expectValue(key, value, after: "set")
            try await instance.call("delete of '\(key)'") { d throws(PluginError) in
                try await instance.plugin.delete(StateDeleteRequest(key: key), deadline: d)
            }
        case .pubsub:
            let topic = "\(prefix)-\(tag)-exercise", data = [UInt8](repeating: 7, count: 1024)
            let subscription = try await instance.subscribe(topic)
            try await instance.publish(topic, data)
            _ = try await instance.received(subscription, data, "a message published to '\(topic)'")
            instance.answerAll(subscription)
            try await instance.unsubscribe(subscription)
        case .binding, .secretstore, .configuration:
            break  // declared operations are the plugin's own: verify does not know what to call them with
        }
    }

    func runCycles(_ report: VerifyReport) async {
        await report.check("init/destroy x\(cycles)") { () throws(CheckOutcome) in
            let warmUp = min(3, cycles)
            for _ in 0..<warmUp { try await cycle() }  // the allocator's and the loops' first-use growth
            let before = residentBytes()
            let clock = ContinuousClock(), start = clock.now
            for _ in 0..<cycles { try await cycle() }
            let elapsed = clock.now - start
            let growth = Double(residentBytes() - before) / 1_048_576
            let shown = "RSS \(growth >= 0 ? "+" : "")\(oneDecimal(growth)) MiB"
            guard growth <= rssLimitMiB else {
                throw .fail("\(shown) over \(cycles) init, ready, operation, destroy cycles (limit \(oneDecimal(rssLimitMiB)) MiB): "
                    + "destroy does not free what init and the operations allocate")
            }
            return "\(shown) (\(milliseconds(elapsed)) ms)"
        }
    }

    private func cycle() async throws(CheckOutcome) {
        try await harness.withInstance(binary, config: config.config, role: "instance of") { instance throws(CheckOutcome) in
            try await exercise(instance, tag: "cycle")
        }
    }
}

/// The process's resident set size, from /proc/self/statm (its second field, in pages); 0 when unreadable.
func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 128)
    guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
    let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * sysconf(Int32(_SC_PAGESIZE))
}

/// `value` with one decimal, e.g. "0.3", "-1.2", "16.0".
func oneDecimal(_ value: Double) -> String {
    let tenths = Int((abs(value) * 10).rounded())
    return "\(value < 0 && tenths > 0 ? "-" : "")\(tenths / 10).\(tenths % 10)"
}
