#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Every JSON file molt stores starts with its `format`: a file that is not JSON is called partial or corrupt, and
/// one written by a newer molt is refused rather than misread.
enum StoredFormat {
    static func check(_ bytes: [UInt8], path: String, is what: String, readsUpTo current: Int) throws(PersistenceError) {
        struct Header: Decodable { var format: Int }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(bytes))
        } catch {
            throw PersistenceError("\(path) is not \(what) (partial or corrupt): \(error)")
        }
        guard header.format <= current else {
            throw PersistenceError("\(path) has format \(header.format), written by a newer molt (this one reads up to \(current))")
        }
    }
}
