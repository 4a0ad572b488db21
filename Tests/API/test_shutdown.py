"""SIGTERM while calls are in flight: molt lets them finish, answers each one, refuses new calls and
exits 0.

The lock component `slow` runs on the `probe` fixture plugin with hangMs=1500: a try_lock of the
resource "hang" completes 1.5 s after it was called (Tests/Fixtures/CPlugins/probe.c).
"""

import signal
import time

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc, lock_pb2

CALLS = 8
HANG_MS = 1500


def try_lock_request(resource, owner):
    return lock_pb2.TryLockRequest(store_name="slow", resource_id=resource, lock_owner=owner, expiry_in_seconds=10)


def test_sigterm_lets_calls_in_flight_finish(molt, components, fixtures_dir):
    sidecar = molt([components.lock("slow", plugin="probe", hangMs=str(HANG_MS))], plugins_dir=fixtures_dir)
    stub = sidecar.dapr_stub()

    started = time.monotonic()
    futures = [stub.TryLockAlpha1.future(try_lock_request("hang", f"owner-{i}"), timeout=30) for i in range(CALLS)]
    time.sleep(0.3)
    assert not any(f.done() for f in futures), "the calls finished before SIGTERM: they were not in flight"
    sidecar.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)

    # A new call after SIGTERM (on a new connection) is refused while the old calls still run.
    assert sidecar.process.poll() is None, "molt exited before its calls in flight finished"
    late = grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}")
    try:
        late_stub = dapr_pb2_grpc.DaprStub(late)
        try:
            response = late_stub.TryLockAlpha1(try_lock_request("late", "late-owner"), timeout=5)
            raise AssertionError(f"a call made after SIGTERM was served: {response}")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    finally:
        late.close()

    # Every call in flight got its answer: exactly one owner acquired the lock.
    results = []
    for future in futures:
        try:
            results.append(future.result(timeout=30))
        except grpc.RpcError as error:
            raise AssertionError(f"a call in flight at SIGTERM failed: {error.code()} {error.details()}") from None
    elapsed = time.monotonic() - started
    assert elapsed >= HANG_MS / 1000 - 0.1, f"the calls returned after {elapsed:.2f} s, before the plugin completed them"
    assert sum(r.success for r in results) == 1, [r.success for r in results]

    exit_code = sidecar.process.wait(timeout=30)
    assert exit_code == 0, f"molt exited with {exit_code}\n{sidecar.stderr()[-3000:]}"
