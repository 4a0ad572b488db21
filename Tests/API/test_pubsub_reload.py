"""Issue 19's promise through the real APIs: messages published over HTTP while the pubsub component is reloaded,
version-swapped and applied in place (Control API) all reach a streaming subscriber (grpcio
SubscribeTopicEventsAlpha1), none lost, and no publish fails. in-memory-pubsub hands its queued and unanswered
messages over in its state; the subscription moves to each new generation."""

import http.client
import json
import threading
import time

from conftest import RPC_TIMEOUT_S, wait_for
from test_pubsub import Subscriber, sidecar  # noqa: F401  (the fixture)

TOTAL = 400


def test_no_message_lost_or_publish_failed_through_reloads_swaps_and_in_place_applies(sidecar):  # noqa: F811
    subscriber = Subscriber(sidecar, "pubsub", "orders")
    received: set[int] = set()
    receiving = threading.Thread(target=lambda: _receive(subscriber, received), daemon=True)
    receiving.start()

    failures: list[str] = []
    published = threading.Event()

    def publish():
        connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=RPC_TIMEOUT_S)
        for index in range(TOTAL):
            connection.request("POST", "/v1.0/publish/pubsub/orders", json.dumps({"n": index}), {"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
            if response.status != 204:
                failures.append(f"#{index}: {response.status} {body[:200]!r}")
            if index % 40 == 0:
                time.sleep(0.01)
        published.set()

    publishing = threading.Thread(target=publish, daemon=True)
    publishing.start()
    actions = []
    # Version swaps (new generation, state handed over) and in-place applies, alternating.
    for version, delay in (("1.1.0", "100"), ("1.1.0", "101"), ("1.0.0", "100"), ("1.0.0", "102"), ("1.1.0", "100"), ("1.1.0", "103")):
        result = sidecar.control_apply("pubsub", "pubsub", {"redeliverDelayMs": delay}, plugin="in-memory-pubsub", version=version)
        assert result.action != "failed", result
        actions.append(result.action)
        time.sleep(0.05)
    publishing.join(timeout=60)
    assert published.is_set()
    wait_for(lambda: len(received) >= TOTAL, f"all {TOTAL} messages at the subscriber", timeout=30)
    subscriber.close()
    assert failures == [], failures[:5]
    assert "version-swapped" in actions and "applied-in-place" in actions, actions
    assert set(range(TOTAL)) <= received, f"missing: {sorted(set(range(TOTAL)) - received)[:20]}"


def _receive(subscriber, received):
    try:
        while True:
            event = subscriber.receive()
            received.add(json.loads(event.data)["n"])
            subscriber.answer(event.id, subscriber.cb.TopicEventResponse.SUCCESS)
    except Exception:  # the stream ends when the test closes it
        return


def test_redis_streams_reloads_under_load_lose_nothing(molt, redis_server, plugins_dir):
    """redis-streams (consumer groups): each reload starts a new instance whose consumer reclaims what the old one
    left pending; messages published meanwhile all arrive, no publish fails."""
    redis = redis_server()
    sidecar = molt([{"kind": "pubsub", "name": "pubsub", "plugin": "redis-streams",
                     "metadata": {"redisHost": redis.address, "processingTimeout": "1s", "redeliverInterval": "200ms"}}])
    subscriber = Subscriber(sidecar, "pubsub", "orders")
    received: set[int] = set()
    threading.Thread(target=lambda: _receive(subscriber, received), daemon=True).start()
    failures: list[str] = []
    connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=RPC_TIMEOUT_S)
    actions = []
    for index in range(TOTAL):
        connection.request("POST", "/v1.0/publish/pubsub/orders", json.dumps({"n": index}), {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 204:
            failures.append(f"#{index}: {response.status} {body[:200]!r}")
        if index % 80 == 40:  # a reload: processingTimeout does not apply in place
            result = sidecar.control_apply("pubsub", "pubsub", {"redisHost": redis.address, "redeliverInterval": "200ms",
                                                                "processingTimeout": f"{2 + index // 80}s"}, plugin="redis-streams")
            assert result.action == "reloaded", result
            actions.append(result.action)
    wait_for(lambda: len(received) >= TOTAL, f"all {TOTAL} messages at the subscriber", timeout=60)
    subscriber.close()
    assert failures == [], failures[:5]
    assert len(actions) == TOTAL // 80
    assert set(range(TOTAL)) <= received, f"missing: {sorted(set(range(TOTAL)) - received)[:20]}"
