import ServingCore

/// A gRPC status as the app server writes it in trailers: a code from gRPC's closed set and a
/// message (percent-encoded on the wire, as the gRPC HTTP/2 protocol requires).
struct GRPCStatus: Error, Sendable {
    enum Code: Int, Sendable {
        case ok = 0, cancelled = 1, unknown = 2, invalidArgument = 3, deadlineExceeded = 4, notFound = 5
        case alreadyExists = 6, permissionDenied = 7, resourceExhausted = 8, failedPrecondition = 9, aborted = 10
        case outOfRange = 11, unimplemented = 12, `internal` = 13, unavailable = 14, dataLoss = 15, unauthenticated = 16
    }

    let code: Code
    let message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Dapr's gRPC status for a failed app call.
    init(_ failure: APIFailure) {
        let code: Code
        switch failure.kind {
        case .invalidArgument, .storeNotFound, .secretStoreNotFound, .etagInvalid: code = .invalidArgument
        case .notConfigured: code = .failedPrecondition
        case .permissionDenied: code = .permissionDenied
        case .etagMismatch: code = .aborted
        case .unavailable: code = .unavailable
        case .timeout, .deadlineExceeded: code = .deadlineExceeded
        case .unsupported: code = .unimplemented
        case .internal: code = .internal
        case .tooLarge: code = .resourceExhausted
        }
        self.init(code, failure.message)
    }

    /// `grpc-message`: printable ASCII except '%' as is, every other byte (UTF-8) as %XX.
    var encodedMessage: String {
        var encoded = ""
        encoded.reserveCapacity(message.utf8.count)
        for byte in message.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                encoded.unicodeScalars.append("%")
                encoded.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                encoded.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0x0F)]))
            }
        }
        return encoded
    }
}

/// gRPC's `grpc-timeout` header: at most 8 digits and a unit (H, M, S, m, u, n).
enum GRPCTimeout {
    static func parse(_ header: String) -> Duration? {
        guard let unit = header.last, header.count >= 2, header.count <= 9, let value = Int64(header.dropLast()), value >= 0 else { return nil }
        switch unit {
        case "H": return .seconds(value * 3600)
        case "M": return .seconds(value * 60)
        case "S": return .seconds(value)
        case "m": return .milliseconds(value)
        case "u": return .microseconds(value)
        case "n": return .nanoseconds(value)
        default: return nil
        }
    }
}
