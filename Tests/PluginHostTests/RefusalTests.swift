import Foundation
import MoltTestSupport
import PluginHost
import Testing

/// Every refusal is triggered by a real bad file, produces its own precise error, and leaves the
/// loader usable.
@Suite struct RefusalTests {
    /// Loads `name` expecting a refusal, then proves the same loader still loads a good plugin.
    func refusal(_ name: String, in directory: String, pin: String? = nil) throws -> LoadError {
        try Fixtures.install(try Fixtures.path("memorylock-1.0.0.so"), into: directory, as: "good.so")
        let loader = try PluginLoader(pluginsDirectory: directory)
        var caught: LoadError?
        do {
            _ = try loader.load(path: name, pin: pin)
        } catch {
            caught = error
        }
        let good = try loader.load(path: "good.so")
        #expect(good.info.name == "memorylock", "the loader must stay usable after a refusal")
        return try #require(caught, "\(name) must be refused")
    }

    func refusal(ofFixture name: String) throws -> LoadError {
        try refusal(name, in: Fixtures.pluginDirectory(with: [name]))
    }

    @Test func notASharedObject() throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        try "#!/bin/sh\necho hi\n".write(toFile: "\(directory)/script.so", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(directory)/script.so")
        guard case .notSharedObject(_, let reason) = try refusal("script.so", in: directory) else { Issue.record("wrong error"); return }
        #expect(reason == "not an ELF file")
    }

