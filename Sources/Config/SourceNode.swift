import FoundationEssentials

/// A parsed YAML or JSON value with the file and key path it was found at, so every message can
/// name both. JSON is read through the YAML parser (JSON is YAML's flow syntax); quoted scalars
/// stay strings, so `"5000"` is a string and `5000` an integer in either syntax.
struct SourceNode {
    let node: YAMLNode
    let file: String
    /// Dotted key path from the document root, with `[index]` for list items; "" for the root.
    let path: String

    var origin: ConfigOrigin { ConfigOrigin(file: file, line: node.mark?.line, column: node.mark?.column) }

    /// Every document of a file (YAML `---` separated; a JSON file is one document). Empty documents are dropped.
    static func documents(of text: String, file: String) throws -> [SourceNode] {
        do {
            var nodes: [SourceNode] = []
            for node in try YAMLComposer.documents(text) {
                if let scalar = node.scalar, scalar.string.isEmpty, scalar.tag != .str { continue }
                nodes.append(SourceNode(node: node, file: file, path: ""))
            }
            return nodes
        } catch {
            throw ConfigError(origin: ConfigOrigin(file: file), keyPath: "", message: "not valid YAML or JSON: \(error)")
        }
    }

    static func readText(of file: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigError(origin: ConfigOrigin(file: file), keyPath: "", message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(origin: ConfigOrigin(file: file), keyPath: "", message: "not UTF-8 text")
        }
        return text
    }

    func path(appending key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The resolved YAML tag (str, int, bool, null, …; map and seq for collections).
    var tag: YAMLTag { node.tag }
    var isNull: Bool { node.scalar != nil && tag == .null }
    var isScalar: Bool { node.scalar != nil }

    /// "a string", "an integer", "a mapping", … for "found" in type errors.
    var typeDescription: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar:
            switch tag {
            case .str: return "a string"
            case .int: return "an integer"
            case .float: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            default: return "a scalar (\(tag.rawValue))"
            }
        }
    }

    func typeError(expected: String, _ detail: String? = nil) -> ConfigError {
        .type(origin, path, expected: expected, found: typeDescription, detail)
    }

    /// The entries of a mapping, in file order.
    func entries() throws -> [(key: String, value: SourceNode)] {
        guard case .mapping(let mapping) = node else { throw typeError(expected: "a mapping") }
        return mapping.map { pair in
            let key = pair.key.string ?? ""
            return (key, SourceNode(node: pair.value, file: file, path: path(appending: key)))
        }
    }

    /// The value at `key` of a mapping; nil when absent or null.
    func child(_ key: String) throws -> SourceNode? {
        guard let entry = try entries().first(where: { $0.key == key }), !entry.value.isNull else { return nil }
        return entry.value
    }

    /// A required child: a missing one is a type error that says "nothing" was found.
    func required(_ key: String, expected: String) throws -> SourceNode {
        guard let value = try child(key) else {
            let keyPath = path(appending: key)
            throw ConfigError.type(origin, keyPath, expected: expected, found: "nothing")
        }
        return value
    }

    func items() throws -> [SourceNode] {
        guard case .sequence(let sequence) = node else { throw typeError(expected: "a list") }
        return sequence.enumerated().map { index, item in SourceNode(node: item, file: file, path: "\(path)[\(index)]") }
    }

    /// A scalar that YAML resolves to a string (quoted, or plain text that is not a number/boolean/null).
    func string() throws -> String {
        guard let scalar = node.scalar, tag == .str else { throw typeError(expected: "a string") }
        return scalar.string
    }

    /// Any scalar as its text (`100`, `true`, `redis:6379`), for metadata values that plugins receive
    /// as strings; null is "". Lists and mappings are type errors.
    func scalarText(expected: String = "a scalar (string, number or boolean)") throws -> String {
        guard let scalar = node.scalar else { throw typeError(expected: expected) }
        return tag == .null ? "" : scalar.string
    }

    func int() throws -> Int {
        guard node.scalar != nil, tag == .int, let value = node.int else {
            throw typeError(expected: "an integer")
        }
        return value
    }

    func bool() throws -> Bool {
        guard node.scalar != nil, tag == .bool, let value = node.bool else {
            throw typeError(expected: "a boolean")
        }
        return value
    }

    func stringList() throws -> [String] {
        guard case .sequence = node else { throw typeError(expected: "a list of strings") }
        return try items().map { try $0.string() }
    }
}
