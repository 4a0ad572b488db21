/// Just enough of ELF64 to vet a plugin file before it is loaded: is it a shared object for this
/// machine, and which libraries does it need (a plugin needing libswiftCore must never be unmapped).
struct ELFImage {
    /// Libraries named by DT_NEEDED entries, in file order.
    let neededLibraries: [String]

    var linksSwiftRuntime: Bool { neededLibraries.contains { $0.hasPrefix("libswiftCore.so") } }

    enum Problem: Error, Equatable, CustomStringConvertible {
        case notELF
        case notSharedObject(type: UInt16)
        case unsupported(String)
        case malformed(String)

        var description: String {
            switch self {
            case .notELF: return "not an ELF file"
            case .notSharedObject(let type): return "ELF type \(type) is not a shared object (ET_DYN)"
            case .unsupported(let why): return "unsupported ELF: \(why)"
            case .malformed(let why): return "malformed ELF: \(why)"
            }
        }
    }

    init(bytes: [UInt8]) throws(Problem) {
        guard bytes.count >= 4, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw .notELF
        }
        guard bytes.count >= 64 else { throw .malformed("truncated: \(bytes.count) bytes, shorter than an ELF header") }
        guard bytes[4] == 2 else { throw .unsupported("not 64-bit (EI_CLASS \(bytes[4]))") }
        guard bytes[5] == 1 else { throw .unsupported("not little-endian (EI_DATA \(bytes[5]))") }
        let reader = Reader(bytes: bytes)
        let type = try reader.u16(16)
        guard type == 3 else { throw .notSharedObject(type: type) }
        #if arch(x86_64)
        let expectedMachine: UInt16 = 62
        #elseif arch(arm64)
        let expectedMachine: UInt16 = 183
        #endif
        let machine = try reader.u16(18)
        guard machine == expectedMachine else { throw .unsupported("built for machine \(machine), this host is \(expectedMachine)") }

