/// Why the loader refused a plugin binary. Each case names the file and the rule that failed, so an
/// operator can fix it without reading source.
public enum LoadError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum TrustRule: String, Sendable {
        case outsidePluginsDirectory = "outside the plugins directory"
        case symlinkLeavesPluginsDirectory = "symlink leaves the plugins directory"
        case notRegularFile = "not a regular file"
        case writableByGroupOrOthers = "writable by group or others"
        case untrustedOwner = "owned by neither root nor the host's user"
        case pluginsDirectoryWritableByOthers = "plugins directory writable by group or others"
        case tooLarge = "larger than the plugin size limit"
    }

    case unreadable(path: String, reason: String)
    case untrusted(path: String, rule: TrustRule, detail: String)
    case pinMismatch(path: String, expected: String, actual: String)
    case notSharedObject(path: String, reason: String)
    case dlopenFailed(path: String, reason: String)
    case missingSymbol(path: String, symbol: String, why: String)
    case abiMajorMismatch(path: String, plugin: (UInt32, UInt32), host: (UInt32, UInt32))
    case abiMinorTooNew(path: String, plugin: (UInt32, UInt32), host: (UInt32, UInt32))
    case invalidInfo(path: String, reason: String)
    case unknownKind(path: String, kind: String)
    /// A declared operation (ABI 1.2) breaks a rule of molt_plugin.h; `field` names the parameter or result
    /// when the rule is about one. (An operation whose symbol is not exported is `missingSymbol`.)
    case invalidOperation(path: String, operation: String, field: String?, reason: String)
    case duplicateNameVersion(path: String, plugin: String, loadedFrom: String)
    /// The file a version was loaded from now holds other bytes with the same name@version.
    case rebuiltVersion(path: String, plugin: String, sha256: String, loadedSHA256: String)
    case stagingFailed(reason: String)
    /// The process inspecting the file for the catalog (`ChildProcessInspector`) refused it: its words, as given.
    case relayed(path: String, description: String)
    /// The process inspecting the file for the catalog crashed, hung or could not start on it.
    case inspectionFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read plugin \(path): \(reason)"
        case .untrusted(let path, let rule, let detail):
            return "refusing plugin \(path): \(rule.rawValue) (\(detail))"
        case .pinMismatch(let path, let expected, let actual):
            return "refusing plugin \(path): sha256 pin mismatch (expected \(expected), file has \(actual))"
        case .notSharedObject(let path, let reason):
            return "refusing plugin \(path): not a shared object: \(reason)"
        case .dlopenFailed(let path, let reason):
            return "cannot load plugin \(path): \(reason)"
        case .missingSymbol(let path, let symbol, let why):
            return "refusing plugin \(path): missing required symbol \(symbol) (\(why))"
        case .abiMajorMismatch(let path, let plugin, let host):
            return "refusing plugin \(path): ABI major version mismatch: plugin \(plugin.0).\(plugin.1), host \(host.0).\(host.1) (majors must be equal)"
        case .abiMinorTooNew(let path, let plugin, let host):
            return "refusing plugin \(path): ABI minor version too new: plugin \(plugin.0).\(plugin.1), host \(host.0).\(host.1) (plugin minor must be <= host minor)"
        case .invalidInfo(let path, let reason):
            return "refusing plugin \(path): invalid plugin info: \(reason)"
        case .unknownKind(let path, let kind):
            return "refusing plugin \(path): unknown component kind '\(kind)' (known: \(ComponentKind.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .invalidOperation(let path, let operation, let field, let reason):
            return "refusing plugin \(path): operation '\(operation)'\(field.map { ", field '\($0)'" } ?? ""): \(reason)"
        case .duplicateNameVersion(let path, let plugin, let loadedFrom):
            return "refusing plugin \(path): \(plugin) is already loaded from a different binary (\(loadedFrom)); give the new build a new version"
        case .rebuiltVersion(let path, let plugin, let sha256, let loadedSHA256):
            return "refusing plugin \(path): the file now holds another build of \(plugin) (sha256 \(sha256.prefix(16))) than the one "
                + "already loaded from it (sha256 \(loadedSHA256.prefix(16))); give the new build a new version, or, while developing, "
                + "serve with `molt serve --watch-plugins`, which loads rebuilds of a version as new builds"
        case .stagingFailed(let reason):
            return "cannot stage plugin copy: \(reason)"
        case .relayed(_, let description):
            return description
        case .inspectionFailed(let path, let reason):
            return "refusing plugin \(path): \(reason)"
        }
    }

    public static func == (a: LoadError, b: LoadError) -> Bool { a.description == b.description }
}
