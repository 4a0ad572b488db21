"""`molt config check FILE…` reads every file molt reads, detected by content, and checks each component
against the plugins that would run it, naming file, line and field; `molt apply --dry-run` does the same
on a running molt and says what the apply would do, changing nothing."""

import json
import os
import subprocess

import pytest

CLI_TIMEOUT_S = 60

DAPR_LOCK = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: lockstore
spec:
  type: lock.in-memory
  version: v1
  metadata:
  - name: maxLocks
    value: "100"
"""

DAPR_STATE_AND_SUBSCRIPTION = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: keyPrefix
    value: name
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    default: /orders
"""

MOLT_YAML = """components:
  - kind: lock
    name: locks
    plugin: memorylock
    version: 2.0.0
    metadata:
      maxLocks: 5
"""

def layotto(metadata):
    return {"servers": [{"listeners": [{"config": {"filter_chains": [{"filters": [{"config": {"grpc_config": {
        "lock": {"lockstore": {"type": "in-memory", "metadata": metadata}}}}}]}]}}]}]}


LAYOTTO = layotto({"maxLocks": "7"})


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("MOLT_", "DAPR_")) and k != "APP_ID"}


def check(molt_bin, plugins_dir, *files):
    return subprocess.run([str(molt_bin), "config", "check", "--plugins-directory", str(plugins_dir), *map(str, files)],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=clean_env())


def test_valid_files_of_every_format_pass(molt_bin, plugins_dir, tmp_path):
    files = {"dapr-lock.yaml": DAPR_LOCK, "dapr-state.yaml": DAPR_STATE_AND_SUBSCRIPTION, "molt.yaml": MOLT_YAML,
             "molt.json": json.dumps({"components": [{"kind": "lock", "name": "a", "plugin": "memorylock"}]}),
             "config.json": json.dumps(LAYOTTO)}
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    bootstrap = tmp_path / "molt-bootstrap.yaml"
    bootstrap.write_text(f"version: 1\ncomponents: [{tmp_path / 'molt.yaml'}]\n")
    done = check(molt_bin, plugins_dir, *paths, bootstrap)
    assert done.returncode == 0, done.stderr
    for path in paths:
        assert f"{path}: OK (component file" in done.stderr, done.stderr
        assert f"{path}: OK (component file, 0 components)" not in done.stderr, done.stderr
    assert f"{bootstrap}: OK (bootstrap config, 1 components" in done.stderr, done.stderr
    # Subscription documents are read (issue 19: delivered to the app with --app-port), not skipped.
    assert f"{tmp_path / 'dapr-state.yaml'}: OK (component file, 1 components, 1 subscriptions)" in done.stderr, done.stderr
    assert "Subscription documents are not read" not in done.stderr, done.stderr


@pytest.mark.parametrize("case_id, name, text, message", [
    ("dapr-unknown-key", "lock.yaml", DAPR_LOCK + "  - name: bogus\n    value: \"1\"\n",
     "{file}:11:5: lock/lockstore: spec.metadata[1]: config key 'bogus' is not a key of plugin memorylock@"),
    ("dapr-missing-required", "state.yaml", DAPR_STATE_AND_SUBSCRIPTION.replace("  - name: redisHost\n    value: localhost:6379\n", ""),
     "{file}:1:1: state/statestore: missing required config key 'redisHost' for plugin redis-state@1.0.0"),
    ("molt-unknown-version", "molt.yaml", MOLT_YAML.replace("2.0.0", "9.9.9"),
     "{file}:2:5: lock/locks: no lock plugin memorylock@9.9.9 in"),
    ("molt-unknown-plugin", "molt.json", json.dumps({"components": [{"kind": "state", "name": "s", "plugin": "nosuch"}]}),
     "state/s: no state plugin nosuch in"),
    ("molt-invalid-name", "molt.json", json.dumps({"components": [{"kind": "lock", "name": "Bad_Name", "plugin": "memorylock"}]}),
     "component name 'Bad_Name' is invalid"),
    ("layotto-unknown-key", "config.json", json.dumps(layotto({"nope": "1"})), "lock/lockstore: config key 'nope' is not a key of plugin memorylock@"),
], ids=lambda value: value if isinstance(value, str) and value.count("-") >= 1 and "\n" not in value and len(value) < 30 else "")
def test_invalid_files_are_refused_naming_file_line_and_field(molt_bin, plugins_dir, tmp_path, case_id, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    done = check(molt_bin, plugins_dir, path)
    assert done.returncode == 1, f"{case_id}: {done}"
    assert message.format(file=path) in done.stderr, f"{case_id}: {done.stderr!r}"


def test_dry_run_says_what_an_apply_would_do_and_changes_nothing(molt, molt_bin, components):
    sidecar = molt([components.lock("locks", maxLocks="5")])
    generation = sidecar.generation("lock", "locks")

    def apply(*args):
        return subprocess.run([str(molt_bin), "apply", "--control-address", f"127.0.0.1:{sidecar.control_port}", "--dry-run", *args],
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S)

    reload = apply("--kind", "lock", "--name", "locks", "--metadata", "buckets=1024")
    assert reload.returncode == 0 and "dry-run" in reload.stdout and "would reload" in reload.stdout, reload
    in_place = apply("--kind", "lock", "--name", "locks", "--metadata", "maxLocks=6")
    assert in_place.returncode == 0 and "would apply in place" in in_place.stdout, in_place
    swap = apply("--kind", "lock", "--name", "locks", "--version", "1.0.0")
    assert swap.returncode == 0 and "would swap version 2.0.0 → 1.0.0" in swap.stdout, swap
    added = apply("--kind", "lock", "--name", "more", "--plugin", "memorylock")
    assert added.returncode == 0 and "would add" in added.stdout, added
    refused = apply("--kind", "lock", "--name", "locks", "--metadata", "bogus=1")
    assert refused.returncode == 1 and ("config key 'bogus' is not a key of plugin memorylock@2.0.0 "
                                        "(known: buckets, maxLocks, sweepIntervalMs)") in refused.stdout, refused

    assert set(sidecar.list_components()) == {("lock", "locks")}
    assert sidecar.generation("lock", "locks") == generation
    assert sidecar.given_metadata_of("lock", "locks") == {"maxLocks": "5"}


def test_an_apply_of_a_key_the_plugin_does_not_declare_is_refused_and_the_component_keeps_serving(molt, molt_bin, components):
    """Issue 16: memorylock declares its keys; `molt apply --metadata bogus=1` is refused before any plugin code runs,
    naming the key and the known ones (CLI and Control API), and generation 1 keeps serving its configuration."""
    sidecar = molt([components.lock("locks", maxLocks="5")])
    generation = sidecar.generation("lock", "locks")
    refused = subprocess.run([str(molt_bin), "apply", "--control-address", f"127.0.0.1:{sidecar.control_port}",
                              "--kind", "lock", "--name", "locks", "--metadata", "maxLocks=6", "--metadata", "bogus=1"],
                             capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    message = "config key 'bogus' is not a key of plugin memorylock@2.0.0 (known: buckets, maxLocks, sweepIntervalMs)"
    assert refused.returncode == 1 and "invalid-definition" in refused.stdout and message in refused.stdout, refused
    result = sidecar.control_apply("lock", "locks", {"maxLocks": "6", "bogus": "1"})
    assert (result.action, result.failure, result.error) == ("failed", "invalid-definition", message), result
    assert sidecar.generation("lock", "locks") == generation
    assert sidecar.given_metadata_of("lock", "locks") == {"maxLocks": "5"}
    assert sidecar.try_lock("locks", "after-refusal", "checker", expiry=5)
