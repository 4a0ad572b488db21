import MoltProtos
import ServingCore
import SwiftProtobuf

/// One unary method of the app API: decodes the request message, serves it, encodes the answer.
struct GRPCMethod: Sendable {
    typealias Outcome = Result<[UInt8], GRPCStatus>
    let serve: @Sendable (_ message: [UInt8], _ deadline: ContinuousClock.Instant?) async -> Outcome

    static func unary<Request: Message, Response: Message>(
        _ handler: @escaping @Sendable (Request, ContinuousClock.Instant?) async throws(APIFailure) -> Response
    ) -> GRPCMethod {
        GRPCMethod { bytes, deadline in
            let request: Request
            do {
                request = try Request(serializedBytes: bytes)
            } catch {
                return .failure(GRPCStatus(.invalidArgument, "Can't deserialize to message of type \(Request.self): \(error)"))
            }
            let response: Response
            do throws(APIFailure) {
                response = try await handler(request, deadline)
            } catch {
                return .failure(GRPCStatus(error))
            }
            do {
                return .success(try response.serializedBytes())
            } catch {
                return .failure(GRPCStatus(.internal, "cannot encode \(Response.self): \(error)"))
            }
        }
    }
}

/// The app API's gRPC methods by HTTP/2 `:path` (`/dapr.proto.runtime.v1.Dapr/GetState`, ...).
struct DaprGRPCRoutes: Sendable {
    private let methods: [String: GRPCMethod]

    init(_ service: DaprService) {
        let prefix = "/dapr.proto.runtime.v1.Dapr/"
        methods = [
            prefix + "GetState": .unary(service.getState),
            prefix + "GetBulkState": .unary(service.getBulkState),
            prefix + "SaveState": .unary(service.saveState),
            prefix + "DeleteState": .unary(service.deleteState),
            prefix + "DeleteBulkState": .unary(service.deleteBulkState),
            prefix + "ExecuteStateTransaction": .unary(service.executeStateTransaction),
            prefix + "TryLockAlpha1": .unary(service.tryLockAlpha1),
            prefix + "UnlockAlpha1": .unary(service.unlockAlpha1),
            prefix + "InvokeBinding": .unary(service.invokeBinding),
            prefix + "GetSecret": .unary(service.getSecret),
            prefix + "GetBulkSecret": .unary(service.getBulkSecret),
            prefix + "GetMetadata": .unary(service.getMetadata),
        ]
    }

    func method(_ path: String) -> GRPCMethod? { methods[path] }
}
