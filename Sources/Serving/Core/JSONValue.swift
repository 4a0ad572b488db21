#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Any JSON value: the `value` of Dapr's state bodies, which apps send as arbitrary JSON.
///
/// It encodes back the way Dapr (Go's encoding/json) stores such a value: compact, object keys sorted,
/// a string with its quotes. Integers that fit in 64 bits stay exact; other numbers are doubles.
package enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // The parser has already checked the syntax: exactly one of these matches.
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The bytes a state store keeps for this value.
    package var storedBytes: [UInt8] {
        // Encoding a tree decoded from JSON cannot fail (no non-finite numbers, no foreign types).
        (try? JSONCoding.encoder.encode(self)).map(Array.init) ?? Array("null".utf8)
    }

    /// True when `bytes` is one well-formed JSON value.
    package static func isValidJSON(_ bytes: [UInt8]) -> Bool {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))) != nil
    }
}

/// The JSON encoder of every response body and stored value.
package enum JSONCoding {
    /// Compact, with sorted keys (stable output, as Go's encoding/json), slashes unescaped.
    /// Shared: configured once, never changed after (encoding and decoding are reentrant).
    package static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
    package static let decoder = JSONDecoder()
}
