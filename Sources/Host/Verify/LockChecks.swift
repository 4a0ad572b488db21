import PluginHost

/// Dapr's lock semantics as molt_plugin.h states them ("kind lock"): a free resource is acquired; a held,
/// unexpired lock is not acquired again, by another owner nor by its own; only the owner unlocks
/// (another owner gets LOCK_BELONGS_TO_OTHERS, a lock nobody holds LOCK_DOES_NOT_EXIST); an expired lock is
/// free for anyone and is never released early. Each check uses resources of its own, so each line
/// names the one rule that is broken.
struct LockChecks {
    let instance: TestInstance
    /// Makes resource names unique to this run.
    let prefix: String

    func run(_ report: VerifyReport) async {
        await report.check("lock: acquire a free resource") { () throws(CheckOutcome) in
            let resource = name("free")
            try await expect(tryLock(resource, "alice"), true, "try_lock of free resource '\(resource)' by 'alice'")
            return "acquired"
        }
        await report.check("lock: another owner is refused") { () throws(CheckOutcome) in
            let resource = try await taken("other", by: "alice")
            try await expect(tryLock(resource, "bob"), false, "try_lock by 'bob' of '\(resource)', held by 'alice'")
            return "not acquired"
        }
        await report.check("lock: the owner re-locking is refused") { () throws(CheckOutcome) in
            let resource = try await taken("relock", by: "alice")
            try await expect(tryLock(resource, "alice"), false,
                             "try_lock by 'alice' of '\(resource)', which she holds (the header: a held lock is not acquired again, not even by its owner)")
            return "not acquired again"
        }
        await report.check("lock: unlock by another owner") { () throws(CheckOutcome) in
            let resource = try await taken("steal", by: "alice")
            try await expectUnlock(resource, "bob", .lockBelongsToOthers, "'\(resource)' held by 'alice'")
            try await expect(tryLock(resource, "bob"), false, "after bob's refused unlock, try_lock by 'bob' of '\(resource)' (still held by 'alice')")
            return "LOCK_BELONGS_TO_OTHERS, still held"
        }
        await report.check("lock: unlock of a missing lock") { () throws(CheckOutcome) in
            try await expectUnlock(name("missing"), "alice", .lockDoesNotExist, "a resource never locked")
            return "LOCK_DOES_NOT_EXIST"
        }
        await report.check("lock: unlock, then another owner locks") { () throws(CheckOutcome) in
            let resource = try await taken("release", by: "alice")
            try await expectUnlock(resource, "alice", .success, "'\(resource)' held by 'alice'")
            try await expect(tryLock(resource, "bob"), true, "try_lock by 'bob' of '\(resource)' after alice unlocked it")
            return "SUCCESS, then acquired by another owner"
        }
        await report.check("lock: expiry") { () throws(CheckOutcome) in try await expiry() }
    }

    /// A 1 s lock: held at first, then free for another owner after 1 s (never before), within a grace
    /// of 2 s more (a plugin that counts whole seconds rounds up).
    private func expiry() async throws(CheckOutcome) -> String {
        let resource = name("expiry")
        let clock = ContinuousClock()
        let start = clock.now
        try await expect(tryLock(resource, "alice", expiry: 1), true, "try_lock of free resource '\(resource)' by 'alice' for 1 s")
        try await expect(tryLock(resource, "bob"), false, "try_lock by 'bob' of '\(resource)' just after alice took it for 1 s")
        let limit = Duration.seconds(3)
        while clock.now - start < limit {
            try? await Task.sleep(for: .milliseconds(50))
            guard try await tryLock(resource, "bob") else { continue }
            let elapsed = clock.now - start
            if elapsed < .milliseconds(950) {
                throw .fail("'\(resource)', locked for 1 s, was acquired by 'bob' after \(milliseconds(elapsed)) ms: released early")
            }
            return "free for another owner after \(milliseconds(elapsed)) ms"
        }
        throw .fail("'\(resource)', locked by 'alice' for 1 s, is still held after \(milliseconds(limit)) ms: expiry is not enforced")
    }

    // MARK: - Helpers

    func name(_ what: String) -> String { "\(prefix)-\(what)" }

    /// A resource of this check, acquired by `owner` (the check's setup).
    private func taken(_ what: String, by owner: String) async throws(CheckOutcome) -> String {
        let resource = name(what)
        try await expect(tryLock(resource, owner), true, "setup: try_lock of free resource '\(resource)' by '\(owner)'")
        return resource
    }

    func tryLock(_ resource: String, _ owner: String, expiry: Int32 = 60) async throws(CheckOutcome) -> Bool {
        try await instance.call("try_lock('\(resource)', owner '\(owner)')") { deadline throws(PluginError) in
            try await instance.plugin.tryLock(resource: resource, owner: owner, expiryInSeconds: expiry, deadline: deadline)
        }
    }

    func unlock(_ resource: String, _ owner: String) async throws(CheckOutcome) -> UnlockStatus {
        try await instance.call("unlock('\(resource)', owner '\(owner)')") { deadline throws(PluginError) in
            try await instance.plugin.unlock(resource: resource, owner: owner, deadline: deadline)
        }
    }

    func expectUnlock(_ resource: String, _ owner: String, _ wanted: UnlockStatus, _ context: String) async throws(CheckOutcome) {
        let status = try await unlock(resource, owner)
        guard status == wanted else {
            throw .fail("unlock by '\(owner)' of \(context) answered \(status.name), want \(wanted.name)")
        }
    }
}

func expect(_ acquired: Bool, _ wanted: Bool, _ what: String) throws(CheckOutcome) {
    guard acquired != wanted else { return }
    throw .fail("\(what) answered acquired=\(acquired), want \(wanted)")
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

extension UnlockStatus {
    /// The ABI's name, as the header spells it.
    var name: String {
        switch self {
        case .success: "SUCCESS"
        case .lockDoesNotExist: "LOCK_DOES_NOT_EXIST"
        case .lockBelongsToOthers: "LOCK_BELONGS_TO_OTHERS"
        case .internalError: "INTERNAL_ERROR"
        }
    }
}
