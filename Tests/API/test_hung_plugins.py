"""Plugins that hang: calls the plugin never completes, init, readiness, export that never end. molt bounds
each with a timeout, keeps serving, and never waits for a plugin longer than it was told to.

Every component runs on the `probe` fixture plugin (Tests/Fixtures/CPlugins/probe.c): a try_lock of a
resource "never:*" is held by the plugin until its `releaseWhen` file exists; `initWaitFor`,
`exportWaitFor` block init and export until their file exists; `readiness=never` is NOT_READY forever.
A generation whose calls never completed is *abandoned* after the drain timeout (listed by
ListComponents, `molt status` and the molt_abandoned_generations gauge) and destroyed once the plugin
completes them. The timeouts are short (drain 1 s, init 1 s, call 2 s) so that the file runs quickly.
"""

import http.client
import json
import signal
import socket
import subprocess
import threading
import time

import grpc
import pytest
from dapr.proto.runtime.v1 import lock_pb2

from conftest import RPC_TIMEOUT_S, unix_ms, wait_for

CLI_TIMEOUT_S = 60
APPLY_RPC_TIMEOUT_S = 60  # the tests' own bound on an apply, far above every molt timeout they set
SLACK_S = 5.0  # scheduling slack on a busy machine: "within the timeout" means within timeout + SLACK_S
HELD_CALL_DEADLINE_S = 60  # a held call's client deadline: it outlives every test step

# molt serve timeouts of these tests, in milliseconds (overridden per test with serve_args(...)).
TIMEOUTS_MS = {
    "call-timeout-ms": 2000,
    "drain-timeout-ms": 1000,
    "init-timeout-ms": 1000,
    "readiness-timeout-ms": 1000,
    "apply-config-timeout-ms": 1000,
    "state-transfer-timeout-ms": 1000,
    "destroy-timeout-ms": 1000,
}


def serve_args(**overrides) -> list[str]:
    """`molt serve` timeout options: TIMEOUTS_MS with overrides given as drain_timeout_ms=3000."""
    settings = dict(TIMEOUTS_MS)
    settings.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return [arg for key, value in settings.items() for arg in (f"--{key}", str(value))]


class Gate:
    """A file the probe waits for (releaseWhen, initWaitFor, exportWaitFor); `open()` creates it."""

    def __init__(self, path):
        self.path = path

    def open(self) -> None:
        self.path.touch()

    def __str__(self) -> str:
        return str(self.path)


@pytest.fixture
def gates(tmp_path, molt):
    """Factory: `gate = gates("release")`. Every gate is opened at teardown, before the molts are stopped
    (this fixture depends on `molt`), so that no plugin thread stays blocked."""
    made = []

    def make(name: str) -> Gate:
        gate = Gate(tmp_path / f"gate-{name}")
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.open()


def start_probe(molt, components, fixtures_dir, release: Gate, **overrides):
    """molt serving lock `hung` on probe 1.0.0 (not the newest, 2.0.0), whose held calls complete when `release`
    opens."""
    return molt([components.lock("hung", plugin="probe", version="1.0.0", releaseWhen=str(release))],
                plugins_dir=fixtures_dir, extra_args=serve_args(**overrides))


def lock_request(resource, owner="owner", store="hung"):
    return lock_pb2.TryLockRequest(store_name=store, resource_id=resource, lock_owner=owner, expiry_in_seconds=30)


def hold_call(sidecar, resource="never:1", store="hung", deadline=HELD_CALL_DEADLINE_S):
    """A try_lock the probe holds until its release gate opens, as a future (`deadline` None: no deadline).
    Keep a reference: grpcio cancels the call of a future that is garbage collected."""
    return sidecar.dapr_stub().TryLockAlpha1.future(lock_request(resource, store=store), timeout=deadline)


def wait_in_flight(sidecar, count, name="hung"):
    """Waits until the active generation of lock/`name` has `count` calls in flight (the held calls reached
    the plugin)."""
    wait_for(lambda: sidecar.component("lock", name).in_flight == count, f"{count} calls in flight on lock/{name}")


