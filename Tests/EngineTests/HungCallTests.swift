import Foundation
import Engine
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// A plugin that never completes a call cannot wedge its component: the call's deadline answers the
/// caller, the generation holding it is abandoned after the drain timeout (destroyed once the plugin
/// lets go), and reloads, version swaps, removal and shutdown all go on.
///
/// The probe fixture holds a try_lock of a resource named "never:…" until its `releaseWhen` file exists.
@Suite(.timeLimit(.minutes(1))) struct HungCallTests {
    /// A gate file in a fresh directory (not created yet) and a way to open it.
    struct Gate {
        let path: String
        init() throws { path = try Fixtures.makeTemporaryDirectory() + "/release" }
        func open() { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    }

    func engine(drain: Duration, call: Duration = .seconds(60)) throws -> Engine {
        try makeEngine(["probe-1.0.0.so", "probe-2.0.0.so"]) {
            $0.drainTimeout = drain
            $0.callTimeout = call
        }
    }

    @Test func aCallPastItsDeadlineAnswersAndNoLongerHoldsTheDrain() async throws {
        let gate = try Gate()
        let engine = try engine(drain: .seconds(30))
        #expect(await engine.apply(lockDefinition("locks", plugin: "probe", ["releaseWhen": gate.path])).action == .added)

        let started = ContinuousClock.now
        do {
            _ = try await engine.tryLock(store: "locks", resource: "never:a", owner: "o", expiryInSeconds: 5,
                                         deadline: started.advanced(by: .milliseconds(200)))
            Issue.record("a call the plugin never completes returned")
        } catch {
            guard case .deadlineExceeded(let key, _) = error else { Issue.record("\(error)"); return }
            #expect(key == ComponentKey(kind: .lock, name: "locks"))
        }
        #expect(ContinuousClock.now - started < .seconds(5))

        // The reload does not wait the 30 s drain timeout for the call its caller gave up on.
        let reloadStarted = ContinuousClock.now
        let reload = await engine.apply(lockDefinition("locks", plugin: "probe", ["releaseWhen": gate.path, "epoch": "2"]))
        #expect(reload.action == .reloaded, "\(reload)")
        #expect(ContinuousClock.now - reloadStarted < .seconds(10))
        #expect(reload.callsStillDraining == 1)
        #expect(engine.abandonedGenerations.map(\.generation) == [1])
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "o", expiryInSeconds: 5).generation == 2)

        // The plugin completes the call at last: generation 1 is destroyed.
        gate.open()
        await engine.settle()
        #expect(engine.abandonedGenerations.isEmpty)
        #expect(engine.leaseViolations == 0)
    }

    @Test func aNeverCompletingCallDoesNotBlockReloadSwapOrRemoval() async throws {
        let gate = try Gate()
        let engine = try engine(drain: .milliseconds(200))
        let definition = { (version: String, epoch: String) in
            lockDefinition("flt", plugin: "probe", version: version, ["releaseWhen": gate.path, "epoch": epoch])
        }
        #expect(await engine.apply(definition("1.0.0", "1")).action == .added)
        let stuck = Task { try await engine.tryLock(store: "flt", resource: "never:x", owner: "o", expiryInSeconds: 5) }
        while engine.components.first?.inFlight != 1 { await Task.yield() }

        let reload = await engine.apply(definition("1.0.0", "2"))
        #expect(reload.action == .reloaded && reload.callsStillDraining == 1, "\(reload)")
        #expect(reload.warnings.contains { $0.contains("abandoned") }, "\(reload.warnings)")
        #expect(engine.abandonedGenerations.map { "\($0.key)#\($0.generation)=\($0.callsOutstanding)" } == ["lock/flt#1=1"])
        #expect(engine.components.first?.drainingGeneration == 1)

        // The component keeps working: a later reload, a version swap and the removal all succeed.
        #expect(await engine.apply(definition("1.0.0", "3")).action == .reloaded)
        let swap = await engine.apply(definition("2.0.0", "3"))
        #expect(swap.action == .versionSwapped, "\(swap)")
        #expect(try await engine.tryLock(store: "flt", resource: "r", owner: "o", expiryInSeconds: 5).generation == 4)
        let removal = await engine.remove(ComponentKey(kind: .lock, name: "flt"))
        #expect(removal.action == .removed && removal.callsStillDraining == 0, "\(removal)")

        // The caller of the stuck call is still waiting (its deadline is a minute away); the plugin
        // completes it, on the generation it started on, which is then destroyed.
        gate.open()
        let served = try await stuck.value
        #expect(served.value && served.generation == 1)
        await engine.settle()
        #expect(engine.abandonedGenerations.isEmpty)
        #expect(engine.leaseViolations == 0)
    }

    @Test func shutdownAbandonsWhatThePluginHoldsAndExpiringAnswersTheCaller() async throws {
        let gate = try Gate()
        defer { gate.open() }
        let engine = try engine(drain: .milliseconds(200))
        #expect(await engine.apply(lockDefinition("flt", plugin: "probe", ["releaseWhen": gate.path])).action == .added)
        #expect(await engine.apply(lockDefinition("fine", plugin: "probe")).action == .added)
        let stuck = Task { try await engine.tryLock(store: "flt", resource: "never:x", owner: "o", expiryInSeconds: 5) }
        while engine.components.first(where: { $0.key.name == "flt" })?.inFlight != 1 { await Task.yield() }

        let started = ContinuousClock.now
        let left = await engine.shutdown()
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(left.map { "\($0.key)#\($0.generation)" } == ["lock/flt#1"])
        #expect(engine.components.isEmpty)

        #expect(engine.expireCallsInFlight() == 1)
        do {
            _ = try await stuck.value
            Issue.record("the expired call returned a value")
        } catch {
            guard case .deadlineExceeded = error as? CallError else { Issue.record("\(error)"); return }
        }
    }
}
