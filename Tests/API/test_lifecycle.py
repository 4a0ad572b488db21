"""Layotto's Lifecycle API (grpcio client generated from lifecycle.proto) on molt's control port:
in-place applies, reloads, refused configurations, unknown components, the control token, and the
disaster-recovery switch of a Redis state store while an app keeps calling through the Dapr SDK.

In place or reload is told by the generation in molt's Control.ListComponents: an in-place apply
keeps it, a reload adds one.
"""

import json
import subprocess
import textwrap
import time

import grpc
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import lock_pb2, state_pb2

CONTROL_TOKEN = "control-s3cret"
RPC_TIMEOUT_S = 15


# -- app calls over the Dapr gRPC API (the dapr package's own stubs)


def try_lock(molt, store, resource, owner, expiry=10):
    request = lock_pb2.TryLockRequest(store_name=store, resource_id=resource, lock_owner=owner,
                                      expiry_in_seconds=expiry)
    return molt.dapr_stub().TryLockAlpha1(request, metadata=molt.app_metadata(), timeout=RPC_TIMEOUT_S).success


def save(molt, store, key, value):
    request = state_pb2.SaveStateRequest(store_name=store, states=[common_pb2.StateItem(key=key, value=value.encode())])
    molt.dapr_stub().SaveState(request, metadata=molt.app_metadata(), timeout=RPC_TIMEOUT_S)


def get(molt, store, key):
    request = state_pb2.GetStateRequest(store_name=store, key=key)
    return molt.dapr_stub().GetState(request, metadata=molt.app_metadata(), timeout=RPC_TIMEOUT_S).data.decode()


def apply_error(molt, kind, name, metadata, **kwargs) -> grpc.RpcError:
    """ApplyConfiguration that must fail; returns the gRPC error."""
    with pytest.raises(grpc.RpcError) as caught:
        molt.apply_configuration(kind, name, metadata, **kwargs)
    return caught.value


# -- one molt (with a control token) for the module; each test uses its own components


@pytest.fixture(scope="module")
def redis_a(module_redis_server):
    return module_redis_server()


@pytest.fixture(scope="module")
def redis_b(module_redis_server):
    return module_redis_server()


@pytest.fixture(scope="module")
def sidecar(module_molt, components, redis_a):
    return module_molt([
        components.lock("inplace-lock"),
        components.lock("alias-lock"),
        components.lock("reload-lock"),
        components.lock("rejected-lock"),
        components.lock("auth-lock"),
        components.lock("watch-lock"),
        components.state("switch-state", redis_a),
    ], control_token=CONTROL_TOKEN)


def test_in_place_apply_keeps_the_generation(sidecar):
    before = sidecar.generation("lock", "inplace-lock")
    sidecar.apply_configuration("lock", "inplace-lock", {"maxLocks": "1"})
    status = sidecar.component("lock", "inplace-lock")
    assert status.generation == before, "an in-place apply (maxLocks) started a new generation"
    assert status.last_result.action == "applied-in-place", status.last_result
    # The running instance really has the new limit: a second lock is refused with the plugin's message.
    assert try_lock(sidecar, "inplace-lock", "first", "o")
    with pytest.raises(grpc.RpcError) as caught:
        try_lock(sidecar, "inplace-lock", "second", "o")
    assert "memorylock: maxLocks (1) reached" in caught.value.details()


def test_in_place_apply_with_deprecated_alias(sidecar):
    before = sidecar.generation("lock", "alias-lock")
    sidecar.apply_configuration("lock", "alias-lock", {"maxLockCount": "1"})
    assert sidecar.generation("lock", "alias-lock") == before
    assert try_lock(sidecar, "alias-lock", "first", "o")
    with pytest.raises(grpc.RpcError) as caught:
        try_lock(sidecar, "alias-lock", "second", "o")
    assert "maxLocks (1) reached" in caught.value.details()


def test_reload_starts_a_new_generation_and_keeps_held_locks(sidecar):
    before = sidecar.generation("lock", "reload-lock")
    assert try_lock(sidecar, "reload-lock", "held", "alice")
    sidecar.apply_configuration("lock", "reload-lock", {"buckets": "1024"})
    status = sidecar.component("lock", "reload-lock")
    assert status.generation == before + 1, f"a buckets change must reload: {status}"
    assert status.last_result.action == "reloaded", status.last_result
    # memorylock hands its lock table to the new generation: alice still holds the lock.
    assert not try_lock(sidecar, "reload-lock", "held", "bob"), "the held lock was lost in the reload"
    assert try_lock(sidecar, "reload-lock", "other", "bob")


def test_plugin_rejected_config_reports_the_plugins_message(sidecar):
    before = sidecar.generation("lock", "rejected-lock")
    error = apply_error(sidecar, "lock", "rejected-lock", {"maxLocks": "lots"})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    expected = 'memorylock: invalid value "lots" for config key maxLocks: expected an integer >= 0 (0 = unlimited)'
    assert expected in error.details()
    # The old configuration keeps serving.
    assert sidecar.generation("lock", "rejected-lock") == before
    assert try_lock(sidecar, "rejected-lock", "still-works", "o")