def rpc_error(future, timeout=20.0) -> grpc.RpcError:
    """The error a call future ends with (AssertionError when it succeeds or is still running after `timeout`)."""
    try:
        response = future.result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise AssertionError(f"the call was still running after {timeout} s") from None
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"the call succeeded: {response}")


def list_response(sidecar):
    pb = sidecar.protos.control_pb2
    return sidecar.control_stub().ListComponents(pb.ListComponentsRequest(), metadata=sidecar.control_metadata(),
                                                 timeout=RPC_TIMEOUT_S)


def abandoned(sidecar) -> list:
    """ListComponentsResponse.abandoned: the abandoned generations."""
    return list(list_response(sidecar).abandoned)


def applies_in_progress(sidecar) -> list:
    return list(list_response(sidecar).applies_in_progress)


def timed_apply(sidecar, name="hung", metadata=None, plugin="", version=""):
    """Control.Apply; returns (ApplyResult, seconds it took)."""
    started = time.monotonic()
    result = sidecar.control_apply("lock", name, metadata, plugin=plugin, version=version, timeout=APPLY_RPC_TIMEOUT_S)
    return result, time.monotonic() - started


def run_cli(molt_bin, sidecar, *args):
    """`molt ARGS --control-address ...`: (CompletedProcess, seconds it took)."""
    command, rest = args[0], args[1:]
    started = time.monotonic()
    done = subprocess.run([str(molt_bin), command, "--control-address", f"127.0.0.1:{sidecar.control_port}", *rest],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    return done, time.monotonic() - started


def refuses_connections(port) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def abandoned_lines(status_text, name) -> list[str]:
    """The lines of `molt status` that report an abandoned generation of `name` (not the warnings of a last apply)."""
    return [line for line in status_text.splitlines() if line.strip().startswith("abandoned:") and f"/{name} " in line]


def shows_in_progress(status_text, name) -> bool:
    """`molt status` lists an apply of `name` as in progress: on one line, or under an "in progress" heading."""
    text = status_text.lower()
    heading = text.find("in progress")
    return heading >= 0 and (name in text[heading:] or any("in progress" in line and name in line
                                                              for line in text.splitlines()))


def assert_serves(sidecar, name="hung", resource="check"):
    """The component answers a try_lock (a fresh resource: acquired)."""
    assert sidecar.try_lock(name, f"{resource}-{time.monotonic_ns()}", "checker"), f"lock/{name} did not grant a free lock"


# -- app calls that the plugin never completes


def test_grpc_call_without_deadline_fails_with_deadline_exceeded_after_the_call_timeout(molt, components, fixtures_dir,
                                                                                        gates):
    sidecar = start_probe(molt, components, fixtures_dir, gates("release"))
    started = time.monotonic()
    error = rpc_error(hold_call(sidecar, deadline=None))  # no client deadline: molt's --call-timeout-ms applies
    elapsed = time.monotonic() - started
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (error.code(), error.details())
    assert 1.5 <= elapsed <= 2 + SLACK_S, f"failed after {elapsed:.2f} s; --call-timeout-ms is 2000"
    assert_serves(sidecar)


def test_http_call_without_deadline_gets_504_with_a_dapr_error_after_the_call_timeout(molt, components, fixtures_dir,
                                                                                       gates):
    sidecar = start_probe(molt, components, fixtures_dir, gates("release"))
    started = time.monotonic()
    response = sidecar.http("POST", "/v1.0-alpha1/lock/hung",
                            {"resourceId": "never:http", "lockOwner": "o", "expiryInSeconds": 30})
    elapsed = time.monotonic() - started
    assert response.status == 504, str(response)
    body = response.json()
    assert isinstance(body.get("errorCode"), str) and body["errorCode"], str(response)
    assert isinstance(body.get("message"), str) and body["message"], str(response)
    assert 1.5 <= elapsed <= 2 + SLACK_S, f"answered after {elapsed:.2f} s; --call-timeout-ms is 2000"
    assert_serves(sidecar)


def test_a_call_past_its_deadline_no_longer_blocks_a_drain(molt, components, fixtures_dir, gates):
    release = gates("release")
    sidecar = start_probe(molt, components, fixtures_dir, release, drain_timeout_ms=30000)
    call = hold_call(sidecar, deadline=3)
    wait_in_flight(sidecar, 1)
    error = rpc_error(call)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (error.code(), error.details())

    result, elapsed = timed_apply(sidecar, metadata={"releaseWhen": str(release), "v": "2"})
    assert result.action == "reloaded", result
    assert elapsed < SLACK_S, f"the reload took {elapsed:.2f} s: the expired call held the 30 s drain"
    assert_serves(sidecar)


# -- generations abandoned after the drain timeout


def test_reload_with_a_never_completing_call_succeeds_within_the_drain_timeout(molt, components, fixtures_dir, gates):
    release = gates("release")
    sidecar = start_probe(molt, components, fixtures_dir, release)
    first = sidecar.generation("lock", "hung")
    held = hold_call(sidecar)
    wait_in_flight(sidecar, 1)

    result, elapsed = timed_apply(sidecar, metadata={"releaseWhen": str(release), "v": "2"})
    assert result.action == "reloaded", result
    assert elapsed <= 1 + SLACK_S, f"the reload took {elapsed:.2f} s; the drain timeout is 1 s"
    assert not held.done() or held.code() != grpc.StatusCode.OK, "the plugin completed the held call"
    assert any("abandon" in warning.lower() for warning in result.warnings), \
        f"no warning about the abandoned call: {list(result.warnings)}"
    assert sidecar.generation("lock", "hung") > first
    assert_serves(sidecar)

    # The next reload of that component works too (the abandoned generation is in nobody's way).
    again, elapsed = timed_apply(sidecar, metadata={"releaseWhen": str(release), "v": "3"})
    assert again.action == "reloaded", again
    assert elapsed <= 1 + SLACK_S, f"the second reload took {elapsed:.2f} s"
    assert sidecar.metadata_of("lock", "hung") == {"releaseWhen": str(release), "v": "3"}
    assert_serves(sidecar)


def test_abandoned_generation_is_reported_until_the_plugin_completes_its_calls(molt, molt_bin, components,
                                                                              fixtures_dir, gates):
    release = gates("release")
    sidecar = start_probe(molt, components, fixtures_dir, release)
    first = sidecar.generation("lock", "hung")
    assert abandoned(sidecar) == [] and sidecar.metrics().value("molt_abandoned_generations") == 0
    call = hold_call(sidecar)
    wait_in_flight(sidecar, 1)

    before = unix_ms()
    result, _ = timed_apply(sidecar, metadata={"releaseWhen": str(release), "v": "2"})
    assert result.action == "reloaded", result

    listed = abandoned(sidecar)
    assert [(a.kind, a.name, a.generation) for a in listed] == [("lock", "hung", first)], listed
    entry = listed[0]
    assert entry.plugin == "probe@1.0.0", entry
    assert entry.calls_outstanding == 1, entry
    assert before - 1000 <= entry.since_unix_ms <= unix_ms(), (before, entry)

    status, _ = run_cli(molt_bin, sidecar, "status")
    assert status.returncode == 0, status
    assert len(abandoned_lines(status.stdout, "hung")) == 1, status.stdout
    assert sidecar.metrics().value("molt_abandoned_generations") == 1

    # The plugin completes the held call at last: the generation is destroyed and no longer reported.
    release.open()
    wait_for(call.done, "the held call to be answered", timeout=20)
    wait_for(lambda: abandoned(sidecar) == [], "the abandoned generation to be destroyed")
    wait_for(lambda: sidecar.metrics().value("molt_abandoned_generations") == 0, "molt_abandoned_generations to be 0")
    status, _ = run_cli(molt_bin, sidecar, "status")
    assert status.returncode == 0 and abandoned_lines(status.stdout, "hung") == [], status.stdout
    assert_serves(sidecar)


def test_version_swaps_both_ways_with_never_completing_calls(molt, components, fixtures_dir, gates):
    release = gates("release")
    sidecar = start_probe(molt, components, fixtures_dir, release)
    metadata = {"releaseWhen": str(release)}
    first = sidecar.generation("lock", "hung")
    held = [hold_call(sidecar, "never:on-1")]
    wait_in_flight(sidecar, 1)

    up, elapsed = timed_apply(sidecar, metadata=metadata, plugin="probe", version="2.0.0")
    assert up.action == "version-swapped", up
    assert elapsed <= 1 + SLACK_S, f"the swap to 2.0.0 took {elapsed:.2f} s; the drain timeout is 1 s"
    assert sidecar.component("lock", "hung").plugin == "probe@2.0.0"
    second = sidecar.generation("lock", "hung")
    held.append(hold_call(sidecar, "never:on-2"))
    wait_in_flight(sidecar, 1)

    # Back to 1.0.0, whose binary the abandoned first generation still uses.
    down, elapsed = timed_apply(sidecar, metadata=metadata, plugin="probe", version="1.0.0")
    assert down.action == "version-swapped", down
    assert elapsed <= 1 + SLACK_S, f"the swap back to 1.0.0 took {elapsed:.2f} s"
    assert sidecar.component("lock", "hung").plugin == "probe@1.0.0"
    assert_serves(sidecar)
    listed = sorted((a.generation, a.plugin, a.calls_outstanding) for a in abandoned(sidecar))
    assert listed == [(first, "probe@1.0.0", 1), (second, "probe@2.0.0", 1)], listed

    reloaded, _ = timed_apply(sidecar, metadata={**metadata, "v": "2"})
    assert reloaded.action == "reloaded", reloaded
    release.open()
    wait_for(lambda: abandoned(sidecar) == [], "both abandoned generations to be destroyed")
    wait_for(lambda: all(call.done() for call in held), "the held calls to be answered", timeout=20)
    assert_serves(sidecar)


def test_remove_command_removes_a_component_and_fails_for_an_unknown_one(molt, molt_bin, components, fixtures_dir):
    sidecar = molt([components.lock("keep", plugin="probe"), components.lock("gone", plugin="probe")],
                   plugins_dir=fixtures_dir, extra_args=serve_args())
    removed, _ = run_cli(molt_bin, sidecar, "remove", "--kind", "lock", "--name", "gone")
    assert removed.returncode == 0, removed
    assert any("removed" in line and "gone" in line for line in removed.stdout.splitlines()), removed.stdout
    assert sorted(sidecar.list_components()) == [("lock", "keep")]

    unknown, _ = run_cli(molt_bin, sidecar, "remove", "--kind", "lock", "--name", "gone")
    assert unknown.returncode == 1, unknown
    assert sorted(sidecar.list_components()) == [("lock", "keep")]
    assert_serves(sidecar, "keep")


def test_removal_with_a_never_completing_call_succeeds_within_the_drain_timeout(molt, molt_bin, components,
                                                                               fixtures_dir, gates):
    release = gates("release")
    sidecar = start_probe(molt, components, fixtures_dir, release)
    generation = sidecar.generation("lock", "hung")
    held = hold_call(sidecar)
    wait_in_flight(sidecar, 1)

    removed, elapsed = run_cli(molt_bin, sidecar, "remove", "--kind", "lock", "--name", "hung")
    assert removed.returncode == 0, removed
    assert "removed" in removed.stdout, removed.stdout
    assert elapsed <= 1 + SLACK_S, f"the removal took {elapsed:.2f} s; the drain timeout is 1 s"
    assert ("lock", "hung") not in sidecar.list_components()
    assert [(a.kind, a.name, a.generation) for a in abandoned(sidecar)] == [("lock", "hung", generation)]

    # The component can come back at once, while its old generation is still abandoned.
    added, _ = timed_apply(sidecar, metadata={"releaseWhen": str(release)}, plugin="probe")
    assert added.action == "added", added
    assert_serves(sidecar)
    release.open()
    wait_for(lambda: abandoned(sidecar) == [], "the abandoned generation to be destroyed")
    wait_for(held.done, "the held call to be answered", timeout=20)


# -- SIGTERM and SIGHUP


def test_sigterm_with_a_never_completing_call_closes_every_listener_and_exits_0(molt, components, fixtures_dir, gates):
    drain_s = 4
    sidecar = start_probe(molt, components, fixtures_dir, gates("release"), drain_timeout_ms=drain_s * 1000,
                          call_timeout_ms=60000)
    held = hold_call(sidecar, "never:grpc")
    http_done = threading.Event()

    def held_http_call():  # an HTTP call the plugin never completes, in flight at SIGTERM too
        try:
            connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=HELD_CALL_DEADLINE_S)
            connection.request("POST", "/v1.0-alpha1/lock/hung", json.dumps(
                {"resourceId": "never:http", "lockOwner": "o", "expiryInSeconds": 30}),
                {"Content-Type": "application/json"})
            connection.getresponse().read()
        except OSError:
            pass
        finally:
            http_done.set()

    threading.Thread(target=held_http_call, daemon=True).start()
    wait_in_flight(sidecar, 2)
    assert not refuses_connections(sidecar.grpc_port) and not refuses_connections(sidecar.http_port)

    sidecar.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    wait_for(lambda: refuses_connections(sidecar.grpc_port) and refuses_connections(sidecar.http_port),
             "the app gRPC and HTTP ports to refuse connections", timeout=2.0)
    assert sidecar.alive(), "molt exited at once: the drain of the call in flight was not tested"

    try:
        code = sidecar.process.wait(timeout=drain_s + SLACK_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"molt still runs {drain_s + SLACK_S} s after SIGTERM; the drain timeout is {drain_s} s")
    elapsed = time.monotonic() - signalled
    assert code == 0, f"molt exited with {code}\n{sidecar.stderr()[-3000:]}"
    assert elapsed >= drain_s - 1, f"molt exited {elapsed:.2f} s after SIGTERM, without draining its calls in flight"
    assert "abandoned" in sidecar.stderr(), sidecar.stderr()[-3000:]
    # Neither client is left hanging on a connection to a process that is gone.
    wait_for(held.done, "the held gRPC call to end", timeout=10)
    assert http_done.wait(10), "the held HTTP call did not end"


