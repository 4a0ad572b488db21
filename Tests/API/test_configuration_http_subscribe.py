"""HTTP configuration subscriptions delivered to the app through molt's app channel, as Dapr delivers them
(dapr/dapr pkg/api/http/http.go, `onSubscribeConfiguration` and `configurationEventHandler.updateEventHandler`):
`GET /v1.0/configuration/{store}/subscribe?key=…` answers `{"id": …}`; then for each changed key molt POSTs
`/configuration/{store}/{key}` to the app port with `Content-Type: application/json` and the update event as the
body, `{"id": …, "items": {key: {"value", "version"}}}` (a deleted item `{}`); `…/{id}/unsubscribe` stops them; an
app answering 500 (or down) is logged and the subscription goes on; without `--app-port` the old answer
(500 ERR_APP_CHANNEL_NIL) stays. Real molt, the etcd-config plugin and a real etcd (fixtures of
test_configuration.py)."""

import http.server
import json
import queue
import threading
import time

import pytest

from test_configuration import PREFIX, STORE, UPDATE_TIMEOUT_S, config_store, etcd_config_plugin, server, version_of  # noqa: F401


class RecordingApp:
    """A small HTTP app on a free loopback port that records every POST molt sends it (path, headers, body) and
    answers `status` (200 unless changed)."""

    def __init__(self, port: int):
        self.posts: "queue.Queue[dict]" = queue.Queue()
        self.status = 200
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as molt's client expects of an app

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                app.posts.put({"path": self.path, "content_type": self.headers.get("Content-Type"), "body": body})
                answer = b'{"ok": true}'
                self.send_response(app.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_post(self, timeout: float = UPDATE_TIMEOUT_S) -> dict:
        return self.posts.get(timeout=timeout)

    def post_for(self, key: str, timeout: float = UPDATE_TIMEOUT_S) -> dict:
        """The next POST for `key` (earlier POSTs for other keys are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            post = self.posts.get(timeout=max(0.01, deadline - time.monotonic()))
            if post["path"] == f"/configuration/{STORE}/{key}":
                return post

    def quiet_for(self, seconds: float) -> list[dict]:
        """The POSTs that arrive within `seconds` (expected none)."""
        time.sleep(seconds)
        arrived = []
        while not self.posts.empty():
            arrived.append(self.posts.get_nowait())
        return arrived

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app(free_port):
    app = RecordingApp(free_port())
    yield app
    app.close()


@pytest.fixture
def sidecar(molt, server, etcd_config_plugin, app):  # noqa: F811
    return molt([config_store(server)], extra_args=["--app-port", str(app.port)])


def subscribe(sidecar, keys=("color", "size"), version="v1.0"):
    query = "&".join(f"key={key}" for key in keys)
    answer = sidecar.http("GET", f"/{version}/configuration/{STORE}/subscribe" + (f"?{query}" if query else ""))
    assert answer.status == 200, str(answer)
    body = answer.json()
    assert set(body) == {"id"} and body["id"], body
    return body["id"]


def test_a_put_and_a_delete_in_etcd_are_posted_to_the_app_as_dapr_does(sidecar, server, app):
    subscription_id = subscribe(sidecar)
    server.put(PREFIX + "color", "green")
    post = app.post_for("color")
    assert post["content_type"] == "application/json", post
    assert post["body"].endswith(b"\n"), post  # Go's json.Encoder ends the body with a newline
    assert json.loads(post["body"]) == {"id": subscription_id,
                                        "items": {"color": {"value": "green", "version": version_of(server, "color")}}}, post

    server.delete(PREFIX + "size")
    post = app.post_for("size")
    # A deleted item: value and version "" (left out, as Dapr's omitempty encoding).
    assert json.loads(post["body"]) == {"id": subscription_id, "items": {"size": {}}}, post


def test_unsubscribe_stops_the_posts(sidecar, server, app):
    subscription_id = subscribe(sidecar, ["color"], version="v1.0-alpha1")
    server.put(PREFIX + "color", "green")
    assert json.loads(app.post_for("color")["body"])["id"] == subscription_id

    answer = sidecar.http("GET", f"/v1.0/configuration/{STORE}/{subscription_id}/unsubscribe")
    assert answer.status == 200 and answer.json() == {"ok": True}, str(answer)
    server.put(PREFIX + "color", "purple")
    assert app.quiet_for(3.0) == []


def test_a_subscription_to_every_item_posts_new_keys(sidecar, server, app):
    subscription_id = subscribe(sidecar, keys=())
    server.put(PREFIX + "shape", "round")
    post = app.post_for("shape")
    assert json.loads(post["body"]) == {"id": subscription_id,
                                        "items": {"shape": {"value": "round", "version": version_of(server, "shape")}}}, post


def test_an_app_answering_500_does_not_end_the_subscription(sidecar, server, app):
    subscribe(sidecar, ["color"])
    app.status = 500
    server.put(PREFIX + "color", "green")
    assert json.loads(app.post_for("color")["body"])["items"]["color"]["value"] == "green"
    app.status = 200
    server.put(PREFIX + "color", "purple")
    assert json.loads(app.post_for("color")["body"])["items"]["color"]["value"] == "purple"
    assert "error sending configuration item to the app" in sidecar.stderr()
    assert "status 500" in sidecar.stderr()


def test_an_app_that_is_down_is_logged_and_later_updates_still_arrive(molt, server, etcd_config_plugin, free_port):  # noqa: F811
    port = free_port()
    sidecar = molt([config_store(server)], extra_args=["--app-port", str(port)])
    subscribe(sidecar, ["color"])
    server.put(PREFIX + "color", "green")  # nobody listens on the app port yet
    deadline = time.monotonic() + UPDATE_TIMEOUT_S
    while "error sending configuration item to the app" not in sidecar.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"app channel 127.0.0.1:{port}" in sidecar.stderr(), sidecar.stderr()[-3000:]
    app = RecordingApp(port)
    try:
        server.put(PREFIX + "color", "purple")
        assert json.loads(app.post_for("color")["body"])["items"]["color"]["value"] == "purple"
    finally:
        app.close()


def test_without_an_app_port_http_subscribe_keeps_daprs_app_channel_nil_answer(molt, server, etcd_config_plugin):  # noqa: F811
    sidecar = molt([config_store(server)])
    answer = sidecar.http("GET", f"/v1.0/configuration/{STORE}/subscribe?key=color")
    assert answer.status == 500, str(answer)
    body = answer.json()
    assert body["errorCode"] == "ERR_APP_CHANNEL_NIL", body
    assert body["message"].startswith("app channel is not initialized. cannot subscribe to configuration updates"), body
    assert "--app-port" in body["message"], body


def test_with_a_grpc_app_http_subscribe_keeps_the_app_channel_nil_answer(molt, server, etcd_config_plugin, free_port):  # noqa: F811
    sidecar = molt([config_store(server)], extra_args=["--app-port", str(free_port()), "--app-protocol", "grpc"])
    answer = sidecar.http("GET", f"/v1.0/configuration/{STORE}/subscribe?key=color")
    assert answer.status == 500, str(answer)
    body = answer.json()
    assert body["errorCode"] == "ERR_APP_CHANNEL_NIL", body
    assert "--app-protocol http" in body["message"] and "SubscribeConfiguration" in body["message"], body


def test_an_app_protocol_other_than_http_or_grpc_is_refused_at_start(molt_bin, tmp_path):
    import subprocess
    result = subprocess.run([str(molt_bin), "serve", "--app-port", "3000", "--app-protocol", "h2c"],
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode != 0
    assert "--app-protocol" in result.stderr and "http" in result.stderr, result.stderr
