"""A plugin file rebuilt in place: the same name@version with other bytes (issue 16, "errors that say what to fix").

Without `--watch-plugins` a rebuild is never loaded behind the operator's back, and never ignored without a word:
applying that version names the rebuild and what to do; an apply that keeps the running build says it does. With
`molt serve --watch-plugins` (development) a rebuild reloads the components running that version onto the new
build, state handed over, with no failed call; a broken rebuild is reported and the running build keeps serving.

A "rebuild" here is the plugin's bytes with a few bytes appended (a different sha256, the same ELF), written over
the file in place as `cp` would.
"""

import http.client
import json
import shutil
import subprocess
import threading

import pytest

from conftest import wait_for

CLI_TIMEOUT_S = 60
PLUGIN = "in-memory-1.0.0.so"


def cli(molt_bin, sidecar, *args):
    command, rest = args[0], args[1:]
    return subprocess.run([str(molt_bin), command, "--control-address", f"127.0.0.1:{sidecar.control_port}", *rest],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def rebuild(path, tag: bytes):
    """Writes the plugin's original bytes plus `tag` over `path`, in place."""
    original = path.with_suffix(".original").read_bytes()
    with open(path, "wb") as file:
        file.write(original + tag)


@pytest.fixture
def plugins(tmp_path, plugins_dir):
    directory = tmp_path / "plugins"
    directory.mkdir(mode=0o755)
    shutil.copy2(plugins_dir / PLUGIN, directory / PLUGIN)
    shutil.copy2(plugins_dir / PLUGIN, directory / "in-memory-1.0.0.original")
    return directory


def state_store():
    return {"kind": "state", "name": "statestore", "plugin": "in-memory", "version": "1.0.0", "metadata": {}}


def save(sidecar, key, value):
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": key, "value": value}]).status == 204


def read(sidecar, key):
    answer = sidecar.http("GET", f"/v1.0/state/statestore/{key}")
    assert answer.status == 200, answer
    return answer.json()


def test_applying_a_rebuilt_version_names_the_rebuild_and_the_way_out(molt, molt_bin, plugins):
    sidecar = molt([state_store()], plugins_dir=plugins)
    save(sidecar, "kept", {"n": 1})
    rebuild(plugins / PLUGIN, b"\0rebuild-1")

    swap = cli(molt_bin, sidecar, "apply", "--kind", "state", "--name", "statestore", "--version", "1.0.0")
    assert swap.returncode == 1, swap
    said = swap.stdout + swap.stderr
    assert "now holds another build of in-memory@1.0.0" in said and "--watch-plugins" in said, said
    assert "give the new build a new version" in said, said

    # An apply that keeps the running build succeeds, and says that the file holds another one.
    kept = cli(molt_bin, sidecar, "apply", "--kind", "state", "--name", "statestore", "--metadata", "maxKeys=500", "--json")
    assert kept.returncode == 0, kept
    result = json.loads(kept.stdout)
    assert any("now holds another build of in-memory@1.0.0" in w and "keeps running the build it loaded" in w
               for w in result["warnings"]), result
    assert sidecar.generation("state", "statestore") == 1
    assert read(sidecar, "kept") == {"n": 1}


def test_watch_plugins_reloads_a_rebuild_with_its_state_and_without_a_failed_call(molt, plugins):
    sidecar = molt([state_store()], plugins_dir=plugins, extra_args=["--watch-plugins"])
    save(sidecar, "kept", {"n": 1})

    failures, calls, stop = [], [0], threading.Event()

    def load():
        connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
        while not stop.is_set():
            connection.request("GET", "/v1.0/state/statestore/kept")
            answer = connection.getresponse()
            body = answer.read()
            calls[0] += 1
            if answer.status != 200 or json.loads(body) != {"n": 1}:
                failures.append((answer.status, body))
        connection.close()

    reader = threading.Thread(target=load)
    reader.start()
    try:
        rebuild(plugins / PLUGIN, b"\0rebuild-1")
        wait_for(lambda: sidecar.generation("state", "statestore") == 2, "the rebuild to be loaded")
        assert "component reloaded onto a rebuilt plugin" in sidecar.stderr()
        last = sidecar.component("state", "statestore").last_result
        assert any("a new build of in-memory@1.0.0" in w for w in last.warnings), last

        # A broken rebuild: reported, never loaded; the running build keeps serving.
        with open(plugins / PLUGIN, "wb") as file:
            file.write(b"not an ELF file")
        wait_for(lambda: "in-memory-1.0.0.so" in sidecar.stderr().split("plugin skipped")[-1], "the broken rebuild to be reported")
        assert sidecar.generation("state", "statestore") == 2

        # Fixed again: loaded.
        rebuild(plugins / PLUGIN, b"\0rebuild-2")
        wait_for(lambda: sidecar.generation("state", "statestore") == 3, "the fixed rebuild to be loaded")
    finally:
        stop.set()
        reader.join()
    assert failures == [], failures[:5]
    assert calls[0] > 0
    assert read(sidecar, "kept") == {"n": 1}
