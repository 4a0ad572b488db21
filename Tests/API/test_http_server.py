"""molt's app HTTP server itself (Sources/Serving/HTTP/HTTPServer.swift, HTTPChannelHandler.swift), over
raw sockets: what curl and the SDKs never exercise. HTTP/1.1 pipelining (answers in request order), keep-alive
over many requests, the body limit answered before the whole body is read, malformed requests, half-close,
`Connection: close`, the route table (404s and the token, as on Hummingbird before), and graceful shutdown with
HTTP requests in flight.
"""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from raw_http import Answer, Connection, request_bytes

HTTP_BODY_LIMIT = 4 << 20  # AppAPILimits.maxHTTPBodyBytes
API_TOKEN = "server-s3cret"


@pytest.fixture
def connect(sidecar):
    """`conn = connect()` opens a raw connection to the module's sidecar (closed at teardown)."""
    opened = []

    def factory(port: int | None = None) -> Connection:
        connection = Connection(port or sidecar.http_port)
        opened.append(connection)
        return connection

    yield factory
    for connection in opened:
        connection.close()


# ---------------------------------------------------------------------------------------------
# Keep-alive and pipelining


def test_pipelined_requests_are_answered_in_order(sidecar, connect):
    conn = connect()
    conn.send(request_bytes("POST", "/v1.0/state/statestore", [{"key": "pipe-1", "value": {"n": 1}}])
              + request_bytes("GET", "/v1.0/state/statestore/pipe-1")
              + request_bytes("GET", "/v1.0/no-such-route")
              + request_bytes("GET", "/v1.0/state/statestore/pipe-missing")
              + request_bytes("POST", "/v1.0/state/statestore", '[{"key": ')
              + request_bytes("POST", "/v1.0/state/statestore/bulk", {"keys": ["pipe-1", "pipe-missing"]})
              + request_bytes("DELETE", "/v1.0/state/statestore/pipe-1")
              + request_bytes("GET", "/v1.0/state/statestore/pipe-1")
              + request_bytes("GET", "/v1.0/healthz"))
    answers = [conn.read_answer() for _ in range(9)]
    assert [a.status for a in answers] == [204, 200, 404, 204, 400, 200, 204, 204, 204], answers
    assert answers[1].json() == {"n": 1} and answers[1].headers.get("etag"), answers[1]
    assert answers[4].json()["errorCode"] == "ERR_MALFORMED_REQUEST", answers[4]
    assert [item["key"] for item in answers[5].json()] == ["pipe-1", "pipe-missing"], answers[5]
    assert answers[5].json()[0]["data"] == {"n": 1}, answers[5]
    # The connection is still open and serves.
    conn.send(request_bytes("GET", "/v1.0/metadata"))
    assert conn.read_answer().status == 200


def test_many_pipelined_requests_with_slow_plugin_calls_keep_their_order(molt, components, fixtures_dir):
    """Each `hang` lock call completes 50 ms later on a plugin thread: the answers still come back in order."""
    sidecar = molt([components.lock("slow", plugin="probe", hangMs="50")], plugins_dir=fixtures_dir)
    conn = Connection(sidecar.http_port)
    try:
        requests = []
        for index in range(12):
            resource = "hang" if index % 3 == 0 else f"fast-{index}"
            requests.append(request_bytes("POST", "/v1.0-alpha1/lock/slow",
                                          {"resourceId": resource, "lockOwner": f"owner-{index}", "expiryInSeconds": 30}))
        conn.send(b"".join(requests))
        answers = [conn.read_answer().json() for _ in requests]
        # Only the first "hang" call gets the lock; every other resource is fresh.
        assert answers == [{"success": index == 0 or index % 3 != 0} for index in range(12)], answers
    finally:
        conn.close()


