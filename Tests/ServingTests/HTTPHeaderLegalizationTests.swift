@testable import HTTPServing
import NIOHTTP1
import Testing

/// Header values that come from a store (ETag, response metadata) are made legal by `replaceOrAddLegalized`
/// before they reach the wire: a stored value can never split an answer or add a header.
@Suite struct HTTPHeaderLegalizationTests {
    @Test func aStoredValueCannotSplitTheAnswer() {
        var headers = HTTPHeaders()
        headers.replaceOrAddLegalized(name: "ETag", value: "1\r\nSet-Cookie: session=stolen")
        headers.replaceOrAddLegalized(name: "metadata.ttl", value: "  60\u{0}\u{7F}\t ")
        #expect(headers["ETag"] == ["1  Set-Cookie: session=stolen"])
        #expect(headers["metadata.ttl"] == ["60"])
        for (_, value) in headers {
            #expect(!value.utf8.contains { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F })
        }
    }

    @Test func aNameThatIsNotATokenIsLeftOut() {
        var headers = HTTPHeaders()
        headers.replaceOrAddLegalized(name: "metadata.a b", value: "x")
        headers.replaceOrAddLegalized(name: "metadata.a\r\nX-Injected", value: "x")
        headers.replaceOrAddLegalized(name: "", value: "x")
        headers.replaceOrAddLegalized(name: "metadata.ok-1", value: "y")
        #expect(headers.map(\.name) == ["metadata.ok-1"])
    }

    @Test func legalValuesAreKeptAsTheyAre() {
        for value in ["\"abc\"", "W/\"1\"", "a\tb", "ünïcode", "x=1; y=2"] {
            #expect(HTTPHeaders.legalized(value) == value)
        }
    }
}