    @Test func anELFExecutableThatIsNotASharedObject() throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        var header = [UInt8](repeating: 0, count: 64)
        header[0...6] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1]
        header[16] = 2  // ET_EXEC
        header[18] = 62 // x86-64
        #expect(FileManager.default.createFile(atPath: "\(directory)/exec.so", contents: Data(header), attributes: [.posixPermissions: 0o755]))
        guard case .notSharedObject(_, let reason) = try refusal("exec.so", in: directory) else { Issue.record("wrong error"); return }
        #expect(reason.contains("not a shared object"))
    }

    @Test func missingRequiredSymbol() throws {
        guard case .missingSymbol(_, let symbol, _) = try refusal(ofFixture: "missing-readiness.so") else { Issue.record("wrong error"); return }
        #expect(symbol == "molt_plugin_readiness")
    }

    @Test func aDefinedButHiddenSymbolIsExplained() throws {
        let error = try refusal(ofFixture: "hidden-readiness.so")
        guard case .missingSymbol(_, let symbol, let why) = error else { Issue.record("wrong error"); return }
        #expect(symbol == "molt_plugin_readiness")
        #expect(why.contains("the library defines it but does not export it"))
        #expect(error.description.contains("declare it with MOLT_EXPORT"))
        #expect(error.description.contains("-fvisibility=hidden"))
        // A symbol that is simply absent gets no such hint.
        guard case .missingSymbol(_, _, let absent) = try refusal(ofFixture: "missing-readiness.so") else { Issue.record("wrong error"); return }
        #expect(!absent.contains("does not export"))
    }

    @Test func missingOperationOfItsKind() throws {
        guard case .missingSymbol(_, let symbol, let why) = try refusal(ofFixture: "missing-unlock.so") else { Issue.record("wrong error"); return }
        #expect(symbol == "molt_lock_unlock" && why.contains("lock"))
    }

    @Test func abiMajorMismatch() throws {
        guard case .abiMajorMismatch(_, let plugin, let host) = try refusal(ofFixture: "abi-major-2.so") else { Issue.record("wrong error"); return }
        #expect(plugin == (2, 0) && host == (1, 3))
    }

    @Test func abiMinorTooNew() throws {
        guard case .abiMinorTooNew(_, let plugin, _) = try refusal(ofFixture: "abi-minor-99.so") else { Issue.record("wrong error"); return }
        #expect(plugin == (1, 99))
    }

    @Test func unknownKind() throws {
        guard case .unknownKind(_, let kind) = try refusal(ofFixture: "unknown-kind.so") else { Issue.record("wrong error"); return }
        #expect(kind == "queue")
    }

    @Test func versionThatIsNotSemver() throws {
        guard case .invalidInfo(_, let reason) = try refusal(ofFixture: "bad-version.so") else { Issue.record("wrong error"); return }
        #expect(reason.contains("one.two"))
    }

    @Test func duplicateNameAndVersionFromDifferentBytes() throws {
        let directory = try Fixtures.pluginDirectory(with: ["dup-a.so", "dup-b.so"])
        let loader = try PluginLoader(pluginsDirectory: directory)
        let first = try loader.load(path: "dup-a.so")
        #expect(throws: LoadError.duplicateNameVersion(path: "\(directory)/dup-b.so", plugin: "dupe@1.0.0", loadedFrom: "\(directory)/dup-a.so")) {
            try loader.load(path: "dup-b.so")
        }
        withExtendedLifetime(first) {}
    }

    @Test func writableByOthers() throws {
        let directory = try Fixtures.pluginDirectory(with: ["memorylock-2.0.0.so"])
        try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: "\(directory)/memorylock-2.0.0.so")
        guard case .untrusted(_, let rule, _) = try refusal("memorylock-2.0.0.so", in: directory) else { Issue.record("wrong error"); return }
        #expect(rule == .writableByGroupOrOthers)
    }

    @Test func symlinkLeavingThePluginsDirectory() throws {
        let outside = try Fixtures.pluginDirectory(with: ["memorylock-2.0.0.so"])
        let directory = try Fixtures.makeTemporaryDirectory()
        try FileManager.default.createSymbolicLink(atPath: "\(directory)/escape.so", withDestinationPath: "\(outside)/memorylock-2.0.0.so")
        guard case .untrusted(_, let rule, _) = try refusal("escape.so", in: directory) else { Issue.record("wrong error"); return }
        #expect(rule == .symlinkLeavesPluginsDirectory)
    }

    @Test func symlinkInsideThePluginsDirectoryIsFine() throws {
        let directory = try Fixtures.pluginDirectory(with: ["memorylock-2.0.0.so"])
        try FileManager.default.createSymbolicLink(atPath: "\(directory)/current.so", withDestinationPath: "memorylock-2.0.0.so")
        #expect(try PluginLoader(pluginsDirectory: directory).load(path: "current.so").info.version == SemanticVersion("2.0.0"))
    }

    @Test func pathOutsideThePluginsDirectory() throws {
        let outside = try Fixtures.pluginDirectory(with: ["memorylock-2.0.0.so"])
        let directory = try Fixtures.makeTemporaryDirectory()
        guard case .untrusted(_, let rule, _) = try refusal("\(outside)/memorylock-2.0.0.so", in: directory) else { Issue.record("wrong error"); return }
        #expect(rule == .outsidePluginsDirectory)
        guard case .untrusted(_, let dotdot, _) = try refusal("../\(outside.split(separator: "/").last!)/memorylock-2.0.0.so", in: directory) else {
            Issue.record("wrong error"); return
        }
        #expect(dotdot == .outsidePluginsDirectory)
    }

    @Test(.enabled(if: geteuid() == 0, "changing a file's owner needs root"))
    func ownedByAnotherUser() throws {
        let directory = try Fixtures.pluginDirectory(with: ["memorylock-2.0.0.so"])
        #expect(chown("\(directory)/memorylock-2.0.0.so", 4242, 4242) == 0)
        guard case .untrusted(_, let rule, let detail) = try refusal("memorylock-2.0.0.so", in: directory) else { Issue.record("wrong error"); return }
        #expect(rule == .untrustedOwner && detail.contains("4242"))
    }

    @Test func pluginsDirectoryWritableByOthers() throws {
        let directory = try Fixtures.pluginDirectory(with: ["memorylock-2.0.0.so"])
        #expect(chmod(directory, 0o777) == 0)
        let loader = try PluginLoader(pluginsDirectory: directory)
        #expect {
            try loader.load(path: "memorylock-2.0.0.so")
        } throws: { error in
            if case .untrusted(_, .pluginsDirectoryWritableByOthers, _) = error as? LoadError { return true }
            return false
        }
        #expect(chmod(directory, 0o700) == 0)
        #expect(try loader.load(path: "memorylock-2.0.0.so").info.name == "memorylock")
    }

    @Test func sha256PinIsCheckedOnTheLoadedBytes() throws {
        let directory = try Fixtures.pluginDirectory(with: ["memorylock-2.0.0.so"])
        let actual = try PluginLoader(pluginsDirectory: directory).load(path: "memorylock-2.0.0.so").sha256
        let wrong = String(repeating: "0", count: 64)
        guard case .pinMismatch(_, let expected, let found) = try refusal("memorylock-2.0.0.so", in: directory, pin: wrong) else {
            Issue.record("wrong error"); return
        }
        #expect(expected == wrong && found == actual)
        #expect(try PluginLoader(pluginsDirectory: directory).load(path: "memorylock-2.0.0.so", pin: "sha256:\(actual.uppercased())").sha256 == actual)
    }

    @Test func eachRefusalHasItsOwnMessage() throws {
        let fixtures = ["missing-readiness.so", "missing-unlock.so", "abi-major-2.so", "abi-minor-99.so", "unknown-kind.so", "bad-version.so"]
        let messages = try fixtures.map { try refusal(ofFixture: $0).description }
        #expect(Set(messages).count == fixtures.count)
        #expect(messages[0].contains("missing required symbol molt_plugin_readiness"))
        #expect(messages[2].contains("ABI major version mismatch"))
        #expect(messages[3].contains("ABI minor version too new"))
        #expect(messages[4].contains("unknown component kind 'queue'"))
    }
}

