import FoundationEssentials
import Glibc

/// A plugin file's identity, as the catalog indexes it.
public struct InspectedPlugin: Sendable, Codable {
    public let path: String
    public let sha256: String
    public let info: PluginInfo
    public let linksSwiftRuntime: Bool

    public init(path: String, sha256: String, info: PluginInfo, linksSwiftRuntime: Bool) {
        (self.path, self.sha256, self.info, self.linksSwiftRuntime) = (path, sha256, info, linksSwiftRuntime)
    }
}

/// Reads the identity of plugin files for the catalog: every path given gets an answer.
public typealias PluginInspector = @Sendable (_ paths: [String]) -> [String: Result<InspectedPlugin, LoadError>]

/// Inspection in a short-lived child process (`molt serve`): reading a plugin's identity maps it, and what
/// is mapped in the serving process stays there when it cannot be unmapped: a Swift plugin (RTLD_NODELETE) or
/// a library linked `-z nodelete` that a C plugin pulls in (libcurl's OpenSSL and p11-kit: about 3 MiB for
/// etcd-config). The serving process then maps only the plugins its components run. A plugin that crashes or
/// hangs while its identity is read costs the child, not molt: its file is refused with the reason and the
/// other files are inspected by a new child.
///
/// The child is `command` plus the paths (for molt: `molt plugin identify --plugins-directory DIR`); it writes
/// one JSON line per event to descriptor 3 (`InspectionReport`), so that anything a plugin prints on its
/// stdout cannot be taken for a report. Blocking: run it where a `dlopen` could run.
public struct ChildProcessInspector: Sendable {
    public let command: [String]
    /// How long one child may take for all its files.
    public let timeout: Duration

    public init(command: [String], timeout: Duration = .seconds(30)) {
        self.command = command
        self.timeout = timeout
    }

    public func inspect(_ paths: [String]) -> [String: Result<InspectedPlugin, LoadError>] {
        var results: [String: Result<InspectedPlugin, LoadError>] = [:]
        var remaining = paths
        while !remaining.isEmpty {
            let run = runChild(remaining)
            results.merge(run.results) { first, _ in first }
            if let stuck = run.unfinished {
                results[stuck] = .failure(.inspectionFailed(path: stuck, reason: run.ending))
            } else if run.results.isEmpty {
                // The child answered nothing and was on no file: it could not start, or died before the first.
                for path in remaining where results[path] == nil {
                    results[path] = .failure(.inspectionFailed(path: path, reason: run.ending))
                }
            }
            remaining = remaining.filter { results[$0] == nil }
        }
        return results
    }

    /// This process's environment, without the Swift runtime's crash backtraces: a plugin crashing the child is
    /// reported as the file's refusal; a backtrace of the child in molt's log would read as molt's own crash.
    private static func childEnvironment() -> [String] {
        var variables: [String] = []
        var cursor = environ
        while let variable = cursor.pointee {
            let text = String(cString: variable)
            if !text.hasPrefix("SWIFT_BACKTRACE=") { variables.append(text) }
            cursor += 1
        }
        return variables + ["SWIFT_BACKTRACE=enable=no"]
    }

    /// Marks every descriptor of this process close-on-exec. swift-nio's sockets are not: a connection molt closes
    /// while a child held a copy would stay open for the child's life. (molt starts no other program, so the flag
    /// changes nothing else; a descriptor opened by another thread meanwhile may still reach the child.)
    private static func keepDescriptorsFromChildren() {
        for name in directoryEntryNames("/proc/self/fd") ?? [] {
            guard let fd = Int32(name), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    private struct ChildRun {
        var results: [String: Result<InspectedPlugin, LoadError>] = [:]
        /// The file the child had begun and not answered when it ended.
        var unfinished: String?
        /// How the child ended, as a reason for that file.
        var ending = ""
    }

    private func runChild(_ paths: [String]) -> ChildRun {
        var run = ChildRun()
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            run.ending = "cannot create a pipe to the inspecting process: \(errnoText())"
            return run
        }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Neither end leaks into other children; the child gets the write end as descriptor 3 (dup2 clears the flag).
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, InspectionReport.descriptor)
        let argv = (command + paths).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        let environment = Self.childEnvironment().map { strdup($0) } + [nil]
        defer { for variable in environment { free(variable) } }
        Self.keepDescriptorsFromChildren()
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, environment)
        close(writeEnd)
        defer { close(readEnd) }
        guard spawned == 0 else {
            run.ending = "cannot start the inspecting process \(command[0]): \(String(cString: strerror(spawned)))"
            return run
        }