def test_sighup_applies_the_changes_of_the_component_files(molt, components, fixtures_dir):
    sidecar = molt([components.lock("change", plugin="probe", v="1"), components.lock("keep", plugin="probe"),
                    components.lock("drop", plugin="probe")], plugins_dir=fixtures_dir, extra_args=serve_args())
    keep_before = sidecar.component("lock", "keep").last_result.finished_unix_ms
    change_generation = sidecar.generation("lock", "change")
    log_before = len(sidecar.stderr())

    sidecar.components_path.write_text(json.dumps({"components": [
        components.lock("change", plugin="probe", v="2"), components.lock("keep", plugin="probe"),
        components.lock("new", plugin="probe")]}))
    sidecar.process.send_signal(signal.SIGHUP)

    wait_for(lambda: sorted(sidecar.list_components()) == [("lock", "change"), ("lock", "keep"), ("lock", "new")],
             "lock/new to be added and lock/drop removed")
    wait_for(lambda: sidecar.metadata_of("lock", "change") == {"v": "2"}, "lock/change to run with v=2")
    assert sidecar.generation("lock", "change") > change_generation, "a non-live key changed: a new generation"
    assert sidecar.component("lock", "keep").last_result.finished_unix_ms == keep_before, "lock/keep was applied again"
    assert sidecar.alive(), f"molt exited on SIGHUP\n{sidecar.stderr()[-3000:]}"
    for name in ("change", "keep", "new"):
        assert_serves(sidecar, name)
    assert len(sidecar.stderr()) > log_before, "nothing was logged about the SIGHUP"

    # A second SIGHUP with nothing changed changes nothing, and molt still runs.
    generations = {key: status.generation for key, status in sidecar.list_components().items()}
    sidecar.process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert sidecar.alive()
    assert {key: status.generation for key, status in sidecar.list_components().items()} == generations


