"""molt's own app gRPC server (Sources/Serving/GRPC/AppGRPCServer.swift, on swift-nio-http2): what a gRPC
client may send besides a well-formed unary call, and many calls at once on one connection."""

import subprocess

import grpc
import pytest

from conftest import RPC_TIMEOUT_S


def test_many_calls_in_flight_on_one_connection(sidecar):
    from dapr.proto.runtime.v1 import lock_pb2, state_pb2
    from dapr.proto.common.v1 import common_pb2

    stub = sidecar.dapr_stub()
    saves = [stub.SaveState.future(state_pb2.SaveStateRequest(
        store_name="statestore", states=[common_pb2.StateItem(key=f"inflight-{i}", value=f"v{i}".encode())]), timeout=RPC_TIMEOUT_S)
        for i in range(200)]
    for future in saves:
        future.result()
    gets = [stub.GetState.future(state_pb2.GetStateRequest(store_name="statestore", key=f"inflight-{i}"), timeout=RPC_TIMEOUT_S)
            for i in range(200)]
    locks = [stub.TryLockAlpha1.future(lock_pb2.TryLockRequest(store_name="lockstore", resource_id=f"inflight-{i}",
                                                                lock_owner="o", expiry_in_seconds=30), timeout=RPC_TIMEOUT_S)
             for i in range(200)]
    assert [future.result().data for future in gets] == [f"v{i}".encode() for i in range(200)]
    assert all(future.result().success for future in locks)


def test_compressed_request_is_refused_naming_why(sidecar):
    from dapr.proto.runtime.v1 import state_pb2

    stub = sidecar.dapr_stub()
    with pytest.raises(grpc.RpcError) as caught:
        # a compressible request: grpcio sends small ones uncompressed whatever the setting
        stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="k" * 3000), timeout=RPC_TIMEOUT_S,
                      compression=grpc.Compression.Gzip)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, caught.value
    assert "compressed" in caught.value.details()
    # the connection and the server still serve
    assert stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="k"), timeout=RPC_TIMEOUT_S) is not None


@pytest.mark.parametrize("method, content_type", [("GET", "application/grpc"), ("POST", "application/json")])
def test_not_grpc_gets_415(sidecar, method, content_type):
    argv = ["curl", "-s", "-w", "\n%{http_code}", "--http2-prior-knowledge", "-X", method, "-H", f"content-type: {content_type}"]
    if method == "POST":
        argv += ["--data-binary", "{}"]
    result = subprocess.run(argv + [f"http://127.0.0.1:{sidecar.grpc_port}/dapr.proto.runtime.v1.Dapr/GetMetadata"],
                            capture_output=True, text=True, timeout=30)
    body, _, status = result.stdout.rpartition("\n")
    assert status == "415", (result.stdout, result.stderr)
    assert "application/grpc" in body


def test_a_message_split_over_many_data_frames(sidecar):
    """A message larger than the HTTP/2 frame size arrives in several DATA frames and is put back together."""
    from dapr.proto.runtime.v1 import state_pb2
    from dapr.proto.common.v1 import common_pb2

    stub = sidecar.dapr_stub()
    value = bytes(range(256)) * 4096  # 1 MiB
    stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore", states=[common_pb2.StateItem(key="big", value=value)]),
                   timeout=RPC_TIMEOUT_S)
    got = grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}", options=[("grpc.max_receive_message_length", 8 << 20)])
    try:
        from dapr.proto.runtime.v1 import dapr_pb2_grpc
        reply = dapr_pb2_grpc.DaprStub(got).GetState(state_pb2.GetStateRequest(store_name="statestore", key="big"), timeout=RPC_TIMEOUT_S)
    finally:
        got.close()
    assert reply.data == value
