"""The `molt` CLI against a running `molt serve`: apply, status, exit codes a script can rely on, and the
start-up refusal of a control plane reachable off loopback without a token."""

import json
import subprocess

CLI_TIMEOUT_S = 60


def run_cli(molt_bin, *args, env=None):
    return subprocess.run([str(molt_bin), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env)


def control_args(sidecar, token=None):
    args = ["--control-address", f"127.0.0.1:{sidecar.control_port}"]
    return args + (["--control-token", token] if token else [])


def test_apply_and_status(molt, molt_bin, components):
    sidecar = molt([components.lock("lockstore")])

    # In place: exit 0, one line naming the action.
    applied = run_cli(molt_bin, "apply", *control_args(sidecar), "--kind", "lock", "--name", "lockstore",
                      "--metadata", "maxLocks=7")
    assert applied.returncode == 0, applied.stderr
    assert "lock/lockstore: applied-in-place" in applied.stdout

    # Refused by the plugin: exit 1, the plugin's own message, the old generation still serving.
    refused = run_cli(molt_bin, "apply", *control_args(sidecar), "--kind", "lock", "--name", "lockstore",
                      "--metadata", "maxLocks=lots")
    assert refused.returncode == 1, refused
    assert "failed" in refused.stdout and 'invalid value "lots"' in refused.stdout

    status = run_cli(molt_bin, "status", *control_args(sidecar), "--json")
    assert status.returncode == 0, status.stderr
    listed = {(c["kind"], c["name"]): c for c in json.loads(status.stdout)["components"]}
    lockstore = listed[("lock", "lockstore")]
    assert lockstore["generation"] == 1 and lockstore["state"] == "serving"
    assert lockstore["lastResult"]["action"] == "failed"

    table = run_cli(molt_bin, "status", *control_args(sidecar))
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["KIND", "NAME", "PLUGIN"]


def test_apply_file_adds_components(molt, molt_bin, components, tmp_path):
    sidecar = molt([components.lock("lockstore")])
    file = tmp_path / "more.json"
    file.write_text(json.dumps({"components": [
        {"kind": "lock", "name": "second", "plugin": "memorylock", "version": "1.0.0", "metadata": {}},
    ]}))
    applied = run_cli(molt_bin, "apply", *control_args(sidecar), "-f", str(file), "--json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout.splitlines()[0])
    assert result["action"] == "added" and result["newPlugin"] == "memorylock@1.0.0"
    assert sidecar.generation("lock", "second") == 1


def test_cli_exit_codes_for_an_unreachable_or_refusing_control_plane(molt, molt_bin, components, free_port):
    unreachable = run_cli(molt_bin, "status", "--control-address", f"127.0.0.1:{free_port()}", "--timeout", "5")
    assert unreachable.returncode == 2, unreachable
    assert "control plane" in unreachable.stderr

    sidecar = molt([components.lock("lockstore")], control_token="s3cret")
    no_token = run_cli(molt_bin, "status", *control_args(sidecar))
    assert no_token.returncode == 2 and "unauthenticated" in no_token.stderr.lower(), no_token
    with_token = run_cli(molt_bin, "status", *control_args(sidecar, "s3cret"))
    assert with_token.returncode == 0, with_token.stderr

    usage = run_cli(molt_bin, "apply", *control_args(sidecar, "s3cret"), "--kind", "lock")
    assert usage.returncode == 64 and "--name" in usage.stderr, usage


def test_control_plane_off_loopback_needs_a_token(molt_bin, plugins_dir, free_port):
    refused = run_cli(molt_bin, "serve", "--plugins-directory", str(plugins_dir), "--control-address", f"0.0.0.0:{free_port()}")
    assert refused.returncode != 0
    assert "--control-token" in refused.stderr and "loopback" in refused.stderr


def test_batch_apply_is_all_or_nothing(molt, molt_bin, components, fixtures_dir, tmp_path):
    sidecar = molt([components.lock("a", plugin="probe"), components.lock("b", plugin="probe")], plugins_dir=fixtures_dir)
    batch = tmp_path / "batch.json"

    batch.write_text(json.dumps({"components": [
        {"kind": "lock", "name": "a", "plugin": "probe", "metadata": {"v": "2"}},
        {"kind": "lock", "name": "b", "plugin": "probe", "metadata": {"v": "2", "readiness": "failed"}},
        {"kind": "lock", "name": "c", "plugin": "probe", "metadata": {}},
    ]}))
    failed = run_cli(molt_bin, "apply", *control_args(sidecar), "-f", str(batch), "--batch", "--json")
    assert failed.returncode == 1, failed
    results = [json.loads(line) for line in failed.stdout.splitlines()]
    assert [r["action"] for r in results] == ["failed"] * 3
    assert "readiness FAILED" in results[1]["error"] and results[0]["failure"] == "aborted"
    listed = sidecar.list_components()
    assert sorted(listed) == [("lock", "a"), ("lock", "b")], "the batch added a component"
    assert [listed[k].generation for k in sorted(listed)] == [1, 1], "the batch changed a component"

    batch.write_text(json.dumps({"components": [
        {"kind": "lock", "name": "a", "plugin": "probe", "metadata": {"v": "2"}},
        {"kind": "lock", "name": "c", "plugin": "probe", "metadata": {}},
    ]}))
    applied = run_cli(molt_bin, "apply", *control_args(sidecar), "-f", str(batch), "--batch")
    assert applied.returncode == 0, applied
    assert "lock/a: reloaded" in applied.stdout and "lock/c: added" in applied.stdout
    # A generation number is never reused: the aborted batch's ready-then-destroyed instances took some.
    assert sidecar.generation("lock", "a") > 1 and sidecar.generation("lock", "b") == 1
    assert ("lock", "c") in sidecar.list_components()
