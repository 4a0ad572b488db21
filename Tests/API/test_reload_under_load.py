"""Reload under load, the short correctness version of the benchmark scenarios (Benchmarks/scenarios): the
real load generator (`molt-bench loadgen`, open loop, state saves/gets and lock try/unlock over molt's gRPC
app API) runs against a real `molt serve` while the configuration changes under it:

  * in-place applies of the lock store (memorylock's maxLocks),
  * reloads of the state store (redis-state's poolSize needs a new instance),
  * a Redis DR switch A -> B -> A (redisHost),
  * memorylock version swaps 1.0.0 <-> 2.0.0 while the generator holds locks (handed over as state),
  * refused changes (a plugin version that does not exist; a config the plugin refuses).

Asserted: every change took the path it should (ApplyResult action), the refused ones left the component
serving as it was, and the generator saw zero failed calls, zero lost acknowledged writes (each read back
from Redis A or B) and zero lost held locks. Correctness only: no timing is asserted here.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_for

RATE = 150          # calls/s in total: modest, the test runs debug builds of molt and the generator
HELD_LOCKS = 50
LOADGEN_EXIT_TIMEOUT_S = 60


@pytest.fixture(scope="session")
def loadgen_bin() -> Path:
    value = os.environ.get("MOLT_BENCH_BIN")
    if not value:
        pytest.fail("MOLT_BENCH_BIN is not set (make test-api sets it to the built molt-bench)", pytrace=False)
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"MOLT_BENCH_BIN={path} does not exist: run make build", pytrace=False)
    return path


class LoadGen:
    """`molt-bench loadgen` until SIGINT; `finish()` returns its summary.json."""

    def __init__(self, binary: Path, out: Path, target_port: int, verify: list[str]):
        self.out = out
        args = [str(binary), "loadgen", "--target", f"127.0.0.1:{target_port}", "--clients", "2", "--rate", str(RATE),
                "--hold-locks", str(HELD_LOCKS), "--out", str(out)]
        for address in verify:
            args += ["--verify-redis", address]
        self.stderr_path = out.parent / "loadgen.stderr"
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True)
        first = self.process.stdout.readline()
        assert first.startswith("started "), f"loadgen did not start: {first!r}\n{self.stderr()}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def finish(self) -> dict:
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=LOADGEN_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"loadgen did not stop within {LOADGEN_EXIT_TIMEOUT_S} s\n{self.stderr()[-4000:]}")
        assert code == 0, f"loadgen exited {code}\n{self.stderr()[-4000:]}"
        return json.loads((self.out / "summary.json").read_text())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_reloads_swaps_and_dr_switch_under_load_fail_no_call_and_lose_nothing(molt, redis_server, components, loadgen_bin,
                                                                               tmp_path):
    redis_a, redis_b = redis_server(), redis_server()
    state = components.state("statestore", redis_a, poolSize="2")
    lock = components.lock("lockstore", version="1.0.0", maxLocks="0")
    sidecar = molt([state, lock], extra_args=["--state-directory", str(tmp_path / "state")])
    loadgen = LoadGen(loadgen_bin, tmp_path / "loadgen", sidecar.grpc_port, [redis_a.address, redis_b.address])
    try:
        def pause():
            time.sleep(0.3)  # calls keep flowing between changes, so each change meets calls in flight

        pause()
        # In place: the lock store keeps its instance (and generation).
        generation = sidecar.generation("lock", "lockstore")
        for max_locks in ("100000", "0", "50000"):
            result = sidecar.control_apply("lock", "lockstore", {"maxLocks": max_locks}, plugin="memorylock", version="1.0.0")
            assert result.action == "applied-in-place", result
            pause()
        assert sidecar.generation("lock", "lockstore") == generation

        # Reloads: a new state store instance each time (poolSize does not apply in place).
        for pool_size in ("3", "4", "2"):
            result = sidecar.control_apply("state", "statestore", {"redisHost": redis_a.address, "poolSize": pool_size},
                                           plugin="redis-state")
            assert result.action == "reloaded", result
            pause()

        # Redis DR switch: A -> B -> A.
        for target in (redis_b, redis_a):
            result = sidecar.control_apply("state", "statestore", {"redisHost": target.address, "poolSize": "2"},
                                           plugin="redis-state")
            assert result.action == "reloaded", result
            pause()

        # Version swaps with the generator's locks held: handed over from one version to the other.
        for version in ("2.0.0", "1.0.0", "2.0.0"):
            result = sidecar.control_apply("lock", "lockstore", {"maxLocks": "50000"}, plugin="memorylock", version=version)
            assert result.action == "version-swapped", result
            component = sidecar.component("lock", "lockstore")
            assert component.plugin == f"memorylock@{version}", component
            pause()

        # Refused changes leave the running instances serving.
        before = sidecar.generation("state", "statestore")
        refused = sidecar.control_apply("lock", "lockstore", {}, plugin="memorylock", version="9.9.9")
        assert refused.action == "failed" and "9.9.9" in refused.error, refused
        refused = sidecar.control_apply("state", "statestore", {"redisHost": redis_a.address, "poolSize": "many"},
                                        plugin="redis-state")
        assert refused.action == "failed" and "poolSize" in refused.error, refused
        assert sidecar.generation("state", "statestore") == before
        pause()
    except BaseException:
        loadgen.kill()
        raise
    summary = loadgen.finish()

    assert summary["calls"] >= RATE, summary  # the load really ran (about RATE calls per second of the test)
    assert summary["failed"] == 0, f"failed calls: {summary['failed_by_error']}"
    verify = summary["verify"]
    assert verify["checked"] == summary["writes_acked"] > 0, verify
    assert verify["missing"] == 0 and verify["mismatched"] == 0, verify
    held = summary["held_locks"]
    assert held == {"held": HELD_LOCKS, "still_held": HELD_LOCKS, "lost": 0, "examples": []}, held
    assert summary["by_op"]["unlock"]["calls"] > 0, "no lock was acquired and released under load"
    # The writes of the B period are on B, the others on A: both servers received acknowledged writes.
    assert redis_b.keys() and redis_a.keys()


def test_close_then_init_under_load_fails_calls_and_lost_writes_are_detected(molt, redis_server, components, loadgen_bin,
                                                                            tmp_path):
    """The generator's own checks can fail: Dapr's hot-reload order (close the old component, then start the new
    one), reproduced on molt as remove + add, fails the calls made in between; and writes removed from Redis
    behind molt's back are reported missing."""
    redis_a = redis_server()
    state = components.state("statestore", redis_a)
    sidecar = molt([state, components.lock("lockstore")])
    loadgen = LoadGen(loadgen_bin, tmp_path / "loadgen", sidecar.grpc_port, [redis_a.address])
    try:
        time.sleep(0.5)
        for _ in range(3):
            assert sidecar.remove_component("state", "statestore").action == "removed"
            time.sleep(0.2)  # the time a close-then-init takes to start the new instance, at least
            assert sidecar.control_apply("state", "statestore", state["metadata"], plugin="redis-state").action == "added"
            time.sleep(0.3)
        wait_for(lambda: redis_a.keys(), "acknowledged writes in Redis")
        redis_a.cli("FLUSHALL")
    except BaseException:
        loadgen.kill()
        raise
    summary = loadgen.finish()

    refused = {error: count for error, count in summary["failed_by_error"].items() if "statestore" in error}
    assert summary["failed"] > 0 and refused, summary["failed_by_error"]
    assert summary["by_op"]["trylock"]["failed"] == 0, "the lock store was not touched"
    verify = summary["verify"]
    # Writes acknowledged before the FLUSHALL are missing (those between it and the stop are found).
    assert verify["checked"] > 0 and verify["missing"] > 0 and verify["missing"] + verify["found"] == verify["checked"], verify
