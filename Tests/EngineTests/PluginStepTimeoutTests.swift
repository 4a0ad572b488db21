import Foundation
import Engine
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// Every blocking plugin step has a timeout: a plugin that overruns one fails the apply naming the
/// step, and the old generation keeps serving with its state.
@Suite(.timeLimit(.minutes(1))) struct PluginStepTimeoutTests {
    func gate() throws -> String { try Fixtures.makeTemporaryDirectory() + "/gate" }

    /// Serves "locks" on `plugin`, takes a lock, applies `config` (which must fail), and checks the old
    /// generation still serves the held lock. Returns the failed result.
    func failedApply(_ config: [String: String], plugin: String = "probe", initial: [String: String] = [:],
                     configure: (inout EngineSettings) -> Void) async throws -> ApplyResult {
        let engine = try makeEngine(["probe-1.0.0.so", "probe-stateful-1.0.0.so"], configure: configure)
        #expect(await engine.apply(lockDefinition("locks", plugin: plugin, initial)).action == .added)
        #expect(try await engine.tryLock(store: "locks", resource: "held", owner: "alice", expiryInSeconds: 60).value)
        let started = ContinuousClock.now
        let result = await engine.apply(lockDefinition("locks", plugin: plugin, config))
        #expect(ContinuousClock.now - started < .seconds(5), "the apply waited for the plugin")
        #expect(result.action == .failed && result.failure == .timedOut, "\(result)")
        let check = try await engine.unlock(store: "locks", resource: "held", owner: "bob")
        #expect(check.value == .lockBelongsToOthers && check.generation == 1)
        #expect(try await engine.unlock(store: "locks", resource: "held", owner: "alice").value == .success)
        #expect(engine.appliesInProgress.isEmpty)
        return result
    }

    @Test func anInitThatBlocksFailsTheApplyNamingInit() async throws {
        let result = try await failedApply(["initWaitFor": try gate()]) { $0.initTimeout = .milliseconds(200) }
        #expect(result.error?.contains("init did not return within") == true, "\(result)")
    }

    @Test func readinessThatNeverComesFailsTheApply() async throws {
        let result = try await failedApply(["readiness": "never"]) { $0.readinessTimeout = .milliseconds(200) }
        #expect(result.error?.contains("not ready after") == true && result.error?.contains("never ready") == true, "\(result)")
    }

    @Test func anExportThatHangsFailsTheHandoffAndResumesTheOldGeneration() async throws {
        let path = try gate()
        defer { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let result = try await failedApply(["exportWaitFor": path, "epoch": "2"], plugin: "probe-stateful", initial: ["exportWaitFor": path]) {
            $0.stateTransferTimeout = .milliseconds(200)
        }
        #expect(result.error?.contains("export_state") == true, "\(result)")
    }

    @Test func anApplyConfigThatHangsFailsTheApplyNamingIt() async throws {
        let path = try gate()
        defer { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let result = try await failedApply(["applyWaitFor": path, "live.x": "2"], initial: ["applyWaitFor": path]) {
            $0.applyConfigTimeout = .milliseconds(200)
        }
        #expect(result.error?.contains("apply_config did not return") == true, "\(result)")
    }

    @Test func aDestroyThatHangsDoesNotHoldTheRemovalUp() async throws {
        let path = try gate()
        defer { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let engine = try makeEngine(["probe-1.0.0.so"]) { $0.destroyTimeout = .milliseconds(200) }
        #expect(await engine.apply(lockDefinition("locks", plugin: "probe", ["destroyWaitFor": path])).action == .added)
        let started = ContinuousClock.now
        let removal = await engine.remove(ComponentKey(kind: .lock, name: "locks"))
        #expect(removal.action == .removed, "\(removal)")
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// apply_config and export run on threads of their own: with more of them blocked at once than the
    /// cooperative pool has threads, a call to another component still completes.
    @Test func blockingApplyConfigAndExportDoNotStallCalls() async throws {
        let engine = try makeEngine(["probe-1.0.0.so", "probe-stateful-1.0.0.so"])
        #expect(await engine.apply(lockDefinition("other", plugin: "probe")).action == .added)
        let path = try gate()
        let count = ProcessInfo.processInfo.activeProcessorCount + 2
        var applying: [Task<ApplyResult, Never>] = []
        for index in 0..<count {
            let (name, stateful) = ("blocking-\(index)", index % 2 == 1)
            let plugin = stateful ? "probe-stateful" : "probe"
            let initial = [stateful ? "exportWaitFor" : "applyWaitFor": path]
            #expect(await engine.apply(lockDefinition(name, plugin: plugin, initial)).action == .added)
            let change = stateful ? ["epoch": "2"] : ["live.x": "2"]
            applying.append(Task { await engine.apply(lockDefinition(name, plugin: plugin, initial.merging(change) { $1 })) })
        }
        try await Task.sleep(for: .milliseconds(200))  // lets the applies reach the plugin
        #expect(engine.appliesInProgress.count == count)
        #expect(try await engine.tryLock(store: "other", resource: "during", owner: "o", expiryInSeconds: 5).value)
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        for task in applying {
            let result = await task.value
            #expect(result.succeeded, "\(result)")
        }
    }
}
