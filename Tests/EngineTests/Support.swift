import Engine
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// An engine over a private plugins directory holding copies of `plugins`.
func makeEngine(_ plugins: [String], configure: (inout EngineSettings) -> Void = { _ in }) throws -> Engine {
    var settings = EngineSettings()
    settings.readinessInterval = .milliseconds(1)
    settings.readinessTimeout = .seconds(5)
    settings.drainTimeout = .seconds(5)
    configure(&settings)
    let catalog = PluginCatalog(loader: try Fixtures.loader(with: plugins))
    catalog.rescan()
    return Engine(catalog: catalog, settings: settings)
}

/// Continuous lock traffic from many concurrent tasks, recording every failure and checking that
/// each task never sees an older generation after a newer one (calls move forward, never back).
final class Traffic: Sendable {
    final class Tally: Sendable {
        let calls = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        let regressions = Atomic<Int>(0)
        let generationsSeen = Mutex<Set<UInt64>>([])
        let stopping = Atomic<Bool>(false)
    }
    let tally = Tally()
    private let task: Task<Void, Never>

    init(engine: Engine, store: String, tasks: Int = 8) {
        let tally = self.tally
        task = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<tasks {
                    group.addTask {
                        var newest: UInt64 = 0
                        var seen = Set<UInt64>()
                        var iteration = 0
                        while !tally.stopping.load(ordering: .relaxed) {
                            // A plugin that completes inline never suspends the caller; yield as
                            // separate client requests would, or 2 workers starve a 2-core pool.
                            await Task.yield()
                            iteration += 1
                            let resource = "w\(worker)-\(iteration % 64)"
                            do {
                                let locked = try await engine.tryLock(store: store, resource: resource, owner: "w\(worker)", expiryInSeconds: 30)
                                let unlocked = try await engine.unlock(store: store, resource: resource, owner: "w\(worker)")
                                for generation in [locked.generation, unlocked.generation] {
                                    if generation < newest { tally.regressions.add(1, ordering: .relaxed) }
                                    newest = max(newest, generation)
                                    seen.insert(generation)
                                }
                                tally.calls.add(2, ordering: .relaxed)
                            } catch {
                                tally.failures.withLock { $0.append("\(error)") }
                            }
                        }
                        let local = seen
                        tally.generationsSeen.withLock { $0.formUnion(local) }
                    }
                }
            }
        }
    }

    var generationsSeen: Set<UInt64> { tally.generationsSeen.withLock { $0 } }

    /// Stops the traffic and returns once every task has ended.
    func stop() async {
        tally.stopping.store(true, ordering: .relaxed)
        await task.value
    }

    /// Waits until at least `count` more calls have completed (so each apply happens under load).
    func waitForCalls(_ count: Int) async {
        let target = tally.calls.load(ordering: .relaxed) + count
        while tally.calls.load(ordering: .relaxed) < target && tally.failures.withLock({ $0.isEmpty }) { await Task.yield() }
    }

    func expectClean(_ sourceLocation: SourceLocation = #_sourceLocation) {
        let failures = tally.failures.withLock { $0 }
        let regressions = tally.regressions.load(ordering: .relaxed)
        let calls = tally.calls.load(ordering: .relaxed)
        #expect(failures == [], sourceLocation: sourceLocation)
        #expect(regressions == 0, "a task saw an older generation after a newer one", sourceLocation: sourceLocation)
        #expect(calls > 0, sourceLocation: sourceLocation)
    }
}

/// A flag and a list shared between a test and the tasks it starts.
final class Shared: Sendable {
    let flag = Atomic<Bool>(false)
    let items = Mutex<[String]>([])
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

func lockDefinition(_ name: String, plugin: String, version: String? = nil, _ config: [String: String] = [:]) -> ComponentDefinition {
    ComponentDefinition(kind: .lock, name: name, plugin: plugin, version: version.flatMap(SemanticVersion.init), config: config)
}
