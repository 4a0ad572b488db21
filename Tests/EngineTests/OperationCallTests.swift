import Engine
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// Declared operations through the engine: each call leases the component's active generation like any other
/// call (reloads under traffic fail nothing), errors come back as CallError, binding names resolve, and a
/// blocking call past its deadline answers at the deadline while its generation waits for it.
@Suite struct OperationCallTests {
    static func binding(_ name: String, version: String? = nil, _ config: [String: String] = [:]) -> ComponentDefinition {
        ComponentDefinition(kind: .binding, name: name, plugin: "ops", version: version.flatMap(SemanticVersion.init), config: config)
    }

    func failure(_ engine: Engine, _ key: ComponentKey, _ operation: String, _ arguments: [String: OperationValue],
                 deadline: ContinuousClock.Instant? = nil) async -> CallError? {
        do {
            let served = try await engine.invoke(key, operation: operation, arguments: arguments, deadline: deadline)
            Issue.record("\(operation) must fail, returned \(served.value)")
            return nil
        } catch {
            return error
        }
    }

    @Test func callsAndTheirErrors() async throws {
        let engine = try makeEngine(["ops-1.0.0.so"])
        #expect(await engine.apply(Self.binding("calc")).action == .added)
        let key = ComponentKey(kind: .binding, name: "calc")
        let served = try await engine.invoke(key, operation: "add", arguments: ["a": .int64(40), "b": .int64(2)])
        #expect(served.value == ["sum": .int64(42)] && served.generation == 1)
        #expect(await failure(engine, key, "nope", [:]) == .invalidRequest(
            "binding/calc has no operation 'nope' (operations: add, count, divide, negate, echo, mix, sleep, fail, null_string, bad_utf8, vsum, rendezvous, inside)"))
        #expect(await failure(engine, key, "add", ["a": .int64(1)]) == .invalidRequest("operation add: missing argument 'b' (int64)"))
        #expect(await failure(engine, key, "fail", ["code": .int64(5), "message": .string("slow backend")])
                == .plugin(PluginError(.timeout, "slow backend")))
        #expect(await failure(engine, key, "null_string", [:]) == .plugin(PluginError(
            .invalidArgument, "operation null_string returned an invalid result 'text' (string): NULL (a string result must be set)")))
        #expect(await failure(engine, ComponentKey(kind: .binding, name: "other"), "add", [:])
                == .unknownComponent(ComponentKey(kind: .binding, name: "other")))
        await engine.shutdown()
    }

    @Test func bindingNamesResolveToComponentsThatDeclareOperations() async throws {
        let engine = try makeEngine(["ops-1.0.0.so", "ops-lock-1.0.0.so", "memorylock-1.0.0.so"])
        #expect(engine.componentOperations.isEmpty)
        #expect(throws: CallError.invalidRequest("binding calc is not found (components with operations: none)")) {
            try engine.operationsComponent(named: "calc")
        }
        await engine.apply(Self.binding("calc"))
        await engine.apply(lockDefinition("locks", plugin: "ops-lock"))
        await engine.apply(lockDefinition("plain", plugin: "memorylock"))

        let calc = try engine.operationsComponent(named: "calc")
        #expect(calc.key == ComponentKey(kind: .binding, name: "calc") && calc.operations.count == 13)
        // A lock that declares operations is a binding name too.
        let locks = try engine.operationsComponent(named: "locks")
        #expect(locks.key == ComponentKey(kind: .lock, name: "locks") && locks.operations.map(\.name) == ["add", "count"])
        #expect(try await engine.invoke(locks.key, operation: "add", arguments: ["a": .int64(1), "b": .int64(1)]).value == ["sum": .int64(2)])
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "o", expiryInSeconds: 10).value)
        // A component without operations is not one.
        #expect(throws: CallError.invalidRequest("binding plain is not found (components with operations: binding/calc, lock/locks)")) {
            try engine.operationsComponent(named: "plain")
        }
        // The binding component of a name wins over another kind's.
        await engine.apply(lockDefinition("calc", plugin: "ops-lock"))
        #expect(try engine.operationsComponent(named: "calc").key.kind == .binding)
        #expect(engine.componentOperations.map(\.key.description) == ["binding/calc", "lock/calc", "lock/locks"])
        await engine.shutdown()
    }

    @Test func reloadsUnderTrafficFailNoCall() async throws {
        let engine = try makeEngine(["ops-1.0.0.so"])
        await engine.apply(Self.binding("calc"))
        let key = ComponentKey(kind: .binding, name: "calc")
        let tally = Tally()
        let traffic = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                                        var newest: UInt64 = 0
                        while !tally.stopping.load(ordering: .relaxed) {
                            await Task.yield()
                            do {
                                let served = try await engine.invoke(key, operation: "add", arguments: ["a": .int64(Int64(worker)), "b": .int64(1)])
                                if served.value != ["sum": .int64(Int64(worker) + 1)] || served.generation < newest {
                                    tally.failures.withLock { $0.append("wrong answer \(served.value) from g\(served.generation)") }
                                }
                                newest = served.generation
                                tally.calls.add(1, ordering: .relaxed)
                            } catch {
                                tally.failures.withLock { $0.append("\(error)") }
                            }
                        }
                    }
                }
            }
        }
        for round in 1...3 {
            let target = tally.calls.load(ordering: .relaxed) + 200
            while tally.calls.load(ordering: .relaxed) < target { await Task.yield() }
            let reload = await engine.apply(Self.binding("calc", ["round": "\(round)"]))
            #expect(reload.action == .reloaded, "\(reload)")
        }
        let target = tally.calls.load(ordering: .relaxed) + 200
        while tally.calls.load(ordering: .relaxed) < target { await Task.yield() }
        tally.stopping.store(true, ordering: .relaxed)
        await traffic.value
        #expect(tally.failures.withLock { $0 } == [])
        // Each generation is a new instance: its count starts again.
        #expect(try await engine.invoke(key, operation: "count", arguments: [:]).generation == 4)
        #expect(engine.leaseViolations == 0)
        await engine.shutdown()
    }

    @Test func aBlockingCallPastItsDeadlineAnswersThenAndItsGenerationWaitsForIt() async throws {
        let engine = try makeEngine(["ops-1.0.0.so"])
        await engine.apply(Self.binding("calc"))
        let key = ComponentKey(kind: .binding, name: "calc")
        let clock = ContinuousClock(), started = clock.now
        let error = await failure(engine, key, "sleep", ["ms": .int64(1500)], deadline: started.advanced(by: .milliseconds(200)))
        #expect(clock.now - started < .milliseconds(1000), "answered after \(clock.now - started)")
        guard case .deadlineExceeded(let failed, let reason)? = error else { Issue.record("want deadlineExceeded, got \(String(describing: error))"); return }
        #expect(failed == key && reason.status == .deadlineExceeded)
        // The plugin still runs the call: a reload abandons the old generation to it (not destroyed under it),
        // and destroys it once the call returns.
        let reload = await engine.apply(Self.binding("calc", ["after": "sleep"]))
        #expect(reload.action == .reloaded && reload.callsStillDraining == 1, "\(reload)")
        #expect(engine.abandonedGenerations.map { "\($0.key) g\($0.generation) \($0.callsOutstanding)" } == ["binding/calc g1 1"])
        #expect(try await engine.invoke(key, operation: "add", arguments: ["a": .int64(1), "b": .int64(1)]).generation == 2)
        while !engine.abandonedGenerations.isEmpty && clock.now - started < .seconds(10) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(engine.abandonedGenerations.isEmpty && clock.now - started >= .milliseconds(1500), "destroyed after \(clock.now - started)")
        #expect(engine.leaseViolations == 0)
        await engine.shutdown()
        #expect(engine.leaseViolations == 0)
    }

    /// What the traffic tasks share with the test.
    final class Tally: Sendable {
        let failures = Mutex<[String]>([])
        let calls = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
    }

    static func refusal(from old: String, to new: String, _ changes: String) -> String {
        "swapping binding/calc from \(old) to \(new) would break apps calling its operations: \(changes); "
            + "apply with accept_operation_changes (molt apply --accept-operation-changes) to swap anyway"
    }

    @Test func aSwapThatRemovesOrChangesAnOperationIsRefusedUnlessAccepted() async throws {
        let engine = try makeEngine(["ops-1.0.0.so", "ops-1.1.0.so", "ops-2.0.0.so"])
        await engine.apply(Self.binding("calc", version: "1.0.0"))
        let key = ComponentKey(kind: .binding, name: "calc")
        // An added operation is fine.
        let added = await engine.apply(Self.binding("calc", version: "1.1.0"))
        #expect(added.action == .versionSwapped && added.warnings.isEmpty, "\(added)")
        #expect(try await engine.invoke(key, operation: "multiply", arguments: ["a": .int64(6), "b": .int64(7)]).value == ["product": .int64(42)])

        // A changed and two removed operations: refused at plan, nothing started, 1.1.0 keeps serving.
        let expected = Self.refusal(from: "ops@1.1.0", to: "ops@2.0.0",
                                    "add(a: int64, b: int64) -> (sum: int64) changed to add(a: double, b: double) -> (sum: double); "
                                        + "multiply(a: int64, b: int64) -> (product: int64) removed; negate(flag: bool) -> (result: bool) removed")
        let refused = await engine.apply(Self.binding("calc", version: "2.0.0"))
        #expect(refused.action == .failed && refused.failure == .operationsWouldChange && refused.error == expected, "\(refused)")
        #expect(refused.newGeneration == nil && refused.initDuration == nil)
        #expect(engine.check(Self.binding("calc", version: "2.0.0")).problems == [expected])
        #expect(engine.components.first?.plugin == "ops@1.1.0")
        #expect(try await engine.invoke(key, operation: "add", arguments: ["a": .int64(1), "b": .int64(2)]).value == ["sum": .int64(3)])

        // Accepted: the swap goes through, with the differences as a warning.
        var accepted = Self.binding("calc", version: "2.0.0")
        accepted.acceptOperationChanges = true
        let swapped = await engine.apply(accepted)
        #expect(swapped.action == .versionSwapped, "\(swapped)")
        #expect(swapped.warnings.contains { $0.hasPrefix("operations of binding/calc changed by ops@1.1.0 -> ops@2.0.0 (accepted): add(") }, "\(swapped.warnings)")
        #expect(try await engine.invoke(key, operation: "add", arguments: ["a": .double(0.5), "b": .double(0.25)]).value == ["sum": .double(0.75)])

        // Back to 1.0.0: add changes again (negate comes back, which is fine).
        let back = await engine.apply(Self.binding("calc", version: "1.0.0"))
        #expect(back.failure == .operationsWouldChange && back.error == Self.refusal(
            from: "ops@2.0.0", to: "ops@1.0.0", "add(a: double, b: double) -> (sum: double) changed to add(a: int64, b: int64) -> (sum: int64)"))
        await engine.shutdown()
    }
}
