"""molt's HTTP APIs with curl: Dapr's app API (health, state, locks, errors), the admin API (health
probes, Prometheus /metrics)."""

import pytest


def test_healthz(sidecar):
    assert sidecar.http("GET", "/v1.0/healthz").status == 204
    # The Dapr SDKs wait for this one before their first call.
    assert sidecar.http("GET", "/v1.0/healthz/outbound").status == 204


@pytest.mark.parametrize("probe", ["liveness", "readiness"])
def test_actuator_health(sidecar, probe):
    response = sidecar.admin(f"/actuator/health/{probe}")
    assert response.status == 200, str(response)
    assert response.json()["status"] == "UP", str(response)


def test_state_save_get_delete(sidecar):
    saved = sidecar.http("POST", "/v1.0/state/statestore", [{"key": "http-k", "value": "v"}])
    assert saved.status == 204, str(saved)

    got = sidecar.http("GET", "/v1.0/state/statestore/http-k")
    assert got.status == 200, str(got)
    assert got.json() == "v"
    assert got.headers.get("etag"), f"no ETag header: {got.headers}"

    deleted = sidecar.http("DELETE", "/v1.0/state/statestore/http-k")
    assert deleted.status == 204, str(deleted)
    gone = sidecar.http("GET", "/v1.0/state/statestore/http-k")
    assert gone.status == 204, str(gone)
    assert gone.body == b""


def test_state_json_values_round_trip(sidecar):
    value = {"order": 42, "items": ["a", "b"], "paid": True}
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": "http-json", "value": value}]).status == 204
    got = sidecar.http("GET", "/v1.0/state/statestore/http-json")
    assert got.status == 200 and got.json() == value, str(got)


def test_state_save_with_stale_etag_is_a_conflict(sidecar):
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": "http-etag", "value": "one"}]).status == 204
    etag = sidecar.http("GET", "/v1.0/state/statestore/http-etag").headers["etag"]
    current = sidecar.http("POST", "/v1.0/state/statestore", [{"key": "http-etag", "value": "two", "etag": etag}])
    assert current.status == 204, str(current)
    stale = sidecar.http("POST", "/v1.0/state/statestore", [{"key": "http-etag", "value": "three", "etag": etag}])
    assert stale.status == 409, f"Dapr answers 409 for an etag mismatch: {stale}"
    assert stale.json().get("errorCode"), str(stale)
    assert sidecar.http("GET", "/v1.0/state/statestore/http-etag").json() == "two"


def test_lock_and_unlock(sidecar):
    lock = {"resourceId": "http-r", "lockOwner": "o", "expiryInSeconds": 10}
    first = sidecar.http("POST", "/v1.0-alpha1/lock/lockstore", lock)
    assert first.status == 200 and first.json() == {"success": True}, str(first)
    other = sidecar.http("POST", "/v1.0-alpha1/lock/lockstore", {**lock, "lockOwner": "other"})
    assert other.status == 200 and other.json() == {"success": False}, str(other)

    not_mine = sidecar.http("POST", "/v1.0-alpha1/unlock/lockstore", {"resourceId": "http-r", "lockOwner": "other"})
    assert not_mine.status == 200 and not_mine.json() == {"status": 2}, str(not_mine)  # LOCK_BELONGS_TO_OTHERS
    unlocked = sidecar.http("POST", "/v1.0-alpha1/unlock/lockstore", {"resourceId": "http-r", "lockOwner": "o"})
    assert unlocked.status == 200 and unlocked.json() == {"status": 0}, str(unlocked)  # SUCCESS
    again = sidecar.http("POST", "/v1.0-alpha1/unlock/lockstore", {"resourceId": "http-r", "lockOwner": "o"})
    assert again.status == 200 and again.json() == {"status": 1}, str(again)  # LOCK_DOES_NOT_EXIST


def test_lock_bodies_are_read_as_dapr_reads_them(sidecar):
    """Dapr reads the lock bodies with protojson (unknown fields dropped): proto field names, an int32 in a
    string and fields it does not know are accepted too."""
    lock = '{"resource_id": "http-pj", "lock_owner": "o", "expiryInSeconds": "10", "someday": {"a": [1]}}'
    first = sidecar.http("POST", "/v1.0-alpha1/lock/lockstore", lock)
    assert first.status == 200 and first.json() == {"success": True}, str(first)
    held = sidecar.http("POST", "/v1.0-alpha1/lock/lockstore", {"resourceId": "http-pj", "lockOwner": "p", "expiryInSeconds": 10})
    assert held.status == 200 and held.json() == {"success": False}, str(held)
    unlocked = sidecar.http("POST", "/v1.0-alpha1/unlock/lockstore", '{"resource_id": "http-pj", "lockOwner": "o", "x": null}')
    assert unlocked.status == 200 and unlocked.json() == {"status": 0}, str(unlocked)


