@testable import Config
import Testing

/// The YAML reader under every config file: YAML 1.1 implicit typing as the files have always been read, aliases,
/// and the errors that name where the text goes wrong.
@Suite struct YAMLComposerTests {
    @Test(arguments: [
        ("yes", YAMLTag.bool), ("Off", .bool), ("TRUE", .bool), ("true", .bool), ("tRUE", .str),
        ("0", .int), ("-17", .int), ("+3", .int), ("1_000", .int), ("0x1F", .int), ("0o17", .int), ("017", .int), ("0b101", .int),
        ("1:30", .int), ("089", .float), ("1.5", .float), ("1e5", .float), ("-.inf", .float), (".NaN", .float), (".5", .float),
        ("6.8523015e+5", .float), ("1e", .str), ("", .null), ("~", .null), ("Null", .null), ("nul", .str), ("<<", .merge), ("=", .value),
        ("2001-12-14", .timestamp), ("2001-12-14t21:59:43.10-05:00", .timestamp), ("2001-12-14 21:59:43.10 Z", .timestamp),
        ("2001-12-1", .str), ("redis:6379", .str), ("127.0.0.1", .str), ("10:61", .str), ("0x", .str), ("--1", .str),
    ])
    func plainScalarsAreTypedAsYAML11(text: String, tag: YAMLTag) {
        #expect(YAMLScalarValues.resolve(text) == tag, "\(text)")
    }

    @Test(arguments: [("0", 0), ("-17", -17), ("1_000", 1000), ("0x1F", 31), ("-0x10", -16), ("0o17", 15), ("017", 15),
                      ("0b101", 5), ("1:30", 90), ("-1:0:0", -3600), ("99999999999999999999", nil)] as [(String, Int?)])
    func integersHaveTheirYAML11Values(text: String, value: Int?) {
        #expect(YAMLScalarValues.integer(text) == value, "\(text)")
    }

    @Test func quotedScalarsStayStringsAndAliasesAreResolved() throws {
        let documents = try YAMLComposer.documents("""
            base: &base { host: "5000", port: 6379 }
            copy: *base
            ---
            [1, '2']
            """)
        #expect(documents.count == 2)
        guard case .mapping(let root) = documents[0], case .mapping(let copy) = root.pairs[1].value else {
            Issue.record("not a mapping: \(documents[0])")
            return
        }
        #expect(copy.pairs.map { $0.key.string } == ["host", "port"])
        #expect(copy.pairs[0].value.tag == .str)
        #expect(copy.pairs[1].value.int == 6379)
        #expect(root.pairs[1].value.mark == YAMLMark(line: 1, column: 7), "an alias is the anchored node, marked where it was defined")
        guard case .sequence(let list) = documents[1] else {
            Issue.record("not a list: \(documents[1])")
            return
        }
        #expect(list.items.map(\.tag) == [.int, .str])
    }

    @Test func malformedTextIsAnErrorNamingTheLineAndContext() {
        #expect(throws: YAMLError.self) { try YAMLComposer.documents("a: [1, 2\n") }
        do {
            _ = try YAMLComposer.documents("version: 1\ngrpcAddress: [unclosed\n")
            Issue.record("accepted malformed YAML")
        } catch {
            #expect(error.description.hasPrefix("3:1: error: parser: while parsing a flow sequence in line 2, column 14\n"))
        }
    }

    @Test func duplicateKeysAndUndefinedAliasesAreRefused() {
        do {
            _ = try YAMLComposer.documents("a: 1\nb: 2\na: 3\n")
            Issue.record("accepted a duplicate key")
        } catch {
            #expect(error.description == "3:1: error: composer: duplicate key 'a' in the mapping at line 1, column 1")
        }
        #expect(throws: YAMLError.self) { try YAMLComposer.documents("a: *nowhere\n") }
    }

    @Test func hostileNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: YAMLError.self) { try YAMLComposer.documents(deep) }
    }
}