def test_sighup_applies_a_changed_call_timeout_of_the_bootstrap_config(molt, components, fixtures_dir, gates, tmp_path):
    config = tmp_path / "molt.yaml"
    config.write_text("version: 1\ncallTimeoutMs: 60000\n")
    release = gates("release")
    args = serve_args()
    args = args[:args.index("--call-timeout-ms")] + args[args.index("--call-timeout-ms") + 2:]  # from the file
    sidecar = molt([components.lock("hung", plugin="probe", releaseWhen=str(release))], plugins_dir=fixtures_dir,
                   extra_args=["--config", str(config), *args])

    config.write_text("version: 1\ncallTimeoutMs: 1000\n")
    # A component change in the same SIGHUP tells when molt has handled it.
    sidecar.components_path.write_text(json.dumps({"components": [
        components.lock("hung", plugin="probe", releaseWhen=str(release), v="2")]}))
    sidecar.process.send_signal(signal.SIGHUP)
    wait_for(lambda: sidecar.metadata_of("lock", "hung").get("v") == "2", "the SIGHUP to be handled")

    started = time.monotonic()
    error = rpc_error(hold_call(sidecar, deadline=None))
    elapsed = time.monotonic() - started
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (error.code(), error.details())
    assert elapsed <= 1 + SLACK_S, f"failed after {elapsed:.2f} s: the call timeout is still 60 s, not the new 1 s"
    assert sidecar.alive()