def test_a_long_pipeline_past_the_backlog_limits_is_answered_whole_and_in_order(sidecar, connect):
    """molt stops reading only when 16 complete requests or 64 KiB of bodies wait behind the one being answered
    (HTTPChannelHandler.backlog*Limit): 200 requests with 2 KiB values in one write (400 KiB) pass both limits
    many times over; every one is answered, in order, and the connection keeps serving."""
    conn = connect()
    padding = "p" * 2048
    requests = []
    for index in range(100):
        requests.append(request_bytes("POST", "/v1.0/state/statestore", [{"key": f"long-{index % 5}", "value": [index, padding]}]))
        requests.append(request_bytes("GET", f"/v1.0/state/statestore/long-{index % 5}"))
    sender = threading.Thread(target=conn.send, args=(b"".join(requests),))
    sender.start()  # molt's reads stop while the backlog is full: send from a thread, read here
    answers = [conn.read_answer() for _ in requests]
    sender.join()
    for index in range(100):
        saved, read = answers[2 * index], answers[2 * index + 1]
        assert saved.status == 204, (index, saved)
        assert read.status == 200 and read.json() == [index, padding], (index, read.status, read.body[:40])
    conn.send(request_bytes("GET", "/v1.0/healthz"))
    assert conn.read_answer().status == 204


def test_keep_alive_over_many_requests(sidecar, connect):
    conn = connect()
    for index in range(300):
        conn.send(request_bytes("POST", "/v1.0/state/statestore", [{"key": f"ka-{index % 7}", "value": index}]))
        assert conn.read_answer().status == 204
        conn.send(request_bytes("GET", f"/v1.0/state/statestore/ka-{index % 7}"))
        answer = conn.read_answer()
        assert answer.status == 200 and answer.json() == index, answer
    assert not conn.closed_by_peer(timeout=0.3), "molt closed an idle keep-alive connection"


def test_connection_close_and_http_1_0_close_after_the_answer(sidecar, connect):
    conn = connect()
    conn.send(request_bytes("GET", "/v1.0/healthz", headers={"Connection": "close"}))
    assert conn.read_answer().status == 204
    assert conn.closed_by_peer(), "molt kept the connection open after Connection: close"

    conn = connect()
    conn.send(request_bytes("GET", "/v1.0/healthz", version="HTTP/1.0"))
    assert conn.read_answer().status == 204
    assert conn.closed_by_peer(), "molt kept an HTTP/1.0 connection without keep-alive open"

    conn = connect()
    conn.send(request_bytes("GET", "/v1.0/healthz", version="HTTP/1.0", headers={"Connection": "keep-alive"}))
    answer = conn.read_answer()
    assert answer.status == 204 and answer.headers.get("connection", "").lower() == "keep-alive", answer
    conn.send(request_bytes("GET", "/v1.0/healthz", version="HTTP/1.0", headers={"Connection": "keep-alive"}))
    assert conn.read_answer().status == 204


def test_half_closed_client_gets_its_answer(sidecar, connect):
    conn = connect()
    conn.send(request_bytes("POST", "/v1.0/state/statestore", [{"key": "half", "value": 1}])
              + request_bytes("GET", "/v1.0/state/statestore/half"))
    conn.sock.shutdown(socket.SHUT_WR)
    assert conn.read_answer().status == 204
    answer = conn.read_answer()
    assert answer.status == 200 and answer.json() == 1, answer
    assert conn.closed_by_peer(), "molt did not close a half-closed connection once it had answered"


# ---------------------------------------------------------------------------------------------
# Bodies and malformed requests


def test_body_over_the_limit_is_refused_before_it_is_read_whole(sidecar, connect):
    """Dapr's 400 comes as soon as the limit is passed; the rest of the body is read and dropped, and the
    connection then serves its next request."""
    conn = connect()
    declared = 4 * HTTP_BODY_LIMIT
    head = request_bytes("POST", "/v1.0/state/statestore", headers={"Content-Type": "application/json",
                                                                    "Content-Length": str(declared)})
    conn.send(head + b"[" + b" " * HTTP_BODY_LIMIT)
    answer = conn.read_answer()
    assert answer.status == 400, answer
    assert answer.json() == {"errorCode": "ERR_MALFORMED_REQUEST", "message": f"HTTP body is larger than {HTTP_BODY_LIMIT} bytes"}
    conn.send(b" " * (declared - HTTP_BODY_LIMIT - 1))
    conn.send(request_bytes("GET", "/v1.0/healthz"))
    assert conn.read_answer().status == 204


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/v1.0/metadata", 200),  # a route that reads no body serves the request
    ("POST", "/v1.0/no-such-route", 404),
])
def test_body_over_the_limit_on_a_route_that_reads_none(sidecar, connect, method, path, status):
    conn = connect()
    conn.send(request_bytes(method, path, b"x" * (HTTP_BODY_LIMIT + 10)) + request_bytes("GET", "/v1.0/healthz"))
    assert conn.read_answer().status == status
    assert conn.read_answer().status == 204


