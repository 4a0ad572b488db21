"""`molt plugin new`: the generated C lock project builds as written (make, make test, make VERSION=1.1.0),
its .so loads (ABI 1.2, holds state, state formats, declared keys), and in a real `molt serve` it is applied,
takes a lock over HTTP and swaps to 1.1.0 with the lock still held by its owner (state transferred). The
ABI header embedded in molt equals PluginKit's byte for byte. A bad NAME, an unknown kind or language and a
non-empty DIR are refused. The commands are the ones in docs/plugin-authors.md, "Start from a template". (The
state and Swift templates: test_plugin_new_state.py, test_plugin_new_swift.py.)"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CLI_TIMEOUT_S = 60
MAKE_TIMEOUT_S = 120
NAME_RULE = "[a-z0-9][a-z0-9._-]{0,63}"
HEADER = Path(os.environ.get("MOLT_ROOT", Path(__file__).resolve().parents[2])) / "PluginKit/Sources/PluginABI/include/molt_plugin.h"

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and cc")


def run(*args, cwd=None, timeout=CLI_TIMEOUT_S):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def control(molt_bin, sidecar, command, *args):
    return run(molt_bin, command, "--control-address", f"127.0.0.1:{sidecar.control_port}", *args)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`molt plugin new demo-lock --kind lock --language c DIR`, then `make -C DIR` and `make -C DIR VERSION=1.1.0`."""
    molt_bin = Path(os.environ["MOLT_BIN"])
    directory = tmp_path_factory.mktemp("plugin-new") / "demo-lock"
    created = run(molt_bin, "plugin", "new", "demo-lock", "--kind", "lock", "--language", "c", directory)
    assert created.returncode == 0, created
    for args in ([], ["VERSION=1.1.0"]):
        built = run("make", "-C", directory, *args, timeout=MAKE_TIMEOUT_S)
        assert built.returncode == 0, built
    return directory


def test_the_generated_project_has_its_files_and_the_exact_abi_header(project):
    for name in ("demo-lock.c", "Makefile", "README.md", "test/test_plugin.c", "include/molt_plugin.h"):
        assert (project / name).is_file(), name
    assert (project / "include/molt_plugin.h").read_bytes() == HEADER.read_bytes(), \
        "the header embedded in molt drifted from molt_plugin.h: run scripts/embed-plugin-header.sh"
    source = (project / "demo-lock.c").read_text()
    assert "__PLUGIN_NAME__" not in source and '.name = "demo-lock"' in source
    assert "MOLT_PLUGIN_HOLDS_STATE" in source and "molt_log(" in source


def test_make_test_checks_semantics_and_state_transfer(project):
    tested = run("make", "-C", project, "test", timeout=MAKE_TIMEOUT_S)
    assert tested.returncode == 0, tested
    assert "all checks passed" in tested.stdout, tested.stdout


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_both_versions_load_with_abi_1_1_state_transfer_and_declared_keys(project, molt_bin, version):
    inspected = run(molt_bin, "plugin", "inspect", "--json", project / f"demo-lock-{version}.so")
    assert inspected.returncode == 0, inspected
    report = json.loads(inspected.stdout)
    assert (report["name"], report["version"], report["kind"], report["abiVersion"]) == ("demo-lock", version, "lock", "1.3")
    assert report["holdsState"] is True and report["stateFormats"] == "1...1", report
    assert {"molt_plugin_export_state", "molt_plugin_import_state", "molt_plugin_apply_config"} <= set(report["optionalSymbols"])
    keys = {k["name"]: k["appliesInPlace"] for k in report["configKeys"]}
    assert keys == {"maxLocks": True, "logLabel": False}, report["configKeys"]


def test_applied_in_molt_it_keeps_a_held_lock_across_a_version_swap(project, molt, molt_bin, tmp_path):
    plugins = tmp_path / "plugins.d"
    for version in ("1.0.0", "1.1.0"):
        staged = run("make", "-C", project, "install", f"VERSION={version}", f"PLUGINS_DIR={plugins}", timeout=MAKE_TIMEOUT_S)
        assert staged.returncode == 0, staged
    sidecar = molt([], plugins_dir=plugins)

    applied = control(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "locks", "--plugin", "demo-lock",
                      "--version", "1.0.0", "--metadata", "maxLocks=100")
    assert applied.returncode == 0, applied
    lock = {"resourceId": "order-1", "lockOwner": "alice", "expiryInSeconds": 120}
    taken = sidecar.http("POST", "/v1.0-alpha1/lock/locks", lock)
    assert taken.status == 200 and taken.json() == {"success": True}, str(taken)

    # In place: maxLocks applies without a new instance; the lock stays.
    generation = sidecar.generation("lock", "locks")
    in_place = control(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "locks", "--metadata", "maxLocks=50")
    assert in_place.returncode == 0, in_place
    assert sidecar.generation("lock", "locks") == generation

    swapped = control(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "locks", "--version", "1.1.0", "--json")
    assert swapped.returncode == 0, swapped
    assert json.loads(swapped.stdout)["action"] == "version-swapped", swapped.stdout
    assert sidecar.component("lock", "locks").plugin == "demo-lock@1.1.0"

    # Held by alice in the new version: bob cannot take it, bob cannot unlock it, alice can.
    other = sidecar.http("POST", "/v1.0-alpha1/lock/locks", {**lock, "lockOwner": "bob"})
    assert other.status == 200 and other.json() == {"success": False}, str(other)
    not_mine = sidecar.http("POST", "/v1.0-alpha1/unlock/locks", {"resourceId": "order-1", "lockOwner": "bob"})
    assert not_mine.status == 200 and not_mine.json() == {"status": 2}, str(not_mine)  # LOCK_BELONGS_TO_OTHERS
    unlocked = sidecar.http("POST", "/v1.0-alpha1/unlock/locks", {"resourceId": "order-1", "lockOwner": "alice"})
    assert unlocked.status == 200 and unlocked.json() == {"status": 0}, str(unlocked)  # SUCCESS
    assert "demo-lock" in sidecar.stderr() and "imported 1 locks" in sidecar.stderr(), sidecar.stderr()[-3000:]


