/// A composed YAML node (JSON is YAML's flow syntax, so JSON files compose the same way). Aliases are
/// replaced by the node their anchor names; scalar tags are resolved (`YAMLTag.resolve`) when composed.
enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case mapping(YAMLMapping)
    case sequence(YAMLSequence)

    /// Where the node starts in its text (1-based).
    var mark: YAMLMark? {
        switch self {
        case .scalar(let scalar): return scalar.mark
        case .mapping(let mapping): return mapping.mark
        case .sequence(let sequence): return sequence.mark
        }
    }

    /// The resolved tag: `str`, `int`, `bool`, … for scalars; `map` and `seq` unless given explicitly.
    var tag: YAMLTag {
        switch self {
        case .scalar(let scalar): return scalar.tag
        case .mapping(let mapping): return mapping.tag
        case .sequence(let sequence): return sequence.tag
        }
    }

    var scalar: YAMLScalar? {
        if case .scalar(let scalar) = self { return scalar }
        return nil
    }

    /// The text of a scalar; nil for collections.
    var string: String? { scalar?.string }

    /// The integer a plain scalar resolved to `int` denotes: decimal, `0x`, `0o`/`0` octal, `0b`, `_` separators,
    /// base-60 `1:30` (YAML 1.1). Nil when it does not fit in an Int.
    var int: Int? {
        guard let scalar, scalar.tag == .int else { return nil }
        return YAMLScalarValues.integer(scalar.string)
    }

    /// `true`/`yes`/`on` and `false`/`no`/`off` in any case, for a scalar resolved to `bool`.
    var bool: Bool? {
        guard let scalar, scalar.tag == .bool else { return nil }
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }
}

struct YAMLScalar: Sendable {
    let string: String
    let tag: YAMLTag
    /// Plain (unquoted) scalars are the only ones whose tag is resolved from their text.
    let isPlain: Bool
    let mark: YAMLMark
}

/// The pairs of a mapping in text order (keys are unique: the composer refuses duplicates of scalar keys).
struct YAMLMapping: Sendable, Sequence {
    let pairs: [(key: YAMLNode, value: YAMLNode)]
    let tag: YAMLTag
    let mark: YAMLMark

    func makeIterator() -> IndexingIterator<[(key: YAMLNode, value: YAMLNode)]> { pairs.makeIterator() }
}

struct YAMLSequence: Sendable, Sequence {
    let items: [YAMLNode]
    let tag: YAMLTag
    let mark: YAMLMark

    func makeIterator() -> IndexingIterator<[YAMLNode]> { items.makeIterator() }
}

/// A position in YAML text; line and column from 1 (columns count Unicode scalars, as libyaml does).
struct YAMLMark: Sendable, Equatable, CustomStringConvertible {
    let line: Int
    let column: Int
    var description: String { "\(line):\(column)" }
}

/// A YAML tag by its full name (`tag:yaml.org,2002:str`).
struct YAMLTag: Sendable, Hashable, RawRepresentable {
    let rawValue: String
    init(rawValue: String) { self.rawValue = rawValue }

    static let str = YAMLTag(rawValue: "tag:yaml.org,2002:str")
    static let int = YAMLTag(rawValue: "tag:yaml.org,2002:int")
    static let float = YAMLTag(rawValue: "tag:yaml.org,2002:float")
    static let bool = YAMLTag(rawValue: "tag:yaml.org,2002:bool")
    static let null = YAMLTag(rawValue: "tag:yaml.org,2002:null")
    static let merge = YAMLTag(rawValue: "tag:yaml.org,2002:merge")
    static let timestamp = YAMLTag(rawValue: "tag:yaml.org,2002:timestamp")
    static let value = YAMLTag(rawValue: "tag:yaml.org,2002:value")
    static let map = YAMLTag(rawValue: "tag:yaml.org,2002:map")
    static let seq = YAMLTag(rawValue: "tag:yaml.org,2002:seq")
}
