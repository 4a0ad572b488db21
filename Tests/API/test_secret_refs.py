"""Secret references (issue 20): a component's config value taken from a secret store (`secretKeyRef`), resolved
when the component is applied, never shown or stored, and rotated without a failed call.

Real parts: redis-server with an ACL user whose password the tests rotate, the local-file secret store plugin
reading a JSON file the tests rewrite (by rename, as editors and config management do), redis-state, and molt's
HTTP state API under load from a client thread."""

import http.client
import json
import os
import threading
import time
from pathlib import Path

from conftest import RPC_TIMEOUT_S, wait_for

SECRETS_PASSWORD_KEY = "redis:password"  # local-file flattens {"redis": {"password": ...}} with ":"


def write_secrets(path: Path, secrets: dict) -> None:
    """Replaces the secrets file atomically (a rename), as an operator's tooling does."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(json.dumps(secrets))
    os.replace(staged, path)


def acl_user(redis, user: str, password: str) -> None:
    redis.cli("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")


def components(secrets_file: Path, redis, store_extra: dict | None = None, reference: dict | None = None) -> list[dict]:
    reference = reference or {"store": "secrets", "name": SECRETS_PASSWORD_KEY}
    return [
        {"kind": "secretstore", "name": "secrets", "plugin": "local-file",
         "metadata": {"secretsFile": str(secrets_file), **(store_extra or {})}},
        {"kind": "state", "name": "statestore", "plugin": "redis-state",
         "metadata": {"redisHost": redis.address, "redisUsername": "app", "redisPassword": {"secretKeyRef": reference}}},
    ]


class StateLoad:
    """Saves and reads state over molt's HTTP API in a loop on one connection, counting failed calls."""

    def __init__(self, port: int):
        self.port = port
        self.calls = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=RPC_TIMEOUT_S)
        index = 0
        while not self._stop.is_set():
            index += 1
            try:
                body = json.dumps([{"key": f"load-{index % 50}", "value": index}])
                connection.request("POST", "/v1.0/state/statestore", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                if response.status != 204:
                    self.failures.append(f"save {response.status} {answer[:200]!r}")
                connection.request("GET", f"/v1.0/state/statestore/load-{index % 50}")
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200 or json.loads(answer) != index:
                    self.failures.append(f"get {response.status} {answer[:200]!r}")
                self.calls += 2
            except Exception as error:  # a dropped connection is a failed call too
                self.failures.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=RPC_TIMEOUT_S)


def test_password_from_a_secret_store_rotated_under_load_without_a_failed_call(molt, redis_server, tmp_path):
    redis = redis_server()
    acl_user(redis, "app", "first-password")
    secrets_file = tmp_path / "secrets.json"
    write_secrets(secrets_file, {"redis": {"password": "first-password"}})
    state_dir = tmp_path / "state"
    sidecar = molt(components(secrets_file, redis), extra_args=["--state-directory", str(state_dir)])

    # The reference is what status shows, not the value.
    shown = sidecar.metadata_of("state", "statestore")["redisPassword"]
    assert shown.startswith("secretKeyRef(") and "secrets" in shown and "first-password" not in shown, shown
    generation = sidecar.generation("state", "statestore")

    with StateLoad(sidecar.http_port) as load:
        wait_for(lambda: load.calls > 100, "state calls before the rotation")
        # Rotation as Redis recommends it: the new password is valid beside the old one, then the old goes.
        redis.cli("ACL", "SETUSER", "app", ">second-password")
        write_secrets(secrets_file, {"redis": {"password": "second-password"}})
        wait_for(lambda: "secret rotated" in sidecar.stderr(), "molt re-applying statestore with the new password", timeout=30)
        calls_at_rotation = load.calls
        wait_for(lambda: load.calls > calls_at_rotation + 100, "state calls after the rotation")
        redis.cli("ACL", "SETUSER", "app", "<first-password")
        wait_for(lambda: load.calls > calls_at_rotation + 200, "state calls after the old password was removed")
    assert load.failures == [], f"{len(load.failures)} of {load.calls} calls failed: {load.failures[:5]}"

    # molt now authenticates with the new password: with the old one removed, a fresh connection still works.
    redis.cli("CLIENT", "KILL", "USER", "app")
    wait_for(lambda: sidecar.http("GET", "/v1.0/state/statestore/load-1").status == 200,
             "a state call over a connection made after the old password was removed")
    assert "second-password" not in sidecar.metadata_of("state", "statestore")["redisPassword"]
    assert sidecar.generation("state", "statestore") >= generation

    # Neither password appears in the log or in the state directory (references are persisted, not values).
    for secret in ("first-password", "second-password"):
        assert secret not in sidecar.stderr(), f"{secret} in molt's log"
        for path in state_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"{secret} in {path}"


