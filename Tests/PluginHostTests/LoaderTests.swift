import Foundation
import MoltTestSupport
import PluginABI
import PluginHost
import Testing

/// The loader against real plugin binaries produced by the build.
@Suite struct LoaderTests {
    @Test func loadsMemoryLockAndReportsItsInfo() throws {
        let loader = try Fixtures.loader(with: ["memorylock-1.0.0.so"])
        let binary = try loader.load(path: "memorylock-1.0.0.so")
        #expect(binary.info.name == "memorylock")
        #expect(binary.info.version == SemanticVersion("1.0.0"))
        #expect(binary.info.kind == .lock)
        #expect(binary.info.abiVersion == hostABIVersion)
        #expect(binary.info.stateFormats == 1...1)
        #expect(binary.info.capabilities.contains([.applyConfig, .stateTransfer, .configKeys]))
        #expect(!binary.linksSwiftRuntime)
        let maxLocks = try #require(binary.info.configKeys.first { $0.name == "maxLocks" })
        #expect(maxLocks.appliesInPlace && maxLocks.deprecatedAliases == ["maxLockCount"] && maxLocks.defaultValue == "0")
        #expect(binary.info.configKeys.first { $0.name == "buckets" }?.appliesInPlace == false)
    }

    @Test func sameBytesShareOneMapping() throws {
        let directory = try Fixtures.pluginDirectory(with: ["memorylock-1.0.0.so"])
        try Fixtures.install(try Fixtures.path("memorylock-1.0.0.so"), into: directory, as: "copy.so")
        let loader = try PluginLoader(pluginsDirectory: directory)
        let first = try loader.load(path: "memorylock-1.0.0.so")
        let second = try loader.load(path: "copy.so")
        #expect(first === second)
    }

    @Test func lifecycleAndDaprLockSemantics() async throws {
        let binary = try Fixtures.loader(with: ["memorylock-1.0.0.so"]).load(path: "memorylock-1.0.0.so")
        let lock = try PluginInstance(binary: binary, componentName: "lockstore", config: [:], logger: .init(label: "test"))
        defer { lock.destroy() }
        #expect(lock.readiness() == .ready)

        #expect(try await lock.tryLock(resource: "order-1", owner: "alice", expiryInSeconds: 60))
        #expect(try await !lock.tryLock(resource: "order-1", owner: "bob", expiryInSeconds: 60))
        #expect(try await lock.unlock(resource: "order-1", owner: "bob") == .lockBelongsToOthers)
        #expect(try await lock.unlock(resource: "missing", owner: "alice") == .lockDoesNotExist)
        #expect(try await lock.unlock(resource: "order-1", owner: "alice") == .success)
        #expect(try await lock.tryLock(resource: "order-1", owner: "bob", expiryInSeconds: 60))

        await #expect(throws: PluginError.self) { try await lock.tryLock(resource: "r", owner: "alice", expiryInSeconds: 0) }
        do {
            _ = try await lock.tryLock(resource: "", owner: "alice", expiryInSeconds: 5)
            Issue.record("an empty resource id must be refused")
        } catch {
            #expect(error.status == .invalidArgument)
            #expect(error.message.contains("resource_id"))
        }
    }

    /// ABI minors only add: a plugin built for ABI 1.0 (host services of 1.0's size in its header)
    /// loads in an ABI 1.2 host and serves.
    @Test func aPluginBuiltForABI1_0LoadsAndServes() async throws {
        let binary = try Fixtures.loader(with: ["abi-1-0.so"]).load(path: "abi-1-0.so")
        #expect(binary.info.abiVersion == (1, 0))
        #expect(hostABIVersion == (1, 3))
        let lock = try PluginInstance(binary: binary, componentName: "lockstore", config: [:], logger: .init(label: "test"))
        defer { lock.destroy() }
        #expect(lock.readiness() == .ready)
        #expect(try await lock.tryLock(resource: "old", owner: "alice", expiryInSeconds: 60))
        #expect(try await lock.unlock(resource: "old", owner: "alice") == .success)
    }

    @Test func anExpiredLockIsFreeForAnyone() async throws {
        let binary = try Fixtures.loader(with: ["memorylock-1.0.0.so"]).load(path: "memorylock-1.0.0.so")
        let lock = try PluginInstance(binary: binary, componentName: "lockstore", config: [:], logger: .init(label: "test"))
        defer { lock.destroy() }
        #expect(try await lock.tryLock(resource: "job", owner: "alice", expiryInSeconds: 1))
        #expect(try await !lock.tryLock(resource: "job", owner: "bob", expiryInSeconds: 1))
        try await Task.sleep(for: .milliseconds(1100))
        #expect(try await lock.unlock(resource: "job", owner: "alice") == .lockDoesNotExist)
        #expect(try await lock.tryLock(resource: "job", owner: "bob", expiryInSeconds: 1))
    }