def test_metrics_count_calls(sidecar):
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": "http-metrics", "value": "m"}]).status == 204
    labels = {"kind": "state", "component": "statestore", "operation": "get", "outcome": "ok"}
    before = sidecar.metrics().value("molt_calls_total", **labels)
    for _ in range(5):
        assert sidecar.http("GET", "/v1.0/state/statestore/http-metrics").status == 200
    metrics = sidecar.metrics()
    assert metrics.value("molt_calls_total", **labels) == before + 5, metrics.text
    assert any(name.startswith("molt_call_duration_seconds") for name in metrics.names()), metrics.text


def test_metrics_count_applies(module_molt, components):
    # A molt of its own, so that the counts start at bootstrap.
    sidecar = module_molt([components.lock("counted")])
    metrics = sidecar.metrics()
    labels = {"kind": "lock", "component": "counted"}
    assert metrics.value("molt_applies_total", action="added", **labels) == 1, metrics.text
    assert metrics.value("molt_applies_total", action="applied-in-place", **labels) == 0
    assert metrics.value("molt_component_generation", **labels) == 1, metrics.text

    sidecar.apply_configuration("lock", "counted", {"maxLocks": "10"})
    metrics = sidecar.metrics()
    assert metrics.value("molt_applies_total", action="added", **labels) == 1, metrics.text
    assert metrics.value("molt_applies_total", action="applied-in-place", **labels) == 1, metrics.text


def test_bad_input_is_a_400_and_molt_keeps_serving(sidecar):
    malformed = sidecar.http("POST", "/v1.0/state/statestore", '[{"key": "k", "value": ')
    assert malformed.status == 400, str(malformed)
    assert malformed.json().get("errorCode"), str(malformed)

    unknown = sidecar.http("POST", "/v1.0/state/no-such-store", [{"key": "k", "value": "v"}])
    assert unknown.status == 400, str(unknown)
    assert unknown.json().get("errorCode") == "ERR_STATE_STORE_NOT_FOUND", str(unknown)
    unknown_get = sidecar.http("GET", "/v1.0/state/no-such-store/k")
    assert unknown_get.status == 400 and unknown_get.json().get("errorCode") == "ERR_STATE_STORE_NOT_FOUND", \
        str(unknown_get)

    assert sidecar.process.poll() is None, "molt exited after bad input"
    assert sidecar.http("GET", "/v1.0/healthz").status == 204
    assert sidecar.http("POST", "/v1.0/state/statestore", [{"key": "after-bad", "value": "fine"}]).status == 204
    assert sidecar.http("GET", "/v1.0/state/statestore/after-bad").json() == "fine"


def test_metadata(sidecar):
    response = sidecar.http("GET", "/v1.0/metadata")
    assert response.status == 200, str(response)
    body = response.json()
    assert body.get("id") == "molt", body
    registered = {c["name"]: c["type"] for c in body.get("components", [])}
    assert registered == {"statestore": "state.redis-state", "lockstore": "lock.memorylock"}, body


def test_api_token_over_http(module_molt, redis, components):
    guarded = module_molt([components.state("statestore", redis)], api_token="http-s3cret")
    assert guarded.http("GET", "/v1.0/healthz", token=None).status == 204, "health checks need no token"
    denied = guarded.http("POST", "/v1.0/state/statestore", [{"key": "t", "value": "v"}], token=None)
    assert denied.status == 401, str(denied)
    wrong = guarded.http("POST", "/v1.0/state/statestore", [{"key": "t", "value": "v"}], token="nope")
    assert wrong.status == 401, str(wrong)
    allowed = guarded.http("POST", "/v1.0/state/statestore", [{"key": "t", "value": "v"}])
    assert allowed.status == 204, str(allowed)


def test_not_ready_until_every_bootstrap_component_serves(molt, components, fixtures_dir):
    # The bootstrap component's first instance reports readiness FAILED: molt serves, but is not ready.
    sidecar = molt([components.lock("flaky", plugin="probe", readiness="failed")], plugins_dir=fixtures_dir,
                   wait_ready=False)
    healthz = sidecar.http("GET", "/v1.0/healthz")
    assert healthz.status == 500 and healthz.json()["errorCode"] == "ERR_HEALTH_NOT_READY", healthz
    assert sidecar.http("GET", "/v1.0/healthz/outbound").status == 500
    readiness = sidecar.admin("/actuator/health/readiness")
    assert readiness.status == 503 and readiness.json()["status"] == "DOWN", readiness
    assert sidecar.admin("/actuator/health/liveness").status == 200

    # The operator applies a working configuration: the component is added and molt becomes ready.
    pb = sidecar.protos.control_pb2
    added = sidecar.control_stub().Apply(pb.ApplyRequest(kind="lock", name="flaky", plugin="probe"),
                                         metadata=sidecar.control_metadata(), timeout=15).result
    assert added.action == "added", added
    assert sidecar.http("GET", "/v1.0/healthz").status == 204
    readiness = sidecar.admin("/actuator/health/readiness")
    assert readiness.status == 200 and readiness.json()["status"] == "UP", readiness
