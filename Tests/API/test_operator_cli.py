"""What an operator sees and does: a version or plugin change without metadata keeps the running
configuration (and an apply says which keys it drops or changes), `molt status` shows each component's
configuration with secrets redacted and `molt status NAME` one component with its history of applies,
`molt --version` no longer collides with `molt apply --version`, and component names follow Dapr's rule on
every path (Control API, Lifecycle API, component files at start, the file agent)."""

import json
import subprocess
import time

import grpc
import pytest

from conftest import running_config, RPC_TIMEOUT_S, wait_for

CLI_TIMEOUT_S = 60
NAME_RULE = "lowercase RFC 1123 labels"


def cli(molt_bin, sidecar, *args):
    command, rest = args[0], args[1:]
    return subprocess.run([str(molt_bin), command, "--control-address", f"127.0.0.1:{sidecar.control_port}", *rest],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_a_version_swap_without_metadata_keeps_the_running_configuration(molt, molt_bin, components):
    sidecar = molt([components.lock("quotalock", version="1.0.0", maxLocks="500", sweepIntervalMs="2000")])
    swapped = cli(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "quotalock", "--version", "2.0.0", "--json")
    assert swapped.returncode == 0, swapped
    result = json.loads(swapped.stdout)
    assert result["action"] == "version-swapped" and not result.get("droppedKeys"), result
    assert sidecar.given_metadata_of("lock", "quotalock") == {"maxLocks": "500", "sweepIntervalMs": "2000"}

    # --replace-metadata replaces it, and the result names what the new configuration dropped and changed.
    replaced = cli(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "quotalock", "--version", "1.0.0", "--replace-metadata",
                   "--metadata", "sweepIntervalMs=3000")
    assert replaced.returncode == 0, replaced
    assert "dropped keys: maxLocks" in replaced.stdout and "changed keys: sweepIntervalMs" in replaced.stdout, replaced.stdout
    assert sidecar.given_metadata_of("lock", "quotalock") == {"sweepIntervalMs": "3000"}


def test_reapplying_the_plugin_without_metadata_keeps_the_redis_host(molt, molt_bin, components, redis_server):
    redis_server = redis_server()
    sidecar = molt([components.state("statestore", redis_server)])
    applied = cli(molt_bin, sidecar, "apply", "--kind", "state", "--name", "statestore", "--plugin", "redis-state")
    assert applied.returncode == 0 and "unchanged" in applied.stdout, applied
    assert sidecar.metadata_of("state", "statestore")["redisHost"] == redis_server.address
    saved = sidecar.http("POST", "/v1.0/state/statestore", [{"key": "k", "value": "still here"}])
    assert saved.status == 204, saved
    assert [key for key in redis_server.keys() if key == "k" or key.endswith("||k")], redis_server.keys()


def test_status_shows_the_configuration_with_secrets_redacted_and_one_component_with_its_history(molt, molt_bin, components,
                                                                                                  fixtures_dir):
    # On the probe fixture, which takes any key ('*'; memorylock refuses keys it does not declare): live.* keys apply in place.
    sidecar = molt([components.lock("locks", plugin="probe", version="1.0.0", sweepIntervalMs="2000", accessToken="s3cret-value")],
                   plugins_dir=fixtures_dir)
    assert cli(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "locks", "--metadata", "sweepIntervalMs=2000",
               "--metadata", "live.sweep=2500", "--metadata", "accessToken=s3cret-value").returncode == 0

    table = cli(molt_bin, sidecar, "status")
    assert table.returncode == 0, table
    assert "live.sweep=2500" in table.stdout and "accessToken=<redacted>" in table.stdout, table.stdout
    assert "s3cret-value" not in table.stdout
    as_json = cli(molt_bin, sidecar, "status", "--json")
    assert "s3cret-value" not in as_json.stdout and '"live.sweep":"2500"' in as_json.stdout, as_json.stdout

    detail = cli(molt_bin, sidecar, "status", "locks")
    assert detail.returncode == 0, detail
    lines = detail.stdout.splitlines()
    assert lines[0] == "lock/locks", detail.stdout
    assert any("config:" in line and "live.sweep=2500" in line for line in lines), detail.stdout
    history = lines[lines.index("  history (oldest first, as kept):") + 1:]
    assert [line.split(": ")[1].split()[0] for line in history if line.startswith("    lock/locks")] == ["added", "applied-in-place"], detail.stdout
    assert "s3cret-value" not in detail.stdout

    missing = cli(molt_bin, sidecar, "status", "nosuch")
    assert missing.returncode == 1 and "no component named nosuch" in missing.stderr, missing


def test_molt_version_and_the_plugin_version_option_do_not_collide(molt_bin):
    version = subprocess.run([str(molt_bin), "--version"], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert version.returncode == 0 and version.stdout.strip().count(".") == 2, version
    help_text = subprocess.run([str(molt_bin), "apply", "--help"], capture_output=True, text=True, timeout=CLI_TIMEOUT_S).stdout
    options = [line for line in help_text.splitlines() if line.strip().startswith("--version")]
    assert len(options) == 1 and "Plugin version" in options[0], help_text


@pytest.mark.parametrize("name", ["../../escape", "a" * 300, "Locks", "lock_store", "-locks"])
def test_invalid_names_are_refused_by_the_control_and_lifecycle_apis(molt, components, protos, name):
    sidecar = molt([components.lock("locks")])
    with pytest.raises(grpc.RpcError) as control:
        sidecar.control_stub().Apply(protos.control_pb2.ApplyRequest(kind="lock", name=name, plugin="memorylock"),
                                     metadata=sidecar.control_metadata(), timeout=RPC_TIMEOUT_S)
    assert control.value.code() == grpc.StatusCode.INVALID_ARGUMENT and NAME_RULE in control.value.details(), control.value
    with pytest.raises(grpc.RpcError) as lifecycle:
        sidecar.apply_configuration("lock", name, {})
    assert lifecycle.value.code() == grpc.StatusCode.INVALID_ARGUMENT and NAME_RULE in lifecycle.value.details(), lifecycle.value
    assert set(sidecar.list_components()) == {("lock", "locks")}


def test_an_invalid_name_in_a_component_file_is_refused_at_start_naming_the_file(molt_bin, plugins_dir, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"components": [{"kind": "lock", "name": "Lock_Store", "plugin": "memorylock"}]}))
    done = subprocess.run([str(molt_bin), "serve", "--plugins-directory", str(plugins_dir), "--components", str(path),
                           "--grpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--control-address", "127.0.0.1:0",
                           "--admin-address", "127.0.0.1:0"], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode != 0, done
    assert str(path) in done.stderr and NAME_RULE in done.stderr and "Lock_Store" in done.stderr, done.stderr


def test_the_file_agent_refuses_an_invalid_name_and_applies_nothing_of_that_file(molt, components, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    sidecar = molt([components.lock("locks")], extra_args=["--agents-file-directory", str(watched)])
    (watched / "bad.json").write_text(json.dumps({"components": [
        {"kind": "lock", "name": "fine", "plugin": "memorylock"}, {"kind": "lock", "name": "../escape", "plugin": "memorylock"}]}))
    wait_for(lambda: NAME_RULE in sidecar.stderr(), "the file agent to report the invalid name")
    assert set(sidecar.list_components()) == {("lock", "locks")}
