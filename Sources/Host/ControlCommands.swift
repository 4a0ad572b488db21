import ArgumentParser
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import MoltProtos
import PluginHost
import ServingCore
import SwiftProtobuf

/// Exit codes of the control commands, for scripts.
enum ControlExit {
    /// An apply or removal failed (the old generation keeps serving); the reason is printed.
    static let failed = ExitCode(1)
    /// The control plane could not be reached or refused the call (token, malformed request).
    static let unreachable = ExitCode(2)
    /// The change was sent but molt had not finished it within --timeout; it is still running there
    /// and will complete (or fail) on its own: `molt status` shows it in progress.
    static let stillRunning = ExitCode(3)
}

/// Options of every command that talks to a running molt's control plane.
struct ControlOptions: ParsableArguments {
    @Option(help: "Control plane address of the running molt, host:port (env MOLT_CONTROL_ADDRESS).")
    var controlAddress: String = Environment.value("MOLT_CONTROL_ADDRESS") ?? "127.0.0.1:34904"
    @Option(help: "Control token (env MOLT_CONTROL_TOKEN).")
    var controlToken: String = Environment.value("MOLT_CONTROL_TOKEN") ?? ""
    @Option(help: "Seconds to wait for the control plane's answer.")
    var timeout: Double = 120

    /// Runs `body` with a Control client; connection and status errors exit with `ControlExit.unreachable`.
    /// `change` names what `body` asks molt to do (an apply, a removal): when --timeout passes first,
    /// the command exits with `ControlExit.stillRunning` instead, since molt goes on with it.
    func withControl<Result: Sendable>(
        change: String? = nil,
        _ body: @escaping @Sendable (Molt_Control_V1_Control.Client<HTTP2ClientTransport.Posix>, Metadata, CallOptions) async throws -> Result
    ) async throws -> Result {
        let address: ListenAddress
        do {
            address = try ListenAddress(parsing: controlAddress, option: "--control-address")
        } catch {
            throw ValidationError(error.description)
        }
        let host = address.host == "localhost" || address.host == "0.0.0.0" ? "127.0.0.1" : address.host
        let target: any ResolvableTarget = host.utf8.contains(UInt8(ascii: ":")) ? ResolvableTargets.IPv6.ipv6(address: host, port: address.port)
                                                               : ResolvableTargets.IPv4.ipv4(address: host, port: address.port)
        var metadata: Metadata = [:]
        if !controlToken.isEmpty { metadata.addString(controlToken, forKey: TokenHeader.control) }
        // --timeout is kept here, not sent as the call's grpc-timeout: grpc-swift's server pins about a
        // kilobyte per call that carries one until that timeout has passed, even after the call ended.
        let options = CallOptions.defaults
        let limit = Duration.milliseconds(Int64(timeout * 1000))
        do {
            return try await withGRPCClient(transport: try .http2NIOPosix(target: target, transportSecurity: .plaintext)) { client in
                let control = Molt_Control_V1_Control.Client(wrapping: client)
                let metadata = metadata
                return try await withThrowingTaskGroup(of: Result?.self) { group in
                    group.addTask { try await body(control, metadata, options) }
                    group.addTask {
                        try await Task.sleep(for: limit)
                        throw RPCError(code: .deadlineExceeded, message: "no answer within \(timeout) s")
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                }!
            }
        } catch let error as RPCError {
            if let change, error.code == .deadlineExceeded {
                printError("molt: the \(change) is still running in molt at \(address): no answer within --timeout \(timeout) s; "
                    + "it completes or fails on its own (see `molt status`)")
                throw ControlExit.stillRunning
            }
            printError("molt: control plane at \(address): \(error.code): \(error.message)")
            throw ControlExit.unreachable
        }
    }
}

/// Writes one line to standard error (unbuffered, so it is never lost on exit).
func printError(_ message: String) {
    let line = Array((message + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply a component's full configuration to a running molt.",
        discussion: """
            Either --kind and --name (with --metadata, --plugin, --version, --pin), or -f with a components file \
            ({"components": [{"kind", "name", "plugin", "version"?, "metadata"?, "pin"?}]}), applied in order, \
            or all-or-nothing with --batch.
            Prints one line per apply. Exit 0 when every apply succeeded (unchanged included), 1 when one failed \
            (the old generation keeps serving; the plugin's message is printed), 2 when the control plane cannot \
            be reached or refuses the call, 3 when molt did not finish within --timeout (the apply goes on there; \
            `molt status` shows it in progress).
            """)

    @OptionGroup var control: ControlOptions
    @Option(help: "Component kind: lock, state or binding.") var kind: String?
    @Option(help: "Component name.") var name: String?
    @Option(name: .customLong("metadata"), parsing: .singleValue,
            help: "A configuration entry key=value (repeatable; together the full configuration; none: keep the running one).")
    var entries: [String] = []
    @Option(help: "Plugin name (required for a new component; default: the current one).") var plugin: String?
    @Option(help: "Plugin version (default: the current one; the newest for a new component). The configuration is kept unless --metadata is given.")
    var version: String?
    @Option(help: "sha256 the plugin binary must have.") var pin: String?
    @Option(name: .shortAndLong, help: "Components file to apply instead of --kind/--name.") var file: String?
    @Flag(help: "Apply the file's components all-or-nothing: all switch together, or none changes.") var batch = false
    @Flag(help: """
        Replace the running configuration with --metadata even when none is given. Without it, an apply without \
        --metadata to a running component (a version or plugin change) keeps its running configuration.
        """)
    var replaceMetadata = false
    @Flag(help: "Check each definition as the apply would plan it and print what it would do; change nothing.") var dryRun = false
    @Flag(help: """
        Reload or swap even when a plugin that holds in-memory state callers rely on cannot hand it over \
        to the new instance: that state (held locks, stored data) is lost. Without it such an apply is refused.
        """) var acceptStateLoss = false
    @Flag(help: """
        Swap to a plugin version that removes a declared operation or changes one's parameters or results: apps \
        calling it break. Without it such an apply is refused, naming each difference.
        """) var acceptOperationChanges = false
    @Flag(help: "Print the results as JSON (one object per line).") var json = false

    func run() async throws {
        let requests = try makeRequests()
        if batch && file == nil { throw ValidationError("--batch applies the components of a file: give -f FILE") }
        let results = try await control.withControl(change: "apply") { client, metadata, options in
            if batch {
                var request = Molt_Control_V1_ApplyBatchRequest()
                request.applies = requests
                return try await client.applyBatch(request, metadata: metadata, options: options).results
            }
            var results: [Molt_Control_V1_ApplyResult] = []
            for request in requests {
                results.append(try await client.apply(request, metadata: metadata, options: options).result)
            }
            return results
        }
        for result in results {
            print(json ? try result.jsonString() : result.summary)
        }
        if results.contains(where: { $0.action == "failed" }) { throw ControlExit.failed }
    }

    private func makeRequests() throws -> [Molt_Control_V1_ApplyRequest] {
        if let file {
            guard kind == nil, name == nil, entries.isEmpty, plugin == nil, version == nil, pin == nil else {
                throw ValidationError("-f/--file cannot be combined with --kind, --name, --metadata, --plugin, --version or --pin")
            }
            return try ComponentFiles.definitions([file], strict: false, catalog: nil, logger: nil).map { definition in
                var request = Molt_Control_V1_ApplyRequest()
                request.kind = definition.key.kind.rawValue
                request.name = definition.key.name
                request.metadata = definition.config
                request.plugin = definition.plugin ?? ""
                request.version = definition.version?.description ?? ""
                request.pin = definition.pin ?? ""
                request.replaceMetadata = true  // a file's component is its full definition
                request.dryRun = dryRun
                request.acceptStateLoss = acceptStateLoss
                request.acceptOperationChanges = acceptOperationChanges
                return request
            }
        }
        guard let kind, let name else { throw ValidationError("give --kind and --name, or -f FILE") }
        var request = Molt_Control_V1_ApplyRequest()
        request.kind = kind
        request.name = name
        for entry in entries {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("--metadata '\(entry)' is not key=value")
            }
            request.metadata[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        request.plugin = plugin ?? ""
        request.version = version ?? ""
        request.pin = pin ?? ""
        request.replaceMetadata = replaceMetadata
        request.dryRun = dryRun
        request.acceptStateLoss = acceptStateLoss
        request.acceptOperationChanges = acceptOperationChanges
        return [request]
    }
}

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a component from a running molt: stop routing to it, drain it, destroy it.",
        discussion: """
            Calls to it fail as not found from then on. A generation whose plugin still holds calls after the drain \
            timeout is abandoned (destroyed when the plugin completes them) and does not hold the removal up.
            Exit 0 when removed, 1 when no such component runs, 2 when the control plane cannot be reached or \
            refuses the call, 3 when molt did not finish within --timeout (the removal goes on there).
            """)

    @OptionGroup var control: ControlOptions
    @Option(help: "Component kind: lock, state or binding.") var kind: String
    @Option(help: "Component name.") var name: String
    @Flag(help: "Print the result as JSON.") var json = false

    func run() async throws {
        var removal = Molt_Control_V1_RemoveComponentRequest()
        removal.kind = kind
        removal.name = name
        let request = removal
        let outcome = try await control.withControl(change: "removal") { client, metadata, options -> Molt_Control_V1_ApplyResult? in
            do {
                return try await client.removeComponent(request, metadata: metadata, options: options).result
            } catch let error as RPCError where error.code == .notFound {
                printError("molt: \(error.message)")
                return nil
            }
        }
        guard let result = outcome else { throw ControlExit.failed }
        print(json ? try result.jsonString() : result.summary)
        if result.action == "failed" { throw ControlExit.failed }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the components of a running molt (plugin, generation, state, calls in flight, configuration, last apply), applies in progress and abandoned generations; or one component in detail.",
        discussion: """
            With NAME: that component (of --kind, when names repeat across kinds) in detail, with the apply results \
            molt still keeps for it. Values of secret-looking configuration keys read <redacted>.
            Exit 0, 1 when NAME names no component, 2 when the control plane cannot be reached or refuses the call.
            """)

    @OptionGroup var control: ControlOptions
    @Argument(help: "A component's name: show it in detail, with its history of applies.") var name: String?
    @Option(help: "With NAME: the component's kind (lock, state or binding).") var kind: String?
    @Flag(help: "Print JSON: {\"components\": [...]}.") var json = false

    func run() async throws {
        var request = Molt_Control_V1_ListComponentsRequest()
        request.name = name ?? ""
        request.kind = kind ?? ""
        request.includeHistory = name != nil
        let listing = request
        let response = try await control.withControl { client, metadata, options in
            try await client.listComponents(listing, metadata: metadata, options: options)
        }
        if let name, response.components.isEmpty {
            printError("molt: no component named \(name)\(kind.map { " of kind \($0)" } ?? "") runs")
            throw ControlExit.failed
        }
        if json {
            var options = JSONEncodingOptions()
            options.alwaysPrintInt64sAsNumbers = true
            print(try response.jsonString(options: options))
            return
        }
        if name != nil {
            for component in response.components { printDetail(component, abandoned: response.abandoned) }
            return
        }
        let header = ["KIND", "NAME", "PLUGIN", "GEN", "STATE", "IN-FLIGHT", "CONFIG", "LAST APPLY"]
        let rows = response.components.map { component in
            [component.kind, component.name, component.plugin, String(component.generation), component.state,
             String(component.inFlight), Self.configText(component.metadata), component.hasLastResult ? component.lastResult.summary : "-"]
        }
        print(table(header, rows))
        for apply in response.appliesInProgress {
            let what = apply.components > 1 ? "batch of \(apply.components) (\(apply.kind)/\(apply.name), …)" : "\(apply.kind)/\(apply.name)"
            print("apply in progress: \(what), step \(apply.step), for \((apply.elapsedMs / 10).rounded() / 100) s")
        }
        for abandoned in response.abandoned { print(Self.abandonedLine(abandoned)) }
    }

    private func printDetail(_ component: Molt_Control_V1_ComponentStatus, abandoned: [Molt_Control_V1_AbandonedGeneration]) {
        print("\(component.kind)/\(component.name)")
        print("  plugin:      \(component.plugin)")
        print("  generation:  \(component.generation) (\(component.state), \(component.inFlight) calls in flight)")
        print("  config:      \(Self.configText(component.metadata))")
        for generation in abandoned where generation.kind == component.kind && generation.name == component.name {
            print("  " + Self.abandonedLine(generation))
        }
        print("  history (oldest first, as kept):")
        for result in component.history {
            print(result.summary.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n"))
        }
    }

    static func configText(_ config: [String: String]) -> String {
        config.isEmpty ? "-" : config.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func abandonedLine(_ abandoned: Molt_Control_V1_AbandonedGeneration) -> String {
        "abandoned: \(abandoned.kind)/\(abandoned.name) generation \(abandoned.generation) (\(abandoned.plugin)): "
            + "\(abandoned.callsOutstanding) calls the plugin never completed; destroyed when it does"
    }
}

extension Molt_Control_V1_ApplyResult {
    /// One line: "state/statestore: reloaded g1 -> g2 redis-state@1.0.0 (4.20 ms)", warnings and error after.
    var summary: String {
        var line = "\(kind)/\(name): \(action)"
        if oldGeneration != 0 || newGeneration != 0 {
            line += " g\(oldGeneration == 0 ? "-" : String(oldGeneration)) -> g\(newGeneration == 0 ? "-" : String(newGeneration))"
        }
        if !newPlugin.isEmpty { line += " \(newPlugin)" }
        if action == "dry-run" {
            line += ": would \(dryRunOutcome)"
        } else {
            line += " (\((totalMs * 100).rounded() / 100) ms)"
        }
        if !changedKeys.isEmpty { line += "\n  changed keys: \(changedKeys.joined(separator: ", "))" }
        if !droppedKeys.isEmpty { line += "\n  dropped keys: \(droppedKeys.joined(separator: ", "))" }
        for warning in warnings where !warning.hasPrefix("keys of the running configuration dropped") { line += "\n  warning: \(warning)" }
        if !error.isEmpty { line += "\n  error (\(failure)): \(error)" }
        return line
    }
}

#if canImport(Glibc)
import Glibc
#endif