        let phoff = try reader.u64(32), phentsize = UInt64(try reader.u16(54)), phnum = UInt64(try reader.u16(56))
        var loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)] = []
        var dynamic: (offset: UInt64, size: UInt64)?
        for index in 0..<phnum {
            let header = phoff + index * phentsize
            let kind = try reader.u32(header)
            if kind == 1 { loads.append((try reader.u64(header + 16), try reader.u64(header + 8), try reader.u64(header + 32))) }
            if kind == 2 { dynamic = (try reader.u64(header + 8), try reader.u64(header + 32)) }
        }
        guard let dynamic else { throw .malformed("no PT_DYNAMIC segment") }
        // dlopen maps every PT_LOAD segment; one reaching past the end of the file would fault (SIGBUS)
        // when touched, so a truncated file is refused here, before it is ever mapped.
        for (index, load) in loads.enumerated() {
            let (end, overflow) = load.offset.addingReportingOverflow(load.size)
            guard !overflow, end <= UInt64(bytes.count) else {
                throw .malformed("truncated: PT_LOAD segment \(index) ends at byte \(load.offset &+ load.size), the file has \(bytes.count)")
            }
        }

        var neededOffsets: [UInt64] = []
        var stringTableAddress: UInt64?
        var entry = dynamic.offset
        while entry + 16 <= dynamic.offset + dynamic.size {
            let tag = try reader.u64(entry), value = try reader.u64(entry + 8)
            if tag == 0 { break }               // DT_NULL
            if tag == 1 { neededOffsets.append(value) }  // DT_NEEDED
            if tag == 5 { stringTableAddress = value }   // DT_STRTAB
            entry += 16
        }
        guard let stringTableAddress else {
            if neededOffsets.isEmpty { neededLibraries = []; return }
            throw .malformed("DT_NEEDED without DT_STRTAB")
        }
        guard let segment = loads.first(where: { stringTableAddress >= $0.vaddr && stringTableAddress < $0.vaddr + $0.size }) else {
            throw .malformed("DT_STRTAB outside every PT_LOAD segment")
        }
        let stringTable = segment.offset + (stringTableAddress - segment.vaddr)
        neededLibraries = try neededOffsets.map { offset throws(Problem) in try reader.cString(stringTable + offset) }
    }

    /// Which of `names` the file defines in its static symbol table (.symtab) without exporting them: a
    /// hidden or local definition, e.g. compiled under -fvisibility=hidden without MOLT_EXPORT. Read only
    /// to explain a missing symbol; a stripped file (no .symtab) or one that cannot be read yields none.
    static func unexportedDefinitions(in bytes: [UInt8], among names: Set<String>) -> Set<String> {
        (try? readUnexportedDefinitions(in: bytes, among: names)) ?? []
    }

    private static func readUnexportedDefinitions(in bytes: [UInt8], among names: Set<String>) throws(Problem) -> Set<String> {
        let reader = Reader(bytes: bytes)
        let shoff = try reader.u64(40), shentsize = UInt64(try reader.u16(58)), shnum = UInt64(try reader.u16(60))
        guard shoff != 0, shentsize >= 64 else { return [] }
        func section(_ index: UInt64) throws(Problem) -> (type: UInt32, offset: UInt64, size: UInt64, link: UInt64, entsize: UInt64) {
            let header = shoff + index * shentsize
            return (try reader.u32(header + 4), try reader.u64(header + 24), try reader.u64(header + 32),
                    UInt64(try reader.u32(header + 40)), try reader.u64(header + 56))
        }
        var found: Set<String> = []
        for index in 0..<shnum {
            let symtab = try section(index)
            guard symtab.type == 2, symtab.entsize >= 24, symtab.link < shnum else { continue }  // SHT_SYMTAB
            let strings = try section(symtab.link)
            var entry = symtab.offset
            while entry + 24 <= symtab.offset + symtab.size {
                let nameOffset = UInt64(try reader.u32(entry)), info = try reader.u16(entry + 4), sectionIndex = try reader.u16(entry + 6)
                let binding = (info & 0xFF) >> 4, visibility = (info >> 8) & 0x3
                // Defined (not SHN_UNDEF), and local (STB_LOCAL) or hidden/internal (STV_HIDDEN, STV_INTERNAL).
                if sectionIndex != 0, binding == 0 || visibility == 1 || visibility == 2, nameOffset < strings.size {
                    let name = try reader.cString(strings.offset + nameOffset)
                    if names.contains(name) { found.insert(name) }
                }
                entry += symtab.entsize
            }
        }
        return found
    }

    /// Bounds-checked little-endian reads.
    private struct Reader {
        let bytes: [UInt8]

        func u16(_ at: UInt64) throws(Problem) -> UInt16 { UInt16(truncatingIfNeeded: try value(at, 2)) }
        func u32(_ at: UInt64) throws(Problem) -> UInt32 { UInt32(truncatingIfNeeded: try value(at, 4)) }
        func u64(_ at: UInt64) throws(Problem) -> UInt64 { try value(at, 8) }

        private func value(_ at: UInt64, _ width: UInt64) throws(Problem) -> UInt64 {
            guard at <= UInt64(bytes.count), width <= UInt64(bytes.count) - at else {
                throw .malformed("offset \(at) is past the end of the file")
            }
            var result: UInt64 = 0
            for index in (0..<Int(width)).reversed() { result = result << 8 | UInt64(bytes[Int(at) + index]) }
            return result
        }

        func cString(_ at: UInt64) throws(Problem) -> String {
            guard at < UInt64(bytes.count) else { throw .malformed("string offset \(at) is past the end of the file") }
            guard let end = bytes[Int(at)...].firstIndex(of: 0) else { throw .malformed("unterminated string at \(at)") }
            return String(decoding: bytes[Int(at)..<end], as: UTF8.self)
        }
    }
}
