/// Where a configuration value came from: a file position, or a non-file source such as the
/// environment or the command line (`file` then names the source, e.g. "environment").
public struct ConfigOrigin: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// 1-based; nil when the source has no lines (environment, arguments) or the position is unknown.
    public var line: Int?
    public var column: Int?

    public init(file: String, line: Int? = nil, column: Int? = nil) {
        self.file = file
        self.line = line
        self.column = column
    }

    public static let environment = ConfigOrigin(file: "environment")
    public static let arguments = ConfigOrigin(file: "command line")
    public static let defaults = ConfigOrigin(file: "defaults")

    public var description: String {
        guard let line else { return file }
        return column.map { "\(file):\(line):\($0)" } ?? "\(file):\(line)"
    }
}

/// A problem that does not stop loading. `kind` tells deprecations (renamed keys, legacy sources),
/// unknown keys (fatal under strict loading) and settings molt reads but ignores apart.
public struct ConfigWarning: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// A renamed key or a legacy source: still honoured, printed with "DEPRECATED".
        case deprecated
        /// A key molt does not know: ignored; an error under strict loading.
        case unknownKey
        /// A key molt knows but does not act on (e.g. Dapr's `scopes`), or a skipped document/section.
        case ignored
    }

    public var origin: ConfigOrigin
    /// Dotted path inside the source (`spec.metadata[2].name`, `pluginsDir`, `MOLT_PLUGINS_DIR`).
    public var keyPath: String
    public var kind: Kind
    public var message: String

    public init(origin: ConfigOrigin, keyPath: String, kind: Kind, message: String) {
        self.origin = origin
        self.keyPath = keyPath
        self.kind = kind
        self.message = message
    }

    public var isDeprecation: Bool { kind == .deprecated }

    public var description: String {
        let location = keyPath.isEmpty ? "\(origin)" : "\(origin): \(keyPath)"
        return isDeprecation ? "\(location): DEPRECATED: \(message)" : "\(location): warning: \(message)"
    }
}

/// A configuration that cannot be used. Always names the source (file path, or "environment" /
/// "command line") and the key path; type errors also name the expected and the found type.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var origin: ConfigOrigin
    public var keyPath: String
    /// What the key needs, e.g. "a string", "an integer", "a list of strings"; nil for non-type errors.
    public var expected: String?
    /// What was there, e.g. "a list", "nothing" (missing); nil for non-type errors.
    public var found: String?
    public var message: String

    public init(origin: ConfigOrigin, keyPath: String, expected: String? = nil, found: String? = nil, message: String) {
        self.origin = origin
        self.keyPath = keyPath
        self.expected = expected
        self.found = found
        self.message = message
    }

    /// A value of the wrong type (or a missing required one: `found` "nothing").
    static func type(_ origin: ConfigOrigin, _ keyPath: String, expected: String, found: String, _ detail: String? = nil) -> ConfigError {
        var message = "expected \(expected), found \(found)"
        if let detail { message += ": \(detail)" }
        return ConfigError(origin: origin, keyPath: keyPath, expected: expected, found: found, message: message)
    }

    public var description: String {
        keyPath.isEmpty ? "\(origin): \(message)" : "\(origin): \(keyPath): \(message)"
    }
}

extension [ConfigWarning] {
    /// Under strict loading an unknown key is an error: the first one found is thrown.
    func enforcingStrict(_ strict: Bool) throws -> Self {
        if strict, let unknown = first(where: { $0.kind == .unknownKey }) {
            throw ConfigError(origin: unknown.origin, keyPath: unknown.keyPath,
                              message: "\(unknown.message) (strict: unknown keys are errors)")
        }
        return self
    }
}