# -- new generations that hang before the switch


def test_init_that_blocks_past_the_init_timeout_fails_and_the_old_generation_keeps_serving(molt, molt_bin, components,
                                                                                         fixtures_dir, gates):
    init_gate = gates("init")
    sidecar = molt([components.lock("slow", plugin="probe")], plugins_dir=fixtures_dir, extra_args=serve_args())
    generation = sidecar.generation("lock", "slow")
    assert sidecar.try_lock("slow", "kept", "first-owner")

    applied, elapsed = run_cli(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "slow",
                               "--metadata", f"initWaitFor={init_gate}", "--json")
    assert applied.returncode == 1, applied
    result = json.loads(applied.stdout.splitlines()[0])
    assert result["action"] == "failed" and result["failure"] == "timed-out", result
    assert "init" in result["error"], result
    assert elapsed <= 1 + SLACK_S, f"the apply took {elapsed:.2f} s; the init timeout is 1 s"

    assert sidecar.generation("lock", "slow") == generation
    assert sidecar.metadata_of("lock", "slow") == {}
    assert not sidecar.try_lock("slow", "kept", "second-owner"), "the lock held on the old generation was lost"
    assert_serves(sidecar, "slow")

    # The plugin's init returns at last: that instance never serves, and the next reload works.
    init_gate.open()
    reloaded, _ = timed_apply(sidecar, "slow", {"v": "2"})
    assert reloaded.action == "reloaded", reloaded
    assert sidecar.metadata_of("lock", "slow") == {"v": "2"}


