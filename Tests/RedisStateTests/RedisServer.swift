import Engine
import Foundation
import MoltTestSupport
import PluginHost
import Testing

/// A private redis-server on a free loopback port, for one test: started with no persistence,
/// ready once it answers PING, killed by `stop()`.
final class RedisServer: @unchecked Sendable {
    // @unchecked Sendable: `process` is set in init and only terminated/waited on afterwards.
    let port: Int
    private let process: Process

    /// `reusing`: nil picks a free port; a given port restarts a server where a stopped one was.
    init(reusing existingPort: Int? = nil) throws {
        port = try existingPort ?? freeLoopbackPort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: try which("redis-server"))
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? cli("PING")) != "PONG" {
            guard ContinuousClock.now < deadline, process.isRunning else {
                stop()
                throw RedisServerError(description: "redis-server on port \(port) did not answer PING")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    deinit { stop() }

    var address: String { "127.0.0.1:\(port)" }

    func stop() {
        // SIGKILL: children of the test process may inherit a mask that blocks SIGTERM.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// SIGSTOP: the server stops answering, but its sockets stay open (the kernel still completes
    /// new connections into its listen backlog), like a hung or swapped-out server.
    func freeze() { kill(process.processIdentifier, SIGSTOP) }

    /// SIGCONT after `freeze()`.
    func thaw() { kill(process.processIdentifier, SIGCONT) }

    /// How many clients are connected, not counting the redis-cli that asks (0 after `stop()`).
    func clientCount() throws -> Int { try cli("CLIENT", "LIST").split(separator: "\n").count - 1 }

    /// Runs `redis-cli -p <port> args...` and returns its output without the trailing newline.
    @discardableResult
    func cli(_ arguments: String...) throws -> String { try cli(arguments) }

    func cli(_ arguments: [String]) throws -> String {
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: try which("redis-cli"))
        cli.arguments = ["-h", "127.0.0.1", "-p", "\(port)"] + arguments
        let pipe = Pipe()
        cli.standardOutput = pipe
        cli.standardError = FileHandle.nullDevice
        try cli.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        var text = String(decoding: data, as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}

struct RedisServerError: Error, CustomStringConvertible {
    let description: String
}

func which(_ tool: String) throws -> String {
    for directory in ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(directory)/\(tool)") {
        return "\(directory)/\(tool)"
    }
    throw RedisServerError(description: "\(tool) not found: run `make deps` (installs redis-server)")
}

/// A loopback TCP port nothing listens on right now (bound once to port 0, then released).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw RedisServerError(description: "socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw RedisServerError(description: "bind() to a free loopback port failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

let redisPlugin = "redis-state-1.0.0.so"

/// An engine over a private plugins directory holding the staged redis-state plugin.
func makeRedisEngine(readinessTimeout: Duration = .seconds(10)) throws -> Engine {
    var settings = EngineSettings()
    settings.readinessInterval = .milliseconds(5)
    settings.readinessTimeout = readinessTimeout
    settings.drainTimeout = .seconds(10)
    let catalog = PluginCatalog(loader: try Fixtures.loader(with: [redisPlugin]))
    catalog.rescan()
    return Engine(catalog: catalog, settings: settings)
}

/// An engine serving `statestore` from `server` with `extra` configuration, READY.
func redisEngine(_ server: RedisServer, _ extra: [String: String] = [:], readinessTimeout: Duration = .seconds(10)) async throws -> Engine {
    let engine = try makeRedisEngine(readinessTimeout: readinessTimeout)
    let added = await engine.apply(redisDefinition(["redisHost": server.address].merging(extra) { $1 }))
    try #require(added.action == .added, "\(added)")
    return engine
}

/// The plugin's failure behind a call's error (nil for any other error).
func pluginFailure(_ error: any Error) -> PluginError? {
    if case .plugin(let failure)? = error as? CallError { return failure }
    return nil
}

func redisDefinition(_ config: [String: String], name: String = "statestore") -> ComponentDefinition {
    ComponentDefinition(kind: .state, name: name, plugin: "redis-state", config: config)
}

typealias Status = PluginStatus

func expectFailure(_ status: PluginStatus, containing text: String = "", _ body: () async throws -> Void,
                   sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected \(status.rawValue)", sourceLocation: sourceLocation)
    } catch {
        guard case .plugin(let failure)? = error as? CallError else { Issue.record("\(error)", sourceLocation: sourceLocation); return }
        #expect(failure.status == status && !failure.message.isEmpty && (text.isEmpty || failure.message.contains(text)),
                "\(failure)", sourceLocation: sourceLocation)
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}