        var begun: String?
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        reading: while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { timedOut = true; break }
            var poller = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min((left / .milliseconds(1)).rounded(.up), Double(Int32.max))))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break reading }  // EOF: the child is done (or died)
            pending += buffer[..<count]
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                switch InspectionReport.decode(line) {
                case .begin(let path)?:
                    begun = path
                case .identified(let plugin)?:
                    run.results[plugin.path] = .success(plugin)
                    begun = nil
                case .refused(let path, let reason)?:
                    run.results[path] = .failure(.relayed(path: path, description: reason))
                    begun = nil
                case nil:
                    break  // not a report line: ignored
                }
            }
        }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        run.unfinished = begun
        let signal = status & 0x7F
        if timedOut {
            run.ending = "reading its identity did not finish within \(timeout) (the inspecting process was killed)"
        } else if signal != 0 {
            run.ending = "the inspecting process died of signal \(signal) (\(String(cString: strsignal(signal)))) while reading it"
        } else {
            run.ending = "the inspecting process exited with status \((status >> 8) & 0xFF) while reading it"
        }
        return run
    }
}

/// One line the inspecting child writes to descriptor 3: it began a file, or the file's identity, or why
/// the file was refused.
public enum InspectionReport: Equatable {
    case begin(path: String)
    case identified(InspectedPlugin)
    case refused(path: String, reason: String)

    public static let descriptor: Int32 = 3

    private struct Line: Codable {
        var begin: String?
        var plugin: InspectedPlugin?
        var refused: String?
        var reason: String?
    }

    public func encoded() -> [UInt8] {
        let line: Line
        switch self {
        case .begin(let path): line = Line(begin: path)
        case .identified(let plugin): line = Line(plugin: plugin)
        case .refused(let path, let reason): line = Line(refused: path, reason: reason)
        }
        // Strings, numbers and containers of them: encoding cannot fail.
        return ((try? JSONEncoder().encode(line)).map(Array.init) ?? []) + [UInt8(ascii: "\n")]
    }

    public static func decode(_ bytes: [UInt8]) -> InspectionReport? {
        guard let line = try? JSONDecoder().decode(Line.self, from: Data(bytes)) else { return nil }
        if let path = line.begin { return .begin(path: path) }
        if let plugin = line.plugin { return .identified(plugin) }
        if let path = line.refused { return .refused(path: path, reason: line.reason ?? "") }
        return nil
    }

    /// The child's side: inspects each file with `loader` (in the child's own process) and reports on
    /// descriptor 3, one line per event, each written whole.
    public static func report(_ paths: [String], loader: PluginLoader) {
        for path in paths {
            write(.begin(path: path))
            do {
                let binary = try loader.load(path: path)
                write(.identified(InspectedPlugin(path: path, sha256: binary.sha256, info: binary.info,
                                                  linksSwiftRuntime: binary.linksSwiftRuntime)))
            } catch {
                write(.refused(path: path, reason: error.description))
            }
        }
    }

    private static func write(_ report: InspectionReport) {
        let bytes = report.encoded()
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            done += count
        }
    }
}

extension InspectedPlugin: Equatable {
    public static func == (a: InspectedPlugin, b: InspectedPlugin) -> Bool {
        a.path == b.path && a.sha256 == b.sha256 && a.info == b.info && a.linksSwiftRuntime == b.linksSwiftRuntime
    }
}
