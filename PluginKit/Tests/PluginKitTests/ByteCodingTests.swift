import PluginKit
import PluginKitStateTransfer
import Testing

@Suite struct ByteCodingTests {
    @Test func roundTripsEveryKind() throws {
        var out = ByteWriter()
        out.append(raw: Array("HDR1".utf8))
        out.append(UInt8(0xAB))
        out.append(Int16(-2))
        out.append(UInt32(0x0102_0304))
        out.append(Int64.min)
        out.append(UInt64.max)
        out.append(string: "héllo")
        out.append(string: "")
        out.append(lengthPrefixed: [1, 2, 3] as [UInt8])

        var input = ByteReader(out.bytes)
        #expect(try input.readRaw(4, "header") == Array("HDR1".utf8))
        #expect(try input.read(UInt8.self, "u8") == 0xAB)
        #expect(try input.read(Int16.self, "i16") == -2)
        #expect(try input.read(UInt32.self, "u32") == 0x0102_0304)
        #expect(try input.read(Int64.self, "i64") == Int64.min)
        #expect(try input.read(UInt64.self, "u64") == UInt64.max)
        #expect(try input.readString("greeting") == "héllo")
        #expect(try input.readString("empty") == "")
        #expect(try input.readLengthPrefixed("blob") == [1, 2, 3])
        #expect(input.isAtEnd)
        try input.expectEnd()
    }

    @Test func integersAreLittleEndian() {
        var out = ByteWriter()
        out.append(UInt32(0x0102_0304))
        #expect(out.bytes == [4, 3, 2, 1])
    }

    @Test func truncatedReadsNameTheField() {
        var input = ByteReader([1, 0])
        #expect(throws: PluginError.invalidArgument("truncated state: lock count needs 4 bytes at offset 0, only 2 remain")) {
            try input.read(UInt32.self, "lock count")
        }
        #expect(input.offset == 0)  // a failed read consumes nothing

        var out = ByteWriter()
        out.append(UInt32(10))
        out.append(raw: Array("abc".utf8))
        var string = ByteReader(out.bytes)
        #expect(throws: PluginError.invalidArgument("truncated state: owner needs 10 bytes at offset 4, only 3 remain")) {
            try string.readString("owner")
        }
        var length = ByteReader([7])
        #expect(throws: PluginError.invalidArgument("truncated state: owner (length) needs 4 bytes at offset 0, only 1 remain")) {
            try length.readString("owner")
        }
    }

    @Test func refusesInvalidUTF8AndTrailingBytes() {
        var out = ByteWriter()
        out.append(lengthPrefixed: [0xFF, 0xFE] as [UInt8])
        out.append(UInt8(9))
        var input = ByteReader(out.bytes)
        #expect(throws: PluginError.invalidArgument("state format: name at offset 0 is not valid UTF-8")) {
            try input.readString("name")
        }
        #expect(throws: PluginError.invalidArgument("state format: 1 trailing bytes after offset 6 of 7")) {
            try input.expectEnd()
        }
    }
}
