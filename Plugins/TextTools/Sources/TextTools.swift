// text-tools: a binding (kind "binding") of small text operations, each an ordinary Swift method
// declared with one line (PluginKitOperations). Stateless: nothing to hand over on reload, and every
// operation is inline (pure computation, no waiting), so the host calls it where the app's call is served.
import PluginKit
import PluginKitOperations

final class TextTools: BindingComponent {
    static let name = "text-tools"
    static let version = "1.0.0"
    static let description = "Small text operations: slugify, word count, FNV-1a digest, truncate"

    static let operations: [Operation<TextTools>] = [
        Operation("slugify", "Lowercases a text and joins its words with dashes", TextTools.slugify,
                  parameters: ["text"], results: ["slug"]),
        Operation("word-count", "Counts the words (runs of non-whitespace) of a text", TextTools.wordCount,
                  parameters: ["text"], results: ["words"]),
        Operation("digest", "The 64-bit FNV-1a hash and the length of some bytes", TextTools.digest,
                  parameters: ["data"], results: [OperationField("fnv1a64", "the hash as a signed 64-bit integer"), "length"]),
        Operation("truncate", "Shortens a text to at most maxCharacters characters", TextTools.truncate,
                  parameters: ["text", "maxCharacters"], results: ["result", "truncated"]),
    ]

    init(config: Config, host: HostServices) throws(PluginError) {}

    /// "Hello, World!" -> "hello-world": letters and digits (any script) lowercased, every run of
    /// anything else one dash, none at either end.
    func slugify(text: String) -> String {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return asciiSlug(text) }
        var slug = ""
        var pendingDash = false
        for character in text {
            if character.isLetter || character.isNumber {
                if pendingDash && !slug.isEmpty { slug.append("-") }
                pendingDash = false
                slug += character.lowercased()
            } else {
                pendingDash = true
            }
        }
        return slug
    }

    /// slugify for ASCII text, on bytes: no grapheme breaking or Unicode tables (several times faster).
    private func asciiSlug(_ text: String) -> String {
        var slug: [UInt8] = []
        slug.reserveCapacity(text.utf8.count)
        var pendingDash = false
        for var byte in text.utf8 {
            if (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) { byte += 32 }
            guard (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            else {
                pendingDash = true
                continue
            }
            if pendingDash && !slug.isEmpty { slug.append(UInt8(ascii: "-")) }
            pendingDash = false
            slug.append(byte)
        }
        return String(decoding: slug, as: UTF8.self)
    }

    /// Runs of non-whitespace (Unicode's White_Space; ASCII takes a fast path).
    func wordCount(text: String) -> Int64 {
        var words: Int64 = 0
        var inWord = false
        for scalar in text.unicodeScalars {
            let isSpace = scalar.isASCII
                ? scalar == " " || (0x09...0x0D).contains(scalar.value)
                : scalar.properties.isWhitespace
            if isSpace {
                inWord = false
            } else if !inWord {
                inWord = true
                words += 1
            }
        }
        return words
    }

    /// FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3), as Int64's bit pattern.
    func digest(data: [UInt8]) -> (Int64, Int64) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return (Int64(bitPattern: hash), Int64(data.count))
    }

    /// The first `maxCharacters` characters (grapheme clusters) and whether anything was cut.
    func truncate(text: String, maxCharacters: Int64) throws(PluginError) -> (String, Bool) {
        guard maxCharacters >= 0 else { throw .invalidArgument("maxCharacters is \(maxCharacters); it must be 0 or more") }
        guard let end = text.index(text.startIndex, offsetBy: Int(clamping: maxCharacters), limitedBy: text.endIndex),
              end != text.endIndex
        else { return (text, false) }
        return (String(text[..<end]), true)
    }
}

@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(TextTools.self) }