@Suite struct CatalogTests {
    @Test func indexesVersionsSideBySideAndReportsBadFiles() throws {
        let directory = try Fixtures.pluginDirectory(with: [
            "memorylock-1.0.0.so", "memorylock-2.0.0.so", "swift-testlock-1.0.0.so", "swift-testlock-2.0.0.so", "abi-major-2.so", "dup-a.so", "dup-b.so",
        ])
        let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: directory))
        let (entries, problems) = catalog.rescan()
        #expect(entries.map(\.info.id) == ["dupe@1.0.0", "memorylock@1.0.0", "memorylock@2.0.0", "swift-testlock@1.0.0", "swift-testlock@2.0.0"])
        #expect(problems.count == 2)
        #expect(problems.contains { $0.path.hasSuffix("abi-major-2.so") })
        #expect(problems.contains { $0.path.hasSuffix("dup-b.so") && $0.description.contains("dupe@1.0.0") })
        #expect(catalog.find(kind: .lock, name: "memorylock")?.info.version == SemanticVersion("2.0.0"))
        #expect(catalog.find(kind: .lock, name: "memorylock", version: SemanticVersion("1.0.0"))?.info.version == SemanticVersion("1.0.0"))
        #expect(catalog.find(kind: .state, name: "memorylock") == nil)

        // A rescan picks up a file dropped in later and maps no Swift binary twice.
        try FileManager.default.removeItem(atPath: "\(directory)/memorylock-2.0.0.so")
        let swiftMappings = catalog.loader.mappedBinaries.filter(\.linksSwiftRuntime).count
        catalog.rescan()
        #expect(catalog.find(kind: .lock, name: "memorylock")?.info.version == SemanticVersion("1.0.0"))
        #expect(catalog.loader.mappedBinaries.filter(\.linksSwiftRuntime).count == swiftMappings)
    }
}

@Suite struct SemanticVersionTests {
    @Test func parsesAndOrdersBySemverPrecedence() {
        let ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "10.0.0"]
        let versions = ordered.compactMap(SemanticVersion.init)
        #expect(versions.count == ordered.count)
        #expect(versions == versions.sorted())
        #expect(SemanticVersion("1.0.0+build.5") == SemanticVersion("1.0.0"))
        for bad in ["1.0", "01.0.0", "1.0.0-", "a.b.c", "1.0.0-01", "", "1.0.0+"] {
            #expect(SemanticVersion(bad) == nil, "\(bad) is not semver")
        }
    }
}
