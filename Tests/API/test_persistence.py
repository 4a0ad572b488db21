"""The running configuration survives kill -9: `molt serve --state-directory` writes every change before it
acknowledges it, and a restart comes up with exactly the last acknowledged configuration (or the one
whose apply was in flight when the process died, which may have been written but not acknowledged)."""

import random
import re
import signal
import threading
import time

import grpc
from dapr.proto.runtime.v1 import lock_pb2

APPLIES = 100


def max_locks(sidecar, store="lockstore", limit=400):
    """The running memorylock's maxLocks: lock fresh resources until it refuses, then read its message."""
    stub = sidecar.dapr_stub()
    for index in range(limit):
        try:
            stub.TryLockAlpha1(lock_pb2.TryLockRequest(store_name=store, resource_id=f"count-{index}", lock_owner="counter",
                                                       expiry_in_seconds=60), timeout=5)
        except grpc.RpcError as error:
            found = re.search(r"maxLocks \((\d+)\) reached", error.details() or "")
            assert found, f"unexpected error: {error.code()} {error.details()}"
            return int(found.group(1))
    raise AssertionError(f"no limit below {limit}")


def test_kill_9_during_applies_restarts_with_the_last_acknowledged_config(molt, components, tmp_path):
    state = tmp_path / "state"
    bootstrap = [components.lock("lockstore", maxLocks="300")]
    random_moments = random.Random(20261123)
    expected = {300}
    for round_number in range(4):
        sidecar = molt(bootstrap, extra_args=["--state-directory", str(state)])
        restored = max_locks(sidecar)
        assert restored in expected, f"round {round_number}: restarted with maxLocks={restored}, expected one of {expected}"
        if round_number == 3:
            break

        acknowledged = {"last": None, "in_flight": None}

        def apply_until_killed():
            for step in range(1, APPLIES + 1):
                value = 1 + round_number * APPLIES + step  # never equal to the counting above
                acknowledged["in_flight"] = value
                try:
                    sidecar.apply_configuration("lock", "lockstore", {"maxLocks": str(value)}, timeout=5)
                except grpc.RpcError:
                    return  # the process died under the call
                acknowledged["last"] = value

        applier = threading.Thread(target=apply_until_killed)
        applier.start()
        time.sleep(random_moments.uniform(0.02, 0.5))
        sidecar.stop(signal.SIGKILL)
        applier.join(30)
        assert not applier.is_alive()
        last, in_flight = acknowledged["last"], acknowledged["in_flight"]
        print(f"round {round_number}: killed after {last} acknowledged, {in_flight} in flight")
        expected = {last if last is not None else restored}
        if in_flight is not None and in_flight != last:
            expected.add(in_flight)