def test_unknown_component_is_a_clear_error(sidecar):
    error = apply_error(sidecar, "lock", "no-such-lock", {"maxLocks": "5"})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert "no-such-lock" in error.details() and "not configured" in error.details(), error.details()
    assert ("lock", "no-such-lock") not in sidecar.list_components()


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
def test_control_token_is_required(sidecar, token):
    before = sidecar.generation("lock", "auth-lock")
    error = apply_error(sidecar, "lock", "auth-lock", {"buckets": "16"}, token=token)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (error.code(), error.details())
    with pytest.raises(grpc.RpcError) as caught:
        sidecar.list_components(token=token)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert sidecar.generation("lock", "auth-lock") == before, "an unauthenticated apply changed the component"


def test_redis_host_switch_reloads_onto_the_new_redis(sidecar, redis_a, redis_b):
    save(sidecar, "switch-state", "before-switch", "in A")
    before = sidecar.generation("state", "switch-state")
    sidecar.apply_configuration("state", "switch-state", {"redisHost": redis_b.address})
    status = sidecar.component("state", "switch-state")
    assert status.generation == before + 1, f"a redisHost change must reload: {status}"
    assert get(sidecar, "switch-state", "before-switch") == "", "reads still go to the old Redis"
    save(sidecar, "switch-state", "after-switch", "in B")
    assert get(sidecar, "switch-state", "after-switch") == "in B"
    assert any("after-switch" in key for key in redis_b.keys()), f"B has {redis_b.keys()}"
    assert not any("after-switch" in key for key in redis_a.keys()), f"A has {redis_a.keys()}"


# -- new instances that fail (probe fixture plugin)


@pytest.fixture(scope="module")
def probe_sidecar(module_molt, components, fixtures_dir):
    return module_molt([components.lock("probe-init", plugin="probe"), components.lock("probe-ready", plugin="probe")],
                       plugins_dir=fixtures_dir, extra_args=["--readiness-timeout-ms", "1000"])


def test_init_error_of_the_new_instance_is_reported(probe_sidecar):
    before = probe_sidecar.generation("lock", "probe-init")
    error = apply_error(probe_sidecar, "lock", "probe-init", {"initError": "probe refuses: disk on fire"})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert "probe refuses: disk on fire" in error.details()
    assert probe_sidecar.generation("lock", "probe-init") == before
    assert try_lock(probe_sidecar, "probe-init", "r", "o")


def test_new_instance_that_never_becomes_ready_times_out(probe_sidecar):
    before = probe_sidecar.generation("lock", "probe-ready")
    started = time.monotonic()
    error = apply_error(probe_sidecar, "lock", "probe-ready", {"readyAfterPolls": "100000000"})
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (error.code(), error.details())
    assert time.monotonic() - started < 10, "the readiness timeout (1 s) was not applied"
    assert probe_sidecar.generation("lock", "probe-ready") == before
    assert try_lock(probe_sidecar, "probe-ready", "r", "o")


# -- the user story: disaster-recovery switch under load, no failed calls


_SDK_LOOP = """
    import json, os, time
    from dapr.clients import DaprClient
    progress = open(PROGRESS, "a", buffering=1)
    with DaprClient() as d:
        i = 0
        deadline = time.time() + 60
        while not os.path.exists(STOP) and time.time() < deadline:
            key, value = f"dr-{i}", f"value-{i}"
            started = time.time()
            record = {"i": i, "started": started}
            try:
                d.save_state("statestore", key, value)
                record["read"] = d.get_state("statestore", key).data.decode()
                record["ok"] = True
            except Exception as error:
                record.update(ok=False, error=f"{type(error).__name__}: {grpc_code(error)}: {str(error)[:200]}")
            record["finished"] = time.time()
            progress.write(json.dumps(record) + "\\n")
            i += 1
    emit(iterations=i)
"""


