/// A component config value that names a secret instead of holding it (Dapr's `secretKeyRef`): the value
/// `key` of secret `name` in secret store `store`. It travels as the config value's text,
///
///     secretKeyRef(store=vault,name=redis,key=password)
///
/// (each part percent-encodes `%`, `,`, `(`, `)`, `=` and control characters), so every path that carries
/// configuration (component files, layers, the Control API, the state directory, status) carries the
/// reference and never the secret. The engine resolves it when it hands the config to the plugin.
public struct SecretReference: Sendable, Hashable, CustomStringConvertible {
    public var store: String
    public var name: String
    public var key: String

    public init(store: String, name: String, key: String) {
        self.store = store
        self.name = name
        self.key = key
    }

    static let opening = "secretKeyRef("

    /// The config value's text.
    public var description: String {
        "\(Self.opening)store=\(Self.encode(store)),name=\(Self.encode(name)),key=\(Self.encode(key)))"
    }

    /// Whether `value` is meant as a reference (then `parse` says whether it is a valid one).
    public static func looksLikeReference(_ value: String) -> Bool { value.hasPrefix(opening) }

    /// The reference a config value holds; nil for a plain value. Throws for a value that starts like a
    /// reference but is not a valid one, naming what is wrong.
    public static func parse(_ value: String) throws(ConfigProblem) -> SecretReference? {
        guard looksLikeReference(value) else { return nil }
        let usage = "a secret reference is secretKeyRef(store=STORE,name=NAME,key=KEY)"
        guard value.hasSuffix(")") else { throw ConfigProblem("'\(value)' does not end with ')': \(usage)") }
        let body = value.dropFirst(opening.count).dropLast()
        var parts: [String: String] = [:]
        for field in body.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = field.firstIndex(of: "="), let decoded = decode(field[field.index(after: equals)...]) else {
                throw ConfigProblem("'\(value)': '\(field)' is not NAME=VALUE (percent-encoded): \(usage)")
            }
            let fieldName = String(field[..<equals])
            guard ["store", "name", "key"].contains(fieldName) else { throw ConfigProblem("'\(value)': unknown field '\(fieldName)': \(usage)") }
            guard parts.updateValue(decoded, forKey: fieldName) == nil else { throw ConfigProblem("'\(value)': '\(fieldName)' given twice") }
        }
        for fieldName in ["store", "name", "key"] where (parts[fieldName] ?? "").isEmpty {
            throw ConfigProblem("'\(value)': '\(fieldName)' is missing or empty: \(usage)")
        }
        return SecretReference(store: parts["store"]!, name: parts["name"]!, key: parts["key"]!)
    }

    /// The references among a configuration's values, by config key.
    public static func references(in config: [String: String]) throws(ConfigProblem) -> [String: SecretReference] {
        var references: [String: SecretReference] = [:]
        for (key, value) in config {
            do {
                if let reference = try parse(value) { references[key] = reference }
            } catch {
                throw ConfigProblem("config key '\(key)': \(error.description)", keys: [key])
            }
        }
        return references
    }

    private static let reserved: Set<UInt8> = Set("%,()=".utf8)

    /// Reserved bytes percent-encoded, everything else kept as it is (UTF-8).
    private static func encode(_ text: String) -> String {
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            if reserved.contains(byte) || byte < 0x20 || byte == 0x7F {
                bytes += Array("%\(String(byte, radix: 16, uppercase: true).leftPadded(to: 2))".utf8)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
            } else if reserved.contains(byte) {
                return nil
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
