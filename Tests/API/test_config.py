"""Configuration as `molt serve` reads it: a bootstrap config file, MOLT_* environment and arguments in
that order of precedence; component files as Dapr Component YAML; `molt config check` and `migrate`."""

import os
import subprocess

from conftest import pick_free_port


def write(path, text):
    path.write_text(text)
    return path


def test_serve_reads_a_config_file_env_and_args_in_order_and_dapr_component_yaml(molt, plugins_dir, tmp_path):
    components = tmp_path / "components"
    components.mkdir()
    write(components / "lockstore.yaml", """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: lockstore
spec:
  type: lock.in-memory
  version: v2
  metadata:
    - name: maxLocks
      value: 5
""")
    from_file, from_env = pick_free_port(), pick_free_port()
    config = write(tmp_path / "molt.yaml", f"""
version: 1
appID: from-file
grpcAddress: 127.0.0.1:{from_file}
""")
    # The factory gives --grpc-address (and --components) on the command line: they win over the file and
    # the environment (the factory waits on the ports it passed, so serving proves the arguments won).
    sidecar = molt([], extra_args=["--config", str(config), "--components", str(components)],
                   env={"MOLT_GRPC_ADDRESS": f"127.0.0.1:{from_env}", "MOLT_APP_ID": "from-env"})
    listed = sidecar.list_components()
    assert list(listed) == [("lock", "lockstore")]
    assert listed[("lock", "lockstore")].plugin == "memorylock@2.0.0", "spec.version v2 takes the newest 2.x plugin"
    metadata = sidecar.http("GET", "/v1.0/metadata").json()
    assert metadata["id"] == "from-env", "the environment beats the file"
    assert metadata["components"] == [{"name": "lockstore", "type": "lock.memorylock", "version": "2.0.0"}]


def clean_env():
    """This process's environment without molt's and Dapr's variables (the test harness sets some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MOLT_", "DAPR_")) and k != "APP_ID"}


def test_config_check_and_migrate(molt_bin, tmp_path):
    good = write(tmp_path / "molt.yaml", "version: 1\npluginsDir: plugins.d\nunknownThing: 3\n")
    checked = subprocess.run([str(molt_bin), "config", "check", str(good)], capture_output=True, text=True, timeout=30, env=clean_env())
    assert checked.returncode == 0, checked.stderr
    assert "pluginsDir: DEPRECATED" in checked.stderr and "unknown key 'unknownThing'" in checked.stderr
    assert 'pluginsDirectory: "plugins.d"' in checked.stdout and "grpcAddress:" in checked.stdout

    migrated = subprocess.run([str(molt_bin), "config", "migrate", str(good)], capture_output=True, text=True, timeout=30, env=clean_env())
    assert migrated.returncode == 0 and "pluginsDirectory" in migrated.stdout and "pluginsDir:" not in migrated.stdout

    bad = write(tmp_path / "bad.yaml", 'version: 1\nreadinessTimeoutMs: "soon"\n')
    refused = subprocess.run([str(molt_bin), "config", "check", str(bad)], capture_output=True, text=True, timeout=30, env=clean_env())
    assert refused.returncode == 1
    assert f"{bad}:2" in refused.stderr and "readinessTimeoutMs" in refused.stderr and "expected an integer" in refused.stderr