def _progress(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for_iterations(path, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _progress(path)
        if len(records) >= count:
            return records
        time.sleep(0.02)
    pytest.fail(f"the SDK loop did not reach {count} iterations: {_progress(path)[-3:]}")


def test_disaster_recovery_switch_under_load(molt, redis_server, components, tmp_path):
    redis_a, redis_b = redis_server(), redis_server()
    sidecar = molt([components.state("statestore", redis_a)])
    progress, stop = tmp_path / "progress.jsonl", tmp_path / "stop"
    loop = sidecar.spawn_sdk(f"PROGRESS = {str(progress)!r}\nSTOP = {str(stop)!r}\n" + textwrap.dedent(_SDK_LOOP))
    try:
        _wait_for_iterations(progress, 20)
        before = sidecar.generation("state", "statestore")
        apply_started = time.time()
        sidecar.apply_configuration("state", "statestore", {"redisHost": redis_b.address})
        switched_at = time.time()
        done = len(_progress(progress))
        _wait_for_iterations(progress, done + 20)
    finally:
        stop.touch()
        try:
            out, err = loop.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            loop.kill()
            out, err = loop.communicate()
    assert loop.returncode == 0, f"the SDK loop failed:\n{out}\n{err}"

    records = _progress(progress)
    failed = [r for r in records if not r["ok"]]
    assert not failed, f"{len(failed)} of {len(records)} calls failed during the switch, e.g. {failed[:3]}"
    assert sidecar.generation("state", "statestore") == before + 1
    during = [r for r in records if r["started"] < switched_at and r["finished"] > apply_started]
    assert during, "no call overlapped the apply: the test did not exercise a switch under load"
    after = [r for r in records if r["started"] > switched_at]
    assert len(after) >= 20
    stale = [r for r in after if r["read"] != f"value-{r['i']}"]
    assert not stale, f"reads after the switch did not see their own write: {stale[:3]}"
    # Every write after the switch landed in B, none in A.
    keys_a, keys_b = set(redis_a.keys()), set(redis_b.keys())
    for record in after:
        key = f"dr-{record['i']}"
        in_b = [k for k in keys_b if k == key or k.endswith("||" + key)]
        assert in_b, f"{key} (written after the switch) is not in B"
        assert redis_b.cli("HGET", in_b[0], "data") == f"value-{record['i']}"
        assert not [k for k in keys_a if k == key or k.endswith("||" + key)], f"{key} was written to A after the switch"
    # And the writes before the switch went to A.
    first = "dr-0"
    assert [k for k in keys_a if k == first or k.endswith("||" + first)], f"{first} is not in A"


# -- molt's Control API: creating, version swaps, removal


def test_control_apply_add_swap_and_remove(sidecar):
    pb = sidecar.protos.control_pb2
    control = sidecar.control_stub()
    meta = sidecar.control_metadata()

    added = control.Apply(pb.ApplyRequest(kind="lock", name="control-lock", plugin="memorylock", version="2.0.0"),
                          metadata=meta, timeout=RPC_TIMEOUT_S).result
    assert (added.action, added.new_generation, added.error) == ("added", 1, ""), added
    assert sidecar.component("lock", "control-lock").plugin == "memorylock@2.0.0"
    assert try_lock(sidecar, "control-lock", "kept", "alice")

    swapped = control.Apply(pb.ApplyRequest(kind="lock", name="control-lock", version="1.0.0"),
                            metadata=meta, timeout=RPC_TIMEOUT_S).result
    assert (swapped.action, swapped.old_generation, swapped.new_generation) == ("version-swapped", 1, 2), swapped
    assert sidecar.component("lock", "control-lock").plugin == "memorylock@1.0.0"
    assert not try_lock(sidecar, "control-lock", "kept", "bob"), "the held lock was lost in the version swap"

    rejected = control.Apply(pb.ApplyRequest(kind="lock", name="control-lock", metadata={"maxLocks": "lots"}),
                             metadata=meta, timeout=RPC_TIMEOUT_S).result
    assert (rejected.action, rejected.failure) == ("failed", "rejected"), rejected
    assert 'memorylock: invalid value "lots" for config key maxLocks' in rejected.error

    removed = control.RemoveComponent(pb.RemoveComponentRequest(kind="lock", name="control-lock"),
                                      metadata=meta, timeout=RPC_TIMEOUT_S).result
    assert removed.action == "removed", removed
    assert ("lock", "control-lock") not in sidecar.list_components()
    with pytest.raises(grpc.RpcError) as caught:
        control.RemoveComponent(pb.RemoveComponentRequest(kind="lock", name="control-lock"), metadata=meta,
                                timeout=RPC_TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_applies_streams_every_apply(sidecar):
    pb = sidecar.protos.control_pb2
    stream = sidecar.control_stub().WatchApplies(pb.WatchAppliesRequest(include_recent=True),
                                                 metadata=sidecar.control_metadata(), timeout=RPC_TIMEOUT_S)
    try:
        # The history first: the bootstrap added this module's components.
        recent = next(stream)
        assert recent.action == "added" and recent.new_generation == 1, recent

        sidecar.apply_configuration("lock", "watch-lock", {"maxLocks": "42"})
        apply_error(sidecar, "lock", "watch-lock", {"maxLocks": "many"})
        seen = []
        for event in stream:
            if (event.kind, event.name) == ("lock", "watch-lock") and event.action != "added":
                seen.append(event)
            if len(seen) == 2:
                break
        assert seen[0].action == "applied-in-place" and seen[0].old_generation == seen[0].new_generation, seen[0]
        assert seen[1].action == "failed" and seen[1].failure == "rejected" and '"many"' in seen[1].error, seen[1]
        assert seen[1].finished_unix_ms >= seen[0].finished_unix_ms > 0
    finally:
        stream.cancel()