    @Test func applyConfigInPlaceOrNeedsReload() throws {
        let binary = try Fixtures.loader(with: ["memorylock-1.0.0.so"]).load(path: "memorylock-1.0.0.so")
        let lock = try PluginInstance(binary: binary, componentName: "lockstore", config: ["buckets": "1024"], logger: .init(label: "test"))
        defer { lock.destroy() }
        #expect(lock.applyConfig(["buckets": "1024", "maxLocks": "10"]) == .applied)
        guard case .needsReload(let why) = lock.applyConfig(["buckets": "2048"]) else {
            Issue.record("changing buckets must need a reload"); return
        }
        #expect(why.contains("buckets"))
        guard case .rejected(let refusal) = lock.applyConfig(["buckets": "1024", "maxLocks": "lots"]) else {
            Issue.record("a malformed number must be refused"); return
        }
        #expect(refusal.contains("maxLocks") && refusal.contains("lots"))
    }

    @Test func initFailureCarriesThePluginsMessage() throws {
        let binary = try Fixtures.loader(with: ["memorylock-1.0.0.so"]).load(path: "memorylock-1.0.0.so")
        #expect {
            try PluginInstance(binary: binary, componentName: "lockstore", config: ["buckets": "-3"], logger: .init(label: "test"))
        } throws: { error in
            (error as? PluginError).map { $0.status == .invalidArgument && $0.message.contains("buckets") } ?? false
        }
    }

    @Test func deprecatedAliasesAreRenamedWithAWarning() throws {
        let binary = try Fixtures.loader(with: ["memorylock-1.0.0.so"]).load(path: "memorylock-1.0.0.so")
        let normalized = try binary.normalize(config: ["maxLockCount": "5"])
        #expect(normalized.explicit == ["maxLocks": "5"])
        #expect(normalized.config == ["maxLocks": "5", "sweepIntervalMs": "1000", "buckets": "65536"])
        let warnings = normalized.warnings
        #expect(warnings.count == 1 && warnings[0].contains("DEPRECATED") && warnings[0].contains("maxLocks"))
        #expect(throws: ConfigProblem.self) { try binary.normalize(config: ["maxLockCount": "5", "maxLocks": "6"]) }
    }

    @Test func stateExportedByV1ImportsIntoV2AndBack() async throws {
        let loader = try Fixtures.loader(with: ["memorylock-1.0.0.so", "memorylock-2.0.0.so"])
        let v1 = try PluginInstance(binary: loader.load(path: "memorylock-1.0.0.so"), componentName: "l", config: [:], logger: .init(label: "test"))
        let v2 = try PluginInstance(binary: loader.load(path: "memorylock-2.0.0.so"), componentName: "l", config: [:], logger: .init(label: "test"))
        let back = try PluginInstance(binary: loader.load(path: "memorylock-1.0.0.so"), componentName: "l", config: [:], logger: .init(label: "test"))
        defer { v1.destroy(); v2.destroy(); back.destroy() }
        for index in 0..<500 {
            #expect(try await v1.tryLock(resource: "r\(index)", owner: "owner-\(index)", expiryInSeconds: index == 0 ? 1 : 600))
        }
        try v2.importState(v1.exportState(format: 1), format: 1)
        for index in [0, 1, 250, 499] {
            #expect(try await v2.unlock(resource: "r\(index)", owner: "someone-else") == .lockBelongsToOthers)
            #expect(try await !v2.tryLock(resource: "r\(index)", owner: "someone-else", expiryInSeconds: 5))
        }
        #expect(try await v2.unlock(resource: "r7", owner: "owner-7") == .success)

        // v2 exports v1's format for a downgrade; the expiry travels too (r0 expires after 1 s).
        try back.importState(v2.exportState(format: 1), format: 1)
        #expect(try await back.unlock(resource: "r7", owner: "owner-7") == .lockDoesNotExist)
        #expect(try await back.unlock(resource: "r499", owner: "someone-else") == .lockBelongsToOthers)
        try await Task.sleep(for: .milliseconds(1100))
        #expect(try await back.tryLock(resource: "r0", owner: "someone-else", expiryInSeconds: 5))
        #expect(try await !back.tryLock(resource: "r1", owner: "someone-else", expiryInSeconds: 5))

        // v1 does not know format 2, and a corrupt state is refused.
        #expect(throws: PluginError.self) { try back.importState(v2.exportState(format: 2), format: 2) }
        #expect(throws: PluginError.self) { try v2.importState([0x4D, 0x4C, 0x4B, 0x32, 1, 2, 3], format: 2) }
    }

    @Test func twoVersionsSideBySideAnswerAsThemselves() async throws {
        let loader = try Fixtures.loader(with: ["memorylock-1.0.0.so", "memorylock-2.0.0.so", "swift-testlock-1.0.0.so", "swift-testlock-2.0.0.so"])
        let binaries = try ["memorylock-1.0.0.so", "memorylock-2.0.0.so", "swift-testlock-1.0.0.so", "swift-testlock-2.0.0.so"].map { try loader.load(path: $0) }
        #expect(binaries.map(\.info.id) == ["memorylock@1.0.0", "memorylock@2.0.0", "swift-testlock@1.0.0", "swift-testlock@2.0.0"])
        #expect(binaries.map(\.linksSwiftRuntime) == [false, false, true, true])
        #expect(Set(binaries.map(\.stagedPath)).count == 4)
        #expect(binaries.map(\.info.stateFormats) == [1...1, 1...2, 1...1, 1...2])
        let instances = try binaries.map { try PluginInstance(binary: $0, componentName: "l", config: [:], logger: .init(label: "test")) }
        defer { instances.forEach { $0.destroy() } }
        for instance in instances {
            #expect(instance.readiness() == .ready)
            #expect(try await instance.tryLock(resource: "shared-name", owner: instance.binary.info.id, expiryInSeconds: 30))
            #expect(try await instance.unlock(resource: "shared-name", owner: "x") == .lockBelongsToOthers)
        }
    }

    @Test func swiftPluginStateMovesBetweenVersions() async throws {
        let loader = try Fixtures.loader(with: ["swift-testlock-1.0.0.so", "swift-testlock-2.0.0.so"])
        let v1 = try PluginInstance(binary: loader.load(path: "swift-testlock-1.0.0.so"), componentName: "l", config: [:], logger: .init(label: "test"))
        let v2 = try PluginInstance(binary: loader.load(path: "swift-testlock-2.0.0.so"), componentName: "l", config: [:], logger: .init(label: "test"))
        defer { v1.destroy(); v2.destroy() }
        #expect(try await v1.tryLock(resource: "a", owner: "alice", expiryInSeconds: 60))
        try v2.importState(v1.exportState(format: 1), format: 1)
        #expect(try await v2.unlock(resource: "a", owner: "bob") == .lockBelongsToOthers)
        #expect(try await v2.unlock(resource: "a", owner: "alice") == .success)
        #expect(v1.applyConfig(["greeting": "hi"]) == .applied)
        if case .needsReload = v1.applyConfig(["capacity": "9"]) {} else { Issue.record("capacity must need a reload") }
    }

    @Test func aCPluginIsUnmappedAfterItsLastInstanceAndASwiftPluginStays() async throws {
        let loader = try Fixtures.loader(with: ["memorylock-1.0.0.so", "swift-testlock-1.0.0.so"])
        var cBinary: PluginBinary? = try loader.load(path: "memorylock-1.0.0.so")
        var swiftBinary: PluginBinary? = try loader.load(path: "swift-testlock-1.0.0.so")
        let cStaged = cBinary!.stagedPath, swiftStaged = swiftBinary!.stagedPath
        var cInstance: PluginInstance? = try PluginInstance(binary: cBinary!, componentName: "l", config: [:], logger: .init(label: "test"))
        var swiftInstance: PluginInstance? = try PluginInstance(binary: swiftBinary!, componentName: "l", config: [:], logger: .init(label: "test"))
        #expect(Fixtures.processMaps().contains(cStaged))
        #expect(Fixtures.processMaps().contains(swiftStaged))
        #expect(try await swiftInstance!.tryLock(resource: "x", owner: "y", expiryInSeconds: 5))

        cInstance!.destroy(); swiftInstance!.destroy()
        cInstance = nil; swiftInstance = nil; cBinary = nil; swiftBinary = nil
        #expect(!Fixtures.processMaps().contains(cStaged), "the C plugin must be unmapped after its last instance")
        #expect(Fixtures.processMaps().contains(swiftStaged), "a Swift plugin must stay mapped")
        #expect(loader.mappedBinaries.map(\.info.name) == ["swift-testlock"])

        // The Swift runtime still works after the instance is gone: dynamic casts, and the same
        // binary is reused rather than mapped again.
        let values: [Any] = [1, "two", 3.0]
        #expect(values.compactMap { $0 as? String } == ["two"])
        let again = try loader.load(path: "swift-testlock-1.0.0.so")
        #expect(again.stagedPath == swiftStaged)
        let instance = try PluginInstance(binary: again, componentName: "l", config: [:], logger: .init(label: "test"))
        #expect(try await instance.tryLock(resource: "x", owner: "y", expiryInSeconds: 5))
        instance.destroy()
    }

    @Test func minimalExamplesFromTheGuideLoad() async throws {
        let loader = try Fixtures.loader(with: ["minimal-lock.so", "minimal-swift-lock.so"])
        for name in ["minimal-lock.so", "minimal-swift-lock.so"] {
            let instance = try PluginInstance(binary: loader.load(path: name), componentName: "l", config: [:], logger: .init(label: "test"))
            #expect(instance.readiness() == .ready)
            #expect(try await instance.tryLock(resource: "r", owner: "a", expiryInSeconds: 5))
            #expect(try await instance.unlock(resource: "r", owner: "b") == .lockBelongsToOthers)
            #expect(try await instance.unlock(resource: "r", owner: "a") == .success)
            instance.destroy()
        }
    }
}