def test_dapr_yaml_secret_key_ref_with_auth_secret_store(molt, redis_server, tmp_path):
    redis = redis_server()
    acl_user(redis, "app", "yaml-password")
    secrets_file = tmp_path / "secrets.json"
    write_secrets(secrets_file, {"redis-password": "yaml-password"})
    components_dir = tmp_path / "components"
    components_dir.mkdir()
    (components_dir / "components.yaml").write_text(f"""\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{ name: secrets }}
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - {{ name: secretsFile, value: "{secrets_file}" }}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{ name: statestore }}
spec:
  type: state.redis
  version: v1
  metadata:
    - {{ name: redisHost, value: "{redis.address}" }}
    - {{ name: redisUsername, value: app }}
    - name: redisPassword
      secretKeyRef: {{ name: redis-password }}
auth:
  secretStore: secrets
""")
    sidecar = molt([], extra_args=["--components", str(components_dir / "components.yaml")])
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": "k", "value": "v"}]).status == 204
    assert sidecar.http("GET", "/v1.0/state/statestore/k").json() == "v"
    assert sidecar.metadata_of("state", "statestore")["redisPassword"] == \
        "secretKeyRef(store=secrets,name=redis-password,key=redis-password)"


def test_a_missing_secret_fails_the_apply_naming_store_and_secret_and_the_old_generation_serves(molt, redis_server, tmp_path):
    redis = redis_server()
    acl_user(redis, "app", "pw")
    secrets_file = tmp_path / "secrets.json"
    write_secrets(secrets_file, {"redis": {"password": "pw"}})
    sidecar = molt(components(secrets_file, redis))
    generation = sidecar.generation("state", "statestore")
    given = {"redisHost": redis.address, "redisUsername": "app"}

    missing = sidecar.control_apply("state", "statestore", {
        **given, "redisPassword": "secretKeyRef(store=secrets,name=redis:nothing,key=redis:nothing)"})
    assert missing.action == "failed"
    assert "secret 'redis:nothing'" in missing.error and "secret store 'secrets'" in missing.error, missing.error

    malformed = sidecar.control_apply("state", "statestore", {**given, "redisPassword": "secretKeyRef(store=secrets)"})
    assert malformed.action == "failed" and "'name' is missing" in malformed.error, malformed.error

    assert sidecar.generation("state", "statestore") == generation
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": "k", "value": 1}]).status == 204


def test_a_component_waits_for_a_secret_store_that_arrives_later(molt, redis_server, tmp_path):
    redis = redis_server()
    acl_user(redis, "app", "late-password")
    secrets_file = tmp_path / "secrets.json"
    write_secrets(secrets_file, {"redis": {"password": "late-password"}})
    store, state = components(secrets_file, redis)
    sidecar = molt([store])
    given = {"redisHost": redis.address, "redisUsername": "app",
             "redisPassword": "secretKeyRef(store=later,name=redis:password,key=redis:password)"}
    # The store "later" is not configured: the apply waits for it (readiness timeout) while the store is added.
    result = {}
    applying = threading.Thread(target=lambda: result.update(apply=sidecar.control_apply("state", "statestore", given, plugin="redis-state")))
    applying.start()
    wait_for(lambda: "waiting for secret store" in sidecar.stderr(), "molt saying it waits for the secret store")
    added = sidecar.control_apply("secretstore", "later", {"secretsFile": str(secrets_file)}, plugin="local-file")
    assert added.action == "added", added
    applying.join(timeout=30)
    assert result["apply"].action == "added", result["apply"]
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": "k", "value": 1}]).status == 204


def test_a_secret_store_cannot_read_its_own_configuration_from_itself(molt, tmp_path):
    secrets_file = tmp_path / "secrets.json"
    write_secrets(secrets_file, {"path": str(secrets_file)})
    sidecar = molt([{"kind": "secretstore", "name": "secrets", "plugin": "local-file", "metadata": {"secretsFile": str(secrets_file)}}])
    result = sidecar.control_apply("secretstore", "secrets", {
        "secretsFile": "secretKeyRef(store=secrets,name=path,key=path)"}, plugin="local-file")
    assert result.action == "failed" and "cannot read its own configuration from itself" in result.error, result
    assert sidecar.http("GET", "/v1.0/secrets/secrets/path").status == 200


def test_a_restart_restores_the_reference_and_reads_the_secret_again(molt, redis_server, tmp_path):
    redis = redis_server()
    acl_user(redis, "app", "before-restart")
    secrets_file = tmp_path / "secrets.json"
    write_secrets(secrets_file, {"redis": {"password": "before-restart"}})
    state_dir = tmp_path / "state"
    first = molt(components(secrets_file, redis), extra_args=["--state-directory", str(state_dir)])
    assert first.http("POST", "/v1.0/state/statestore", [{"key": "k", "value": "kept"}]).status == 204
    assert first.stop() == 0
    # While molt is down the password is rotated: the restarted molt must read the secret, not reuse a value.
    redis.cli("ACL", "SETUSER", "app", "resetpass", ">after-restart")
    write_secrets(secrets_file, {"redis": {"password": "after-restart"}})
    second = molt([], extra_args=["--state-directory", str(state_dir)])
    assert second.http("GET", "/v1.0/state/statestore/k").json() == "kept"
    assert second.metadata_of("state", "statestore")["redisPassword"].startswith("secretKeyRef(")
