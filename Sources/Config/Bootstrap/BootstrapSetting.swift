/// One setting of the inner model. The raw value is its inner key (dotted path), which is also the
/// key the current file format, the `MOLT_` environment and the command line derive their names from.
enum BootstrapSetting: String, CaseIterable, Sendable {
    case appID
    case grpcAddress
    case httpAddress
    case controlAddress
    case adminAddress
    case appPort
    case appProtocol
    case appHost
    case apiToken
    case controlToken
    case pluginsDirectory
    case stateDirectory
    case components
    case readinessTimeoutMs
    case drainTimeoutMs
    case callTimeoutMs
    case initTimeoutMs
    case applyConfigTimeoutMs
    case stateTransferTimeoutMs
    case destroyTimeoutMs
    case logLevel
    case strict
    case watchPlugins
    case agentsFileDirectory = "agents.file.directory"
    case agentsEtcdEndpoints = "agents.etcd.endpoints"
    case agentsEtcdPrefix = "agents.etcd.prefix"
    case secretsScopes = "secrets.scopes"

    enum ValueType: Sendable {
        case string, int, bool, strings
        /// A list of mappings in a file; JSON text in the environment and on the command line.
        case secretScopes

        /// For "expected …" in type errors.
        var expected: String {
            switch self {
            case .string: return "a string"
            case .int: return "an integer"
            case .bool: return "a boolean"
            case .strings: return "a list of strings"
            case .secretScopes: return SecretScopesSetting.expected
            }
        }
    }

    var valueType: ValueType {
        switch self {
        case .components, .agentsEtcdEndpoints: return .strings
        case .readinessTimeoutMs, .drainTimeoutMs, .callTimeoutMs, .initTimeoutMs, .applyConfigTimeoutMs, .stateTransferTimeoutMs,
             .destroyTimeoutMs, .appPort: return .int
        case .strict, .watchPlugins: return .bool
        case .secretsScopes: return .secretScopes
        default: return .string
        }
    }

    var isSecret: Bool { self == .apiToken || self == .controlToken }

    var innerKeyComponents: [String] { rawValue.split(separator: ".").map(String.init) }
}

/// How a key path (`agents.etcd.endpoints`, `pluginsDir`) is spelled in each non-file source. These
/// follow swift-configuration's own encoders, so the names checked here are the names its providers read.
enum SourceNaming {
    static let environmentPrefix = "MOLT"

    /// `grpcAddress` → `MOLT_GRPC_ADDRESS`, `agents.etcd.endpoints` → `MOLT_AGENTS_ETCD_ENDPOINTS`.
    static func environmentName(forKeyPath keyPath: String) -> String {
        ([environmentPrefix] + keyPath.split(separator: ".").map { component in
            splitCamelCase(String(component), separator: "_").uppercased()
                .map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
        }).joined(separator: "_")
    }

    /// `grpcAddress` → `--grpc-address`, `agents.etcd.endpoints` → `--agents-etcd-endpoints`.
    static func argumentName(forKeyPath keyPath: String) -> String {
        "--" + keyPath.split(separator: ".").map { splitCamelCase(String($0), separator: "-").lowercased() }.joined(separator: "-")
    }

    /// Inserts `separator` between a lowercase letter and the uppercase one after it (`appID` → `app_ID`).
    private static func splitCamelCase(_ word: String, separator: Character) -> String {
        var result = ""
        var previous: Character?
        for character in word {
            if let previous, previous.isLowercase, character.isUppercase { result.append(separator) }
            result.append(character)
            previous = character
        }
        return result
    }
}
