"""redis-state on the host's event loops (ABI 1.1 I/O; issue 15): a GetState served by redis-state stays on
the event-loop thread that read the request. That thread decodes it, writes the Redis command on a connection
of its own loop, reads the reply there and writes the answer. No other thread of molt takes part: no plugin
I/O thread, no cooperative-pool thread.

Not timed. Counted like test_serving_threads.py: the context switches of each of molt's threads during CALLS
calls made one after another on one connection."""

import http.client

from conftest import RPC_TIMEOUT_S
from test_serving_threads import assert_served_on_one_event_loop


def test_grpc_get_state_from_redis_stays_on_its_event_loop(sidecar):
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import state_pb2

    stub = sidecar.dapr_stub()
    stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore",
                                              states=[common_pb2.StateItem(key="threads-grpc", value=b"v")]),
                   timeout=RPC_TIMEOUT_S)

    def make_calls(count: int) -> None:
        for _ in range(count):
            reply = stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="threads-grpc"), timeout=RPC_TIMEOUT_S)
            assert reply.data == b"v" and reply.etag == "1", reply

    assert_served_on_one_event_loop(sidecar.process.pid, make_calls)


def test_http_get_state_from_redis_stays_on_its_event_loop(sidecar):
    connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=RPC_TIMEOUT_S)
    connection.request("POST", "/v1.0/state/statestore", '[{"key": "threads-http", "value": "v"}]',
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 204, (response.status, response.read())
    response.read()

    def make_calls(count: int) -> None:
        for _ in range(count):
            connection.request("GET", "/v1.0/state/statestore/threads-http")
            response = connection.getresponse()
            answer = response.read()
            assert response.status == 200 and answer == b'"v"', (response.status, answer)

    try:
        assert_served_on_one_event_loop(sidecar.process.pid, make_calls)
    finally:
        connection.close()
