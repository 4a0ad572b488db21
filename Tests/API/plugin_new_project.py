"""What the `molt plugin new` tests share: running the CLI and make, `molt plugin inspect` of a generated .so, and
the serve story every generated project must pass (applied, serves a call over HTTP, an in-place key change keeps
the instance, a swap to the second version keeps the state). Used by test_plugin_new_state.py and
test_plugin_new_swift.py (test_plugin_new.py, the C lock, has its own copy of the lock story)."""

import json
import subprocess

CLI_TIMEOUT_S = 60
MAKE_TIMEOUT_S = 120


def run(*args, cwd=None, timeout=CLI_TIMEOUT_S, env=None):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def control(molt_bin, sidecar, command, *args):
    return run(molt_bin, command, "--control-address", f"127.0.0.1:{sidecar.control_port}", *args)


def inspect(molt_bin, so_path) -> dict:
    inspected = run(molt_bin, "plugin", "inspect", "--json", so_path)
    assert inspected.returncode == 0, inspected
    return json.loads(inspected.stdout)


def assert_generated_plugin(report: dict, name: str, version: str, kind: str, keys: dict[str, bool]):
    """ABI 1.2, holds state, state format 1, state transfer and apply_config exported, exactly `keys` declared."""
    assert (report["name"], report["version"], report["kind"], report["abiVersion"]) == (name, version, kind, "1.3"), report
    assert report["holdsState"] is True and report["stateFormats"] == "1...1", report
    assert {"molt_plugin_export_state", "molt_plugin_import_state", "molt_plugin_apply_config"} <= set(report["optionalSymbols"])
    assert {k["name"]: k["appliesInPlace"] for k in report["configKeys"]} == keys, report["configKeys"]


def install(project, plugins, *make_args, timeout=MAKE_TIMEOUT_S):
    staged = run("make", "-C", project, "install", f"PLUGINS_DIR={plugins}", *make_args, timeout=timeout)
    assert staged.returncode == 0, staged


def apply_in_place_then_swap(molt_bin, sidecar, kind, component, name, key, value, to_version):
    """An in-place change of `key` keeps the instance; then the swap to `to_version` is a version swap."""
    generation = sidecar.generation(kind, component)
    in_place = control(molt_bin, sidecar, "apply", "--kind", kind, "--name", component, "--metadata", f"{key}={value}", "--json")
    assert in_place.returncode == 0, in_place
    assert sidecar.generation(kind, component) == generation, in_place.stdout  # the same instance
    assert sidecar.metadata_of(kind, component)[key] == value
    swapped = control(molt_bin, sidecar, "apply", "--kind", kind, "--name", component, "--version", to_version, "--json")
    assert swapped.returncode == 0, swapped
    assert json.loads(swapped.stdout)["action"] == "version-swapped", swapped.stdout
    assert sidecar.component(kind, component).plugin == f"{name}@{to_version}"
    assert sidecar.generation(kind, component) != generation


def lock_story(molt_bin, sidecar, name, versions=("1.0.0", "1.1.0")):
    """Applied, alice takes a lock over HTTP, maxLocks changes in place, the swap keeps it alice's."""
    applied = control(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "locks", "--plugin", name,
                      "--version", versions[0], "--metadata", "maxLocks=100")
    assert applied.returncode == 0, applied
    lock = {"resourceId": "order-1", "lockOwner": "alice", "expiryInSeconds": 120}
    taken = sidecar.http("POST", "/v1.0-alpha1/lock/locks", lock)
    assert taken.status == 200 and taken.json() == {"success": True}, str(taken)

    apply_in_place_then_swap(molt_bin, sidecar, "lock", "locks", name, "maxLocks", "50", versions[1])

    other = sidecar.http("POST", "/v1.0-alpha1/lock/locks", {**lock, "lockOwner": "bob"})
    assert other.status == 200 and other.json() == {"success": False}, str(other)
    not_mine = sidecar.http("POST", "/v1.0-alpha1/unlock/locks", {"resourceId": "order-1", "lockOwner": "bob"})
    assert not_mine.status == 200 and not_mine.json() == {"status": 2}, str(not_mine)  # LOCK_BELONGS_TO_OTHERS
    unlocked = sidecar.http("POST", "/v1.0-alpha1/unlock/locks", {"resourceId": "order-1", "lockOwner": "alice"})
    assert unlocked.status == 200 and unlocked.json() == {"status": 0}, str(unlocked)  # SUCCESS
    assert "imported 1 locks" in sidecar.stderr(), sidecar.stderr()[-3000:]


def state_story(molt_bin, sidecar, name, versions=("1.0.0", "1.1.0")):
    """Applied, a key saved and read over HTTP (etag, first-write), maxKeys changes in place, the swap keeps the
    key, its value and its etag, and a write after it gets a new etag."""
    applied = control(molt_bin, sidecar, "apply", "--kind", "state", "--name", "store", "--plugin", name,
                      "--version", versions[0], "--metadata", "maxKeys=100")
    assert applied.returncode == 0, applied
    saved = sidecar.http("POST", "/v1.0/state/store", [{"key": "order-1", "value": {"orderId": 1}}])
    assert saved.status == 204, str(saved)
    got = sidecar.http("GET", "/v1.0/state/store/order-1")
    assert got.status == 200 and got.json() == {"orderId": 1}, str(got)
    etag = got.headers.get("etag")
    assert etag, str(got)
    first_write = {"key": "order-1", "value": {"orderId": 2}, "options": {"concurrency": "first-write"}}
    refused = sidecar.http("POST", "/v1.0/state/store", [first_write])  # exists, no etag: refused
    assert refused.status == 409, str(refused)
    assert sidecar.http("GET", "/v1.0/state/store/never-saved").status == 204

    apply_in_place_then_swap(molt_bin, sidecar, "state", "store", name, "maxKeys", "50", versions[1])

    kept = sidecar.http("GET", "/v1.0/state/store/order-1")
    assert kept.status == 200 and kept.json() == {"orderId": 1} and kept.headers.get("etag") == etag, str(kept)
    rewritten = sidecar.http("POST", "/v1.0/state/store", [{**first_write, "etag": etag}])
    assert rewritten.status == 204, str(rewritten)
    after = sidecar.http("GET", "/v1.0/state/store/order-1")
    assert after.json() == {"orderId": 2} and after.headers.get("etag") not in (None, etag), str(after)
    assert "imported 1 keys" in sidecar.stderr(), sidecar.stderr()[-3000:]
