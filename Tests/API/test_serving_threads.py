"""The serving path's threading (issue 15): a call whose plugin completes inline (memorylock) is served end
to end by the event-loop thread that read it: decoded, the plugin called, the plugin's completion taken and
the answer written, with no other thread of molt taking part.

Not timed. One client makes CALLS calls one after another on one connection; from /proc/<pid>/task/*/status
we count the context switches of each of molt's threads meanwhile. The thread serving the connection sleeps
between most calls (a request that arrives before the loop is back in epoll_wait costs it no switch); every
other thread must stay (almost) asleep. A hop per call to
any other thread (a cooperative-pool thread, a plugin thread, a timer) would show as at least CALLS switches
there."""

from pathlib import Path

import http.client
import json

from conftest import RPC_TIMEOUT_S

CALLS = 400
# Switches other threads may make meanwhile for reasons of their own (a log line, a signal handler).
OTHERS_ALLOWED = CALLS // 10
# The serving loop sleeps between calls unless the next request is already readable when it returns to
# epoll_wait (it was 399 of 400 once in CI); it must still be the thread that woke for (nearly) every call.
SERVING_AT_LEAST = CALLS - OTHERS_ALLOWED


def thread_switches(pid: int) -> dict[int, tuple[str, int]]:
    """tid -> (thread name, voluntary + involuntary context switches so far)."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines() if ":\t" in line)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        threads[int(task.name)] = (fields["Name"].strip(),
                                   int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"]))
    return threads


def assert_served_on_one_event_loop(pid: int, make_calls) -> None:
    make_calls(20)  # connection made, first calls served
    before = thread_switches(pid)
    make_calls(CALLS)
    after = thread_switches(pid)
    deltas = {tid: (name, count - before.get(tid, (name, 0))[1]) for tid, (name, count) in after.items()}
    serving = max(deltas, key=lambda tid: deltas[tid][1])
    serving_name, serving_switches = deltas[serving]
    others = {f"{name}/{tid}": count for tid, (name, count) in deltas.items() if tid != serving and count > 0}
    assert serving_name.startswith("NIO-"), f"the busiest thread is {serving_name!r}, not an event loop: {deltas}"
    assert serving_switches >= SERVING_AT_LEAST, f"the event loop switched {serving_switches} times for {CALLS} calls: {deltas}"
    assert sum(others.values()) <= OTHERS_ALLOWED, (
        f"threads other than the event loop {serving_name}/{serving} switched {sum(others.values())} times "
        f"during {CALLS} calls (allowed {OTHERS_ALLOWED}): {others}")


def test_grpc_call_completed_inline_stays_on_its_event_loop(sidecar):
    from dapr.proto.runtime.v1 import lock_pb2

    stub = sidecar.dapr_stub()
    counter = iter(range(1_000_000))

    def make_calls(count: int) -> None:
        for _ in range(count):
            reply = stub.TryLockAlpha1(lock_pb2.TryLockRequest(store_name="lockstore", resource_id=f"grpc-{next(counter)}",
                                                               lock_owner="threads", expiry_in_seconds=60),
                                       timeout=RPC_TIMEOUT_S)
            assert reply.success

    assert_served_on_one_event_loop(sidecar.process.pid, make_calls)


def test_http_call_completed_inline_stays_on_its_event_loop(sidecar):
    connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=RPC_TIMEOUT_S)
    counter = iter(range(1_000_000))

    def make_calls(count: int) -> None:
        for _ in range(count):
            body = json.dumps({"resourceId": f"http-{next(counter)}", "lockOwner": "threads", "expiryInSeconds": 60})
            connection.request("POST", "/v1.0-alpha1/lock/lockstore", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            assert response.status == 200 and json.loads(answer) == {"success": True}, (response.status, answer)

    try:
        assert_served_on_one_event_loop(sidecar.process.pid, make_calls)
    finally:
        connection.close()
