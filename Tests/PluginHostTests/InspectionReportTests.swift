import MoltTestSupport
import PluginHost
import Testing

/// What `molt plugin identify` writes for `molt serve`'s catalog reads back as the identity the loader found:
/// operations, declared keys, state formats, capabilities and flags included.
@Suite struct InspectionReportTests {
    @Test func anIdentityTravelsWhole() throws {
        let loader = try Fixtures.loader(with: ["ops-1.0.0.so", "probe-stateful-1.0.0.so", "probe-declared-1.0.0.so", "holds-state-1.0.0.so"])
        for name in ["ops-1.0.0.so", "probe-stateful-1.0.0.so", "probe-declared-1.0.0.so", "holds-state-1.0.0.so"] {
            let binary = try loader.load(path: name)
            let plugin = InspectedPlugin(path: binary.sourcePath, sha256: binary.sha256, info: binary.info, linksSwiftRuntime: binary.linksSwiftRuntime)
            let line = InspectionReport.identified(plugin).encoded()
            #expect(line.last == UInt8(ascii: "\n") && line.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") })
            #expect(InspectionReport.decode(Array(line.dropLast())) == .identified(plugin), "\(name)")
        }
        let probe = try loader.load(path: "probe-stateful-1.0.0.so").info
        #expect(probe.stateFormats != nil && !probe.capabilities.isEmpty)  // the round trip above covered both
        #expect(try loader.load(path: "ops-1.0.0.so").info.operations.isEmpty == false)
    }

    @Test func refusalsAndProgressReadBackAndOtherLinesAreNotReports() {
        for report in [InspectionReport.begin(path: "/p/a.so"), .refused(path: "/p/b.so", reason: "refusing plugin /p/b.so: \"quoted\"\n")] {
            #expect(InspectionReport.decode(Array(report.encoded().dropLast())) == report)
        }
        #expect(InspectionReport.decode(Array("hello from a plugin's constructor".utf8)) == nil)
        #expect(InspectionReport.decode(Array("{}".utf8)) == nil)
    }
}