def test_readiness_that_never_comes_fails_after_the_readiness_timeout(molt, components, fixtures_dir):
    sidecar = molt([components.lock("unready", plugin="probe")], plugins_dir=fixtures_dir, extra_args=serve_args())
    generation = sidecar.generation("lock", "unready")

    result, elapsed = timed_apply(sidecar, "unready", {"readiness": "never"})
    assert result.action == "failed", result
    assert "not ready" in result.error, result
    assert 0.9 <= elapsed <= 1 + SLACK_S, f"failed after {elapsed:.2f} s; the readiness timeout is 1 s"
    assert sidecar.generation("lock", "unready") == generation
    assert_serves(sidecar, "unready")


def test_export_that_hangs_fails_the_reload_and_the_old_generation_keeps_its_locks(molt, components, fixtures_dir,
                                                                                  gates):
    export_gate = gates("export")
    metadata = {"exportWaitFor": str(export_gate)}
    sidecar = molt([components.lock("stateful", plugin="probe-stateful", **metadata)], plugins_dir=fixtures_dir,
                   extra_args=serve_args())
    generation = sidecar.generation("lock", "stateful")
    assert sidecar.try_lock("stateful", "kept", "first-owner")

    pb = sidecar.protos.control_pb2
    apply = sidecar.control_stub().Apply.future(
        pb.ApplyRequest(kind="lock", name="stateful", metadata={**metadata, "v": "2"}),
        metadata=sidecar.control_metadata(), timeout=APPLY_RPC_TIMEOUT_S)
    started = time.monotonic()
    wait_for(lambda: [a.step for a in applies_in_progress(sidecar) if a.name == "stateful"] == ["handover"],
             "the apply to reach the handover")
    # A call made while the export hangs waits, and is then served by the old generation.
    during = sidecar.dapr_stub().TryLockAlpha1.future(lock_request("during", store="stateful"), timeout=30)

    result = apply.result(timeout=APPLY_RPC_TIMEOUT_S).result
    elapsed = time.monotonic() - started
    assert result.action == "failed", result
    assert "export" in result.error, result
    assert elapsed <= 1 + SLACK_S, f"the apply took {elapsed:.2f} s; the state transfer timeout is 1 s"
    assert during.result(timeout=20).success, "the call made during the handover was not served"

    assert sidecar.generation("lock", "stateful") == generation
    assert sidecar.metadata_of("lock", "stateful") == metadata
    assert not sidecar.try_lock("stateful", "kept", "second-owner"), "the lock held on the old generation was lost"
    assert_serves(sidecar, "stateful")
    assert applies_in_progress(sidecar) == []


