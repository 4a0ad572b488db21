"""redis-streams' publish on the host's event loops (ABI 1.1 I/O; issues 15 and 19): a PublishEvent (gRPC) or
POST /v1.0/publish (HTTP) served by redis-streams stays on the event-loop thread that read the request. That
thread decodes it, writes the XADD on a connection of its own loop, reads the reply there and writes the answer.
No other thread of molt takes part: not the plugin's command thread (which publishes only on a host without ABI
1.1 I/O, and runs XACKs), no cooperative-pool thread.

Not timed. Counted like test_serving_threads.py: the context switches of each of molt's threads during CALLS
calls made one after another on one connection. A hop per call to the plugin's command thread would show as at
least CALLS switches there."""

import http.client
import json

import pytest

from conftest import RPC_TIMEOUT_S
from test_serving_threads import CALLS, assert_served_on_one_event_loop


@pytest.fixture(scope="module")
def sidecar(module_molt, redis):
    """One molt with a redis-streams pubsub `pubsub` on the module's redis-server (no subscriber: a publish is
    one XADD)."""
    return module_molt([{"kind": "pubsub", "name": "pubsub", "plugin": "redis-streams",
                         "metadata": {"redisHost": redis.address, "maxLenApprox": "100000"}}])


def test_grpc_publish_event_to_redis_streams_stays_on_its_event_loop(sidecar, redis):
    from dapr.proto.runtime.v1 import pubsub_pb2

    stub = sidecar.dapr_stub()
    counter = iter(range(1_000_000))

    def make_calls(count: int) -> None:
        for _ in range(count):
            request = pubsub_pb2.PublishEventRequest(pubsub_name="pubsub", topic="threads-grpc",
                                                     data=json.dumps({"n": next(counter)}).encode(),
                                                     data_content_type="application/json")
            stub.PublishEvent(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)

    assert_served_on_one_event_loop(sidecar.process.pid, make_calls)
    published = next(counter)
    assert int(redis.cli("XLEN", "threads-grpc")) == published == 20 + CALLS


def test_http_publish_to_redis_streams_stays_on_its_event_loop(sidecar, redis):
    connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=RPC_TIMEOUT_S)
    counter = iter(range(1_000_000))

    def make_calls(count: int) -> None:
        for _ in range(count):
            connection.request("POST", "/v1.0/publish/pubsub/threads-http", json.dumps({"n": next(counter)}),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            assert response.status == 204, (response.status, answer)

    try:
        assert_served_on_one_event_loop(sidecar.process.pid, make_calls)
    finally:
        connection.close()
    assert int(redis.cli("XLEN", "threads-http")) == next(counter) == 20 + CALLS