@pytest.mark.parametrize("raw", [
    b"NOT A REQUEST LINE\r\n\r\n",
    b"GET /v1.0/healthz HTTP/1.1\r\nHost: molt\r\nContent-Length: twelve\r\n\r\n",
    b"GET /v1.0/healthz HTTP/1.1\r\nbroken header line\r\n\r\n",
], ids=["request-line", "content-length", "header-line"])
def test_malformed_request_is_a_bare_400_and_the_connection_closes(sidecar, connect, raw):
    conn = connect()
    conn.send(raw)
    answer = conn.read_answer()
    assert answer.status == 400 and answer.body == b"", answer
    assert answer.headers.get("connection") == "close", answer
    assert conn.closed_by_peer(), "molt kept the connection open after a malformed request"
    fresh = connect()
    fresh.send(request_bytes("GET", "/v1.0/healthz"))
    assert fresh.read_answer().status == 204


def test_malformed_request_after_a_good_one_in_the_same_write(sidecar, connect):
    conn = connect()
    conn.send(request_bytes("GET", "/v1.0/metadata") + b"GARBAGE\r\n\r\n")
    assert conn.read_answer().status == 200
    assert conn.read_answer().status == 400
    assert conn.closed_by_peer()


# ---------------------------------------------------------------------------------------------
# Routes: the statuses Hummingbird's router gave, kept


@pytest.fixture(scope="module")
def guarded(module_molt, redis, components):
    return module_molt([components.state("statestore", redis)], api_token=API_TOKEN)


# (method, path, with the token?, status)
ROUTE_CASES = [
    ("GET", "/v1.0/healthz", False, 204),
    ("GET", "/v1.0/healthz/outbound", False, 204),
    ("GET", "//v1.0//healthz/", False, 204),  # empty segments and a trailing slash are ignored
    ("GET", "/v1.0/healthz?probe=1", False, 204),
    ("POST", "/v1.0/healthz", False, 401),  # only GET is open; anything else needs the token first
    ("POST", "/v1.0/healthz", True, 404),
    ("HEAD", "/v1.0/healthz", True, 404),
    ("GET", "/v1.0/Healthz", True, 404),  # case-sensitive
    ("GET", "/nowhere", False, 401),
    ("GET", "/nowhere", True, 404),
    ("PUT", "/v1.0/state/statestore", True, 404),  # a known path with another method is a 404, not a 405
    ("GET", "/v1.0/state/statestore", True, 404),
    ("PUT", "/v1.0/state/statestore/bulk", True, 404),
    ("POST", "/v1.0/state/statestore/some-key", True, 404),
    ("GET", "/v1.0/state/statestore/a/b", True, 404),
    ("DELETE", "/v1.0/metadata", True, 404),
    ("GET", "/v1.0/metadata", False, 401),
    ("GET", "/v1.0/metadata/", True, 200),
    ("GET", "http://molt/v1.0/metadata", True, 200),  # absolute-form target
    ("GET", "/v1.0/state/statestore/never-saved", True, 204),
]


@pytest.mark.parametrize("method, path, with_token, status", ROUTE_CASES,
                         ids=[f"{m} {p} {'token' if t else 'no-token'}" for m, p, t, _ in ROUTE_CASES])