def test_cli_apply_timeout_while_molt_still_applies_exits_3_and_status_shows_it_in_progress(molt, molt_bin, components,
                                                                                          fixtures_dir, gates):
    init_gate = gates("init")
    sidecar = molt([components.lock("slow", plugin="probe")], plugins_dir=fixtures_dir,
                   extra_args=serve_args(init_timeout_ms=60000))
    generation = sidecar.generation("lock", "slow")

    applied, elapsed = run_cli(molt_bin, sidecar, "apply", "--timeout", "1", "--kind", "lock", "--name", "slow",
                               "--metadata", f"initWaitFor={init_gate}")
    assert applied.returncode == 3, applied
    assert "still running" in applied.stderr, applied.stderr
    assert elapsed <= 1 + SLACK_S, f"the CLI returned after {elapsed:.2f} s; --timeout was 1 s"

    in_progress = applies_in_progress(sidecar)  # init runs in the "start" step (init, then readiness polls)
    assert [(a.kind, a.name, a.step) for a in in_progress] == [("lock", "slow", "start")], in_progress
    assert in_progress[0].elapsed_ms >= 500, in_progress
    status, _ = run_cli(molt_bin, sidecar, "status")
    assert status.returncode == 0, status
    assert shows_in_progress(status.stdout, "slow"), status.stdout
    assert_serves(sidecar, "slow")  # the old generation serves meanwhile

    # The apply was not abandoned with the CLI: once init returns, it completes.
    init_gate.open()
    wait_for(lambda: sidecar.generation("lock", "slow") > generation, "the apply to complete")
    assert sidecar.metadata_of("lock", "slow") == {"initWaitFor": str(init_gate)}
    wait_for(lambda: applies_in_progress(sidecar) == [], "no apply in progress")
    assert_serves(sidecar, "slow")
