"""molt's admin HTTP server (Sources/Serving/HTTP/AdminHTTPServer.swift, on the same HTTPServer as the app API),
over raw sockets: Layotto's health bodies byte for byte, /metrics, the 404s molt's earlier Hummingbird router gave,
no token, keep-alive.
"""

from __future__ import annotations

import json
import re

import pytest

from raw_http import Connection, request_bytes

LIVENESS = "/actuator/health/liveness"
READINESS = "/actuator/health/readiness"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
def admin(sidecar):
    """A raw connection to the module's sidecar's admin port (closed at teardown)."""
    connection = Connection(sidecar.admin_port)
    yield connection
    connection.close()


def get(connection: Connection, path: str, **options):
    connection.send(request_bytes("GET", path, **options))
    return connection.read_answer()


def test_liveness_body(admin):
    answer = get(admin, LIVENESS)
    assert answer.status == 200 and answer.body == b'{"status":"UP"}', answer
    assert answer.headers.get("content-type") == "application/json", answer
    assert answer.headers.get("date", "").endswith(" GMT"), answer


def test_readiness_lists_every_component(admin, sidecar):
    answer = get(admin, READINESS)
    assert answer.status == 200, answer
    assert answer.headers.get("content-type") == "application/json", answer
    # Compact JSON with sorted keys, as before.
    assert answer.body == json.dumps(answer.json(), sort_keys=True, separators=(",", ":")).encode(), answer
    body = answer.json()
    assert body["status"] == "UP" and set(body["components"]) == {"state/statestore", "lock/lockstore"}, answer
    for component in body["components"].values():
        assert set(component) == {"generation", "plugin"}, answer
        assert component["generation"] == 1 and re.fullmatch(r"[a-z-]+@\d+\.\d+\.\d+", component["plugin"]), answer


def test_readiness_down_then_up(molt, components, fixtures_dir):
    # The bootstrap component's first instance reports readiness FAILED: DOWN (503) until a working one is applied.
    sidecar = molt([components.lock("flaky", plugin="probe", readiness="failed")], plugins_dir=fixtures_dir,
                   wait_ready=False)
    admin = Connection(sidecar.admin_port)
    try:
        answer = get(admin, READINESS)
        assert answer.status == 503 and answer.body == b'{"components":{},"status":"DOWN"}', answer
        assert answer.headers.get("content-type") == "application/json", answer
        assert get(admin, LIVENESS).status == 200

        pb = sidecar.protos.control_pb2
        added = sidecar.control_stub().Apply(pb.ApplyRequest(kind="lock", name="flaky", plugin="probe"),
                                             metadata=sidecar.control_metadata(), timeout=15).result
        assert added.action == "added", added
        answer = get(admin, READINESS)
        assert answer.status == 200, answer
        assert re.fullmatch(rb'\{"components":\{"lock/flaky":\{"generation":\d+,"plugin":"probe@\d+\.\d+\.\d+"\}\},"status":"UP"\}',
                            answer.body), answer
    finally:
        admin.close()


def test_metrics_content_type_and_call_counts(admin, sidecar):
    assert sidecar.http("GET", "/v1.0/state/statestore/admin-never-saved").status == 204
    answer = get(admin, "/metrics")
    assert answer.status == 200 and answer.headers.get("content-type") == METRICS_CONTENT_TYPE, answer
    lines = answer.body.decode().splitlines()
    calls = [line for line in lines if line.startswith("molt_calls_total{")
             and 'component="statestore"' in line and 'operation="get"' in line and 'outcome="ok"' in line]
    assert len(calls) == 1 and float(calls[0].rsplit(" ", 1)[1]) >= 1, answer.body.decode()[:3000]
    # The gauges are refreshed before each exposition.
    assert any(line.startswith("molt_component_generation{") for line in lines), answer.body.decode()[:3000]


# (method, path, status): the admin routes are GET only; paths as the app API's (empty segments and the query
# ignored, case-sensitive); anything else is a bare 404, never a 405.
ROUTE_CASES = [
    ("GET", "//actuator//health/liveness/?probe=1", 200),
    ("GET", "http://molt/metrics", 200),  # absolute-form target
    ("GET", "/nowhere", 404),
    ("GET", "/actuator/health", 404),
    ("GET", "/actuator/health/liveness/more", 404),
    ("GET", "/Metrics", 404),
    ("GET", "/v1.0/healthz", 404),  # the app API's paths are not served here
    ("POST", LIVENESS, 404),
    ("PUT", READINESS, 404),
    ("DELETE", "/metrics", 404),
    ("HEAD", LIVENESS, 404),
]


@pytest.mark.parametrize("method, path, status", ROUTE_CASES, ids=[f"{m} {p}" for m, p, _ in ROUTE_CASES])
def test_route_statuses(admin, method, path, status):
    admin.send(request_bytes(method, path, body=b"{}" if method in ("POST", "PUT") else None))
    answer = admin.read_answer(head_request=method == "HEAD")
    assert answer.status == status, answer
    if status == 404:
        assert answer.headers.get("content-length") == "0" and answer.body == b"", answer
    assert answer.headers.get("date", "").endswith(" GMT"), answer


def test_no_token_on_admin(module_molt, components):
    sidecar = module_molt([components.lock("lockstore")], api_token="admin-s3cret")
    assert sidecar.http("GET", "/v1.0/metadata", token=None).status == 401  # the app API wants it
    admin = Connection(sidecar.admin_port)
    try:
        for path in (LIVENESS, READINESS, "/metrics"):
            assert get(admin, path).status == 200, path
            assert get(admin, path, token="wrong").status == 200, path
    finally:
        admin.close()


def test_keep_alive_and_pipelining(admin):
    assert get(admin, LIVENESS).status == 200
    assert get(admin, "/metrics").status == 200
    admin.send(request_bytes("GET", READINESS) + request_bytes("GET", "/nowhere") + request_bytes("GET", LIVENESS))
    assert [admin.read_answer().status for _ in range(3)] == [200, 404, 200]
    assert not admin.closed_by_peer(timeout=0.3), "molt closed an idle keep-alive admin connection"
    assert get(admin, LIVENESS, headers={"Connection": "close"}).status == 200
    assert admin.closed_by_peer(), "molt kept the admin connection open after Connection: close"