def test_route_statuses(guarded, method, path, with_token, status):
    conn = Connection(guarded.http_port)
    try:
        conn.send(request_bytes(method, path, token=API_TOKEN if with_token else None))
        answer = conn.read_answer(head_request=method == "HEAD")
        assert answer.status == status, answer
        if status == 401:
            assert answer.json() == {"errorCode": "ERR_UNAUTHORIZED", "message": "invalid api token"}, answer
        if status == 404:
            assert answer.headers.get("content-length") == "0" and answer.body == b"", answer
        assert answer.headers.get("date", "").endswith(" GMT"), answer
    finally:
        conn.close()


def test_keys_named_bulk_and_transaction_and_encoded_keys(guarded):
    conn = Connection(guarded.http_port)
    try:
        for key in ["bulk", "transaction", "a/b", "sp ace"]:
            conn.send(request_bytes("POST", "/v1.0/state/statestore", [{"key": key, "value": {"k": key}}], token=API_TOKEN))
            assert conn.read_answer().status == 204
        for path, key in [("bulk", "bulk"), ("transaction", "transaction"), ("a%2Fb", "a/b"), ("sp%20ace", "sp ace")]:
            conn.send(request_bytes("GET", f"/v1.0/state/statestore/{path}?metadata.note=x", token=API_TOKEN))
            answer = conn.read_answer()
            assert answer.status == 200 and answer.json() == {"k": key}, (path, answer)
            assert answer.headers.get("content-type") == "application/json", answer
            conn.send(request_bytes("DELETE", f"/v1.0/state/statestore/{path}", token=API_TOKEN,
                                    headers={"If-Match": answer.headers["etag"]}))
            assert conn.read_answer().status == 204, path
            conn.send(request_bytes("GET", f"/v1.0/state/statestore/{path}", token=API_TOKEN))
            assert conn.read_answer().status == 204, path
        conn.send(request_bytes("GET", "/v1.0/state/statestore/k%FF", token=API_TOKEN))
        answer = conn.read_answer()
        assert answer.status == 400 and "not valid percent-encoded UTF-8" in answer.json()["message"], answer
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Graceful shutdown


HANG_MS = 1500


def test_sigterm_lets_http_requests_in_flight_finish(molt, components, fixtures_dir):
    """SIGTERM while HTTP lock calls wait for their plugin: each gets its answer (with Connection: close), an
    idle keep-alive connection is closed at once, new connections are refused, and molt exits 0."""
    sidecar = molt([components.lock("slow", plugin="probe", hangMs=str(HANG_MS))], plugins_dir=fixtures_dir)
    idle = Connection(sidecar.http_port)
    idle.send(request_bytes("GET", "/v1.0/healthz"))
    assert idle.read_answer().status == 204

    busy = [Connection(sidecar.http_port) for _ in range(4)]
    answers: list = [None] * len(busy)

    def call(index: int) -> None:
        busy[index].send(request_bytes("POST", "/v1.0-alpha1/lock/slow",
                                       {"resourceId": "hang", "lockOwner": f"owner-{index}", "expiryInSeconds": 10}))
        try:
            answers[index] = busy[index].read_answer()
        except OSError as error:
            answers[index] = error

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(busy))]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        assert all(answer is None for answer in answers), f"answered before SIGTERM: {answers}"
        sidecar.process.send_signal(signal.SIGTERM)
        assert idle.closed_by_peer(timeout=HANG_MS / 1000 / 2), "the idle keep-alive connection stayed open"
        assert sidecar.process.poll() is None, "molt exited before its requests in flight finished"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", sidecar.http_port), timeout=2).close()

        for thread in threads:
            thread.join(30)
        elapsed = time.monotonic() - started
        assert all(isinstance(answer, Answer) and answer.status == 200 for answer in answers), answers
        assert all(answer.headers.get("connection") == "close" for answer in answers), answers
        assert sum(answer.json()["success"] for answer in answers) == 1, answers
        assert elapsed >= HANG_MS / 1000 - 0.1, f"answered after {elapsed:.2f} s, before the plugin completed"
        assert all(conn.closed_by_peer() for conn in busy), "a connection stayed open after its answer"
    finally:
        for conn in [idle, *busy]:
            conn.close()
    exit_code = sidecar.process.wait(timeout=30)
    assert exit_code == 0, f"molt exited with {exit_code}\n{sidecar.stderr()[-3000:]}"
