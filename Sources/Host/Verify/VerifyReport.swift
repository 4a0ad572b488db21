import FoundationEssentials

/// What one check of `molt plugin verify` found.
struct CheckResult: Encodable, Sendable {
    enum Status: String, Encodable, Sendable {
        case ok
        case fail = "FAIL"
        case skip
    }

    let name: String
    let status: Status
    /// ok: what was seen (timings, sizes); FAIL: what went wrong; skip: why the check does not apply.
    let detail: String
}

/// Why a check did not pass: thrown by a check's body.
enum CheckOutcome: Error {
    /// The plugin broke the contract; the message says how (what was asked, what came back, what was expected).
    case fail(String)
    /// The check does not apply to this plugin (a capability it does not export).
    case skip(String)
}

/// The checks of one `molt plugin verify` run, in order. Each is printed as one line as soon as it is
/// known (`ok    name: detail`), unless the report is printed as JSON at the end.
///
/// Used by the one task that runs the checks, one check at a time.
final class VerifyReport {
    private(set) var results: [CheckResult] = []
    let plugin: String
    private let streaming: Bool

    init(plugin: String, streaming: Bool) {
        self.plugin = plugin
        self.streaming = streaming
    }

    var failed: [CheckResult] { results.filter { $0.status == .fail } }
    var passed: Bool { failed.isEmpty }

    /// Runs one check and records it: ok with the detail `body` returns, or what it threw.
    /// Returns whether it passed (a skip is not a pass).
    @discardableResult
    func check(_ name: String, _ body: () async throws(CheckOutcome) -> String) async -> Bool {
        do {
            record(CheckResult(name: name, status: .ok, detail: try await body()))
            return true
        } catch {
            switch error {
            case .fail(let why): record(CheckResult(name: name, status: .fail, detail: why))
            case .skip(let why): record(CheckResult(name: name, status: .skip, detail: why))
            }
            return false
        }
    }

    func record(_ result: CheckResult) {
        results.append(result)
        if streaming { print(Self.line(result)) }
    }

    static func line(_ result: CheckResult) -> String {
        let status = result.status.rawValue.padding(toLength: 4)
        return result.detail.isEmpty ? "\(status)  \(result.name)" : "\(status)  \(result.name): \(result.detail)"
    }

    /// "PASS memorylock@2.0.0: 17 ok, 2 skipped" or "FAIL ...: 2 failed (names), ...".
    var summary: String {
        let ok = results.count { $0.status == .ok }, skipped = results.count { $0.status == .skip }
        let counts = "\(ok) ok, \(failed.count) failed, \(skipped) skipped"
        guard !passed else { return "PASS  \(plugin): \(counts)" }
        return "FAIL  \(plugin): \(counts) (failed: \(failed.map(\.name).joined(separator: ", ")))"
    }

    struct JSONReport: Encodable {
        let plugin: String
        let passed: Bool
        let checks: [CheckResult]
        let summary: String
    }

    var json: JSONReport { JSONReport(plugin: plugin, passed: passed, checks: results, summary: summary) }
}