@pytest.mark.parametrize("name", ["Demo", "-demo", "demo lock", "a" * 65, "demo/lock"])
def test_an_invalid_name_is_refused_with_the_loaders_rule(molt_bin, tmp_path, name):
    refused = run(molt_bin, "plugin", "new", name, "--kind", "lock", "--language", "c", tmp_path / "out")
    assert refused.returncode == 64, refused
    assert NAME_RULE in refused.stderr, refused.stderr
    assert not (tmp_path / "out").exists()


def test_a_non_empty_directory_is_refused_and_left_alone(molt_bin, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    refused = run(molt_bin, "plugin", "new", "demo-lock", "--kind", "lock", "--language", "c", tmp_path)
    assert refused.returncode == 1, refused
    assert "is not empty" in refused.stderr, refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_an_empty_existing_directory_and_the_default_directory_are_accepted(molt_bin, tmp_path):
    (tmp_path / "empty").mkdir()
    assert run(molt_bin, "plugin", "new", "x1", "--kind", "lock", tmp_path / "empty").returncode == 0
    assert (tmp_path / "empty/x1.c").is_file()
    assert run(molt_bin, "plugin", "new", "x2", "--kind", "lock", cwd=tmp_path).returncode == 0
    assert (tmp_path / "x2/Makefile").is_file()


@pytest.mark.parametrize("args", [["--kind", "pubsub"], ["--kind", "lock", "--language", "rust"]])
def test_unknown_kinds_and_languages_are_refused(molt_bin, tmp_path, args):
    refused = run(molt_bin, "plugin", "new", "demo", *args, tmp_path / "out")
    assert refused.returncode == 64 and "must be" in refused.stderr, refused
    assert not (tmp_path / "out").exists()


def test_pluginkit_is_refused_for_a_c_project(molt_bin, tmp_path):
    refused = run(molt_bin, "plugin", "new", "demo", "--kind", "lock", "--pluginkit", tmp_path, tmp_path / "out")
    assert refused.returncode == 64 and "--pluginkit is for --language swift" in refused.stderr, refused
    assert not (tmp_path / "out").exists()


def test_swaps_back_and_forth_under_load_without_a_failed_call_or_a_lost_lock(project, molt, molt_bin, tmp_path):
    """The issue's story: two versions from `molt plugin new`, swapped four times while two clients lock and unlock
    over HTTP (each lock must be granted to its owner and each unlock answer SUCCESS), and a lock held through it all."""
    import http.client
    import threading

    plugins = tmp_path / "plugins.d"
    for version in ("1.0.0", "1.1.0"):
        assert run("make", "-C", project, "install", f"VERSION={version}", f"PLUGINS_DIR={plugins}", timeout=MAKE_TIMEOUT_S).returncode == 0
    sidecar = molt([], plugins_dir=plugins)
    assert control(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "locks", "--plugin", "demo-lock",
                   "--version", "1.0.0").returncode == 0
    held = {"resourceId": "held", "lockOwner": "alice", "expiryInSeconds": 600}
    assert sidecar.http("POST", "/v1.0-alpha1/lock/locks", held).json() == {"success": True}

    stop, failures, cycles = threading.Event(), [], [0, 0]

    def client(index):
        connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=30)
        headers = {"Content-Type": "application/json"}
        n = 0
        while not stop.is_set():
            body = {"resourceId": f"load-{index}-{n % 8}", "lockOwner": f"client-{index}"}
            for path, payload, want in (("lock", {**body, "expiryInSeconds": 60}, {"success": True}),
                                        ("unlock", body, {"status": 0})):
                connection.request("POST", f"/v1.0-alpha1/{path}/locks", json.dumps(payload), headers)
                answer = connection.getresponse()
                text = answer.read()
                if answer.status != 200 or json.loads(text) != want:
                    failures.append((path, payload, answer.status, text))
            n += 1
            cycles[index] += 1
        connection.close()

    clients = [threading.Thread(target=client, args=(index,)) for index in range(2)]
    for thread in clients:
        thread.start()
    try:
        for version in ("1.1.0", "1.0.0", "1.1.0", "1.0.0"):
            swapped = control(molt_bin, sidecar, "apply", "--kind", "lock", "--name", "locks", "--version", version, "--json")
            assert swapped.returncode == 0 and json.loads(swapped.stdout)["action"] == "version-swapped", swapped
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    assert failures == [], failures[:5]
    assert min(cycles) > 0, cycles
    assert sidecar.http("POST", "/v1.0-alpha1/lock/locks", {**held, "lockOwner": "bob"}).json() == {"success": False}
    assert sidecar.http("POST", "/v1.0-alpha1/unlock/locks", {"resourceId": "held", "lockOwner": "alice"}).json() == {"status": 0}
