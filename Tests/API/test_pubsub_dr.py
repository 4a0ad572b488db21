"""Issue 19's DR switch of the Redis behind a pubsub, end to end with real redis-servers: B replicates A, messages are
published continuously over HTTP while B is promoted (REPLICAOF NO ONE) and redisHost is switched to B through the
Control API; a streaming subscriber (grpcio SubscribeTopicEventsAlpha1) answers SUCCESS.

What molt promises, and this test asserts: no publish fails during the switch, and every acknowledged message that
is in the stream of the Redis molt ends on (B) is received. Asynchronous replication has no write fence: a message
acknowledged by A after B's promotion (the old generation serves until the switch) is only in A's stream. The DR
runbook's reconciliation step copies those entries from A to B (XADD, same fields); after it, every acknowledged
publish has been received. Duplicates are counted (at least once) and reported."""

import http.client
import json
import re
import threading
import time
from collections import Counter

from conftest import RPC_TIMEOUT_S, wait_for
from test_pubsub import Subscriber

TOPIC = "orders"
BEFORE, AFTER = 300, 300  # messages published before the switch starts, and after it ended


def _receive(subscriber, counts, lock):
    try:
        while True:
            event = subscriber.receive()
            with lock:
                counts[json.loads(event.data)["n"]] += 1
            subscriber.answer(event.id, subscriber.cb.TopicEventResponse.SUCCESS)
    except Exception:  # the stream ends when the test closes it
        return


def _stream(redis):
    """{n: [field, value, ...]} of every entry in TOPIC's stream (the payload is in the CloudEvent's data)."""
    entries = json.loads(redis.cli("--json", "XRANGE", TOPIC, "-", "+") or "[]")
    result = {}
    for _entry_id, fields in entries:
        flat = [str(value) for value in fields]
        data = dict(zip(flat[::2], flat[1::2])).get("data", "")
        match = re.search(r'\\?"n\\?"\s*:\s*(\d+)', data)
        assert match, f"an entry of {TOPIC} without our payload: {flat}"
        result[int(match.group(1))] = flat
    return result


def test_dr_switch_fails_no_publish_and_delivers_every_message_in_the_dr_stream(molt, redis_server):
    primary, dr = redis_server(), redis_server()
    dr.cli("REPLICAOF", "127.0.0.1", str(primary.port))
    wait_for(lambda: "master_link_status:up" in dr.cli("INFO", "replication"), "B replicating A")
    reclaim = {"processingTimeout": "1s", "redeliverInterval": "200ms"}
    sidecar = molt([{"kind": "pubsub", "name": "pubsub", "plugin": "redis-streams",
                     "metadata": {"redisHost": primary.address, **reclaim}}])
    subscriber = Subscriber(sidecar, "pubsub", TOPIC)
    counts, lock = Counter(), threading.Lock()
    threading.Thread(target=_receive, args=(subscriber, counts, lock), daemon=True).start()

    acked, failures = [], []
    switched, stop = threading.Event(), threading.Event()
    after_switch = []

    def publish():
        connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=RPC_TIMEOUT_S)
        n = 0
        while not stop.is_set():
            connection.request("POST", f"/v1.0/publish/pubsub/{TOPIC}", json.dumps({"n": n}),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
            if response.status == 204:
                acked.append(n)
                if switched.is_set():
                    after_switch.append(n)
            else:
                failures.append(f"#{n}: {response.status} {body[:200]!r}")
            n += 1
            time.sleep(0.002)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    wait_for(lambda: len(acked) >= BEFORE, f"{BEFORE} publishes before the switch", timeout=60)
    # The switch, while the publisher keeps going: promote B, then move the pubsub to it.
    dr.cli("REPLICAOF", "NO", "ONE")
    result = sidecar.control_apply("pubsub", "pubsub", {"redisHost": dr.address, **reclaim}, plugin="redis-streams")
    assert result.action == "reloaded", result
    switched.set()
    wait_for(lambda: len(after_switch) >= AFTER, f"{AFTER} publishes after the switch", timeout=60)
    stop.set()
    publisher.join(timeout=RPC_TIMEOUT_S + 5)
    assert not publisher.is_alive()
    assert failures == [], f"{len(failures)} publishes failed during the DR switch: {failures[:5]}"

    # Every acknowledged message in B's stream arrives (molt's part: nothing lost across the switch).
    in_b = _stream(dr)
    expected = [n for n in acked if n in in_b]
    wait_for(lambda: all(counts[n] for n in expected), f"the {len(expected)} acknowledged messages of B's stream",
             timeout=60)
    assert set(after_switch) <= set(in_b), "a message acknowledged after the switch is not in B's stream"

    # Reconciliation: entries acknowledged by A but never replicated (written after B's promotion) are copied to B.
    in_a = _stream(primary)
    stranded = [n for n in acked if n not in in_b]
    assert all(n in in_a for n in stranded), f"acknowledged, in neither stream: {[n for n in stranded if n not in in_a][:10]}"
    for n in stranded:
        dr.cli("XADD", TOPIC, "*", *in_a[n])
    wait_for(lambda: all(counts[n] for n in acked), f"all {len(acked)} acknowledged messages", timeout=60)
    subscriber.close()
    with lock:
        duplicates = sum(count - 1 for count in counts.values() if count > 1)
        unknown = sorted(set(counts) - set(acked))
    print(f"\nDR switch: {len(acked)} published ({len(after_switch)} after the switch), 0 failed, "
          f"{len(stranded)} stranded on A and reconciled, {duplicates} duplicate deliveries, "
          f"{len(unknown)} received but not acknowledged")
    assert not unknown, f"received messages never published: {unknown[:10]}"
