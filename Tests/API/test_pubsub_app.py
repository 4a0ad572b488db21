"""Classic pub/sub subscriptions delivered to the app through molt's app channel, as Dapr delivers them
(dapr/dapr pkg/runtime/subscription, pkg/runtime/pubsub): molt asks `GET /dapr/subscribe` (again while the app is
not up), reads declarative `kind: Subscription` files, and POSTs each event to the route as a CloudEvent
(`Content-Type: application/cloudevents+json`). The app's answer: 2xx `{"status": "SUCCESS"}` (or an empty body)
acks, `RETRY` (or any status but 2xx/404) redelivers, `DROP` and 404 drop; after `maxRetries` RETRY answers the
event goes to the subscription's `deadLetterTopic`. Real molt and the in-memory-pubsub plugin."""

import http.client
import http.server
import json
import queue
import threading
import time

import pytest

TIMEOUT_S = 20.0


class SubscriberApp:
    """A small HTTP app: answers `GET /dapr/subscribe` with `subscriptions` (404 when None), records every POST
    (path, content type, CloudEvent) and answers it with `answer(event, path) -> (status, body)`."""

    def __init__(self, port: int = 0, subscriptions=None):
        self.subscriptions = subscriptions
        self.posts: "queue.Queue[dict]" = queue.Queue()
        self.asked = 0
        self.answer = lambda event, path: (200, b'{"status": "SUCCESS"}')
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/dapr/subscribe":
                    return self.reply(404, b"")
                app.asked += 1
                if app.subscriptions is None:
                    return self.reply(404, b"")
                self.reply(200, json.dumps(app.subscriptions).encode())

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                event = json.loads(body)
                app.posts.put({"path": self.path, "content_type": self.headers.get("Content-Type"), "event": event})
                self.reply(*app.answer(event, self.path))

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next_post(self, timeout: float = TIMEOUT_S) -> dict:
        return self.posts.get(timeout=timeout)

    def posts_until(self, count: int, timeout: float = TIMEOUT_S) -> list[dict]:
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            got.append(self.posts.get(timeout=max(0.01, deadline - time.monotonic())))
        return got

    def quiet_for(self, seconds: float) -> list[dict]:
        time.sleep(seconds)
        arrived = []
        while not self.posts.empty():
            arrived.append(self.posts.get_nowait())
        return arrived

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def publish(sidecar, topic: str, data, pubsub: str = "pubsub"):
    connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
    connection.request("POST", f"/v1.0/publish/{pubsub}/{topic}", body=json.dumps(data),
                       headers={"Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    assert status == 204, status


PUBSUB = {"kind": "pubsub", "name": "pubsub", "plugin": "in-memory-pubsub", "metadata": {"redeliverDelayMs": "100"}}


@pytest.fixture
def apps():
    started = []

    def start(**kwargs):
        app = SubscriberApp(**kwargs)
        started.append(app)
        return app
    yield start
    for app in started:
        app.close()


@pytest.fixture(autouse=True)
def needs_plugin(plugins_dir):
    if not any(plugins_dir.glob("in-memory-pubsub-*.so")):
        pytest.fail(f"no in-memory-pubsub plugin in {plugins_dir} (make build stages it)")


def wait_subscribed(sidecar, topic: str, app: SubscriberApp):
    """Publishes probes until the app sees one (molt subscribes asynchronously), then drains what arrived."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        publish(sidecar, topic, {"probe": True})
        try:
            app.next_post(timeout=0.5)
            app.quiet_for(0.3)
            return
        except queue.Empty:
            pass
    pytest.fail("molt never delivered to the app")


def test_programmatic_subscription_receives_events_in_order_as_cloudevents(molt, apps):
    app = apps(subscriptions=[{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port)])
    wait_subscribed(sidecar, "orders", app)
    for i in range(10):
        publish(sidecar, "orders", {"orderId": i})
    posts = app.posts_until(10)
    assert [p["event"]["data"] for p in posts] == [{"orderId": i} for i in range(10)]
    first = posts[0]
    assert first["path"] == "/orders"
    assert first["content_type"] == "application/cloudevents+json"
    assert first["event"]["topic"] == "orders" and first["event"]["pubsubname"] == "pubsub"
    assert first["event"]["specversion"] == "1.0" and first["event"]["id"]


def test_routes_default_is_used_and_retry_is_redelivered(molt, apps):
    app = apps(subscriptions=[{"pubsubname": "pubsub", "topic": "t", "routes": {"default": "/t-default",
                                                                               "rules": [{"match": "event.type == 'x'", "path": "/x"}]}}])
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port)])
    wait_subscribed(sidecar, "t", app)
    answers = iter([(200, b'{"status": "RETRY"}'), (500, b"")])
    app.answer = lambda event, path: next(answers, (200, b""))
    publish(sidecar, "t", {"n": 1})
    posts = app.posts_until(3)
    assert [p["path"] for p in posts] == ["/t-default"] * 3
    assert len({p["event"]["id"] for p in posts}) == 1  # the same event, delivered again
    assert app.quiet_for(1.0) == []


def test_404_and_drop_are_not_redelivered(molt, apps):
    app = apps(subscriptions=[{"pubsubname": "pubsub", "topic": "t", "route": "/t"}])
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port)])
    wait_subscribed(sidecar, "t", app)
    app.answer = lambda event, path: (404, b"") if event["data"]["n"] == 1 else (200, b'{"status": "DROP"}')
    publish(sidecar, "t", {"n": 1})
    publish(sidecar, "t", {"n": 2})
    assert [p["event"]["data"]["n"] for p in app.posts_until(2)] == [1, 2]
    assert app.quiet_for(1.0) == []


def test_app_down_at_first_then_up_gets_every_message(molt, apps, free_port, tmp_path):
    port = free_port()
    subscription = tmp_path / "subscription.yaml"
    subscription.write_text("""
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: early}
spec:
  pubsubname: pubsub
  topic: early
  routes: {default: /early}
""")
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(port), "--components", str(subscription)])
    time.sleep(1.0)  # molt is subscribed and cannot reach the app
    for i in range(5):
        publish(sidecar, "early", {"n": i})
    time.sleep(1.0)
    app = apps(port=port, subscriptions=[{"pubsubname": "pubsub", "topic": "late", "route": "/late"}])
    got = sorted(p["event"]["data"]["n"] for p in app.posts_until(5) if p["path"] == "/early")
    assert got == list(range(5))
    # The programmatic subscription, asked for again until the app answered, works too.
    wait_subscribed(sidecar, "late", app)


def test_declarative_subscription_yaml_and_scopes(molt, apps, tmp_path):
    app = apps(subscriptions=[])
    subscription = tmp_path / "subscriptions.yaml"
    subscription.write_text("""
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: mine}
spec: {pubsubname: pubsub, topic: mine, route: /mine}
scopes: [molt]
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: theirs}
spec:
  pubsubname: pubsub
  topic: theirs
  routes: {default: /theirs}
scopes: [another-app]
""")
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port), "--components", str(subscription)])
    wait_subscribed(sidecar, "mine", app)
    publish(sidecar, "theirs", {"n": 0})
    publish(sidecar, "mine", {"n": 1})
    post = app.next_post()
    assert post["path"] == "/mine" and post["event"]["data"] == {"n": 1}
    assert app.quiet_for(1.0) == []


def test_dead_letter_topic_gets_a_message_the_app_keeps_retrying(molt, apps):
    app = apps(subscriptions=[
        {"pubsubname": "pubsub", "topic": "work", "route": "/work", "deadLetterTopic": "work-dead", "metadata": {"maxRetries": "2"}},
        {"pubsubname": "pubsub", "topic": "work-dead", "route": "/dead"},
    ])
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port)])
    wait_subscribed(sidecar, "work-dead", app)
    wait_subscribed(sidecar, "work", app)
    app.answer = lambda event, path: (200, b'{"status": "RETRY"}') if path == "/work" and event["data"].get("poison") else (200, b"")
    publish(sidecar, "work", {"poison": True})
    posts = app.posts_until(4)
    assert [p["path"] for p in posts] == ["/work"] * 3 + ["/dead"]  # the first attempt and 2 retries
    assert posts[3]["event"]["data"] == {"poison": True}
    assert app.quiet_for(1.0) == []


def test_every_message_is_delivered_across_version_swaps(molt, apps):
    app = apps(subscriptions=[{"pubsubname": "pubsub", "topic": "swap", "route": "/swap"}])
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port)])
    wait_subscribed(sidecar, "swap", app)
    stop = threading.Event()
    published = []

    def publisher():
        n = 0
        while not stop.is_set():
            publish(sidecar, "swap", {"n": n})
            published.append(n)
            n += 1
            time.sleep(0.01)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        for version in ["1.1.0", "1.0.0", "1.1.0"]:
            time.sleep(0.3)
            result = sidecar.control_apply("pubsub", "pubsub", {"redeliverDelayMs": "100"}, plugin="in-memory-pubsub", version=version)
            assert result.action != "failed", result
    finally:
        stop.set()
        thread.join()
    got = set()
    deadline = time.monotonic() + 30
    while not set(published) <= got and time.monotonic() < deadline:
        try:
            got.add(app.next_post(timeout=0.5)["event"]["data"].get("n"))
        except queue.Empty:
            pass
    assert set(published) - got == set()  # redeliveries (duplicates) are allowed, losses are not


def test_a_pubsub_added_later_through_the_control_api_gets_its_subscriptions(molt, apps):
    app = apps(subscriptions=[{"pubsubname": "later", "topic": "t", "route": "/t"}])
    sidecar = molt([], extra_args=["--app-port", str(app.port)])
    time.sleep(0.5)  # molt asked the app and is retrying the subscribe
    result = sidecar.control_apply("pubsub", "later", {"redeliverDelayMs": "100"}, plugin="in-memory-pubsub")
    assert result.action != "failed", result
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        publish(sidecar, "t", {"n": 1}, pubsub="later")
        try:
            post = app.next_post(timeout=0.5)
            break
        except queue.Empty:
            pass
    else:
        pytest.fail("molt never subscribed to the pubsub added later")
    assert post["path"] == "/t" and post["event"]["pubsubname"] == "later"


def test_a_streaming_subscription_dead_letters_after_max_retries(molt):
    from test_pubsub import Subscriber
    sidecar = molt([PUBSUB])
    dead = Subscriber(sidecar, "pubsub", "s-dead")
    # Subscriber sends no dead_letter_topic: the work stream is opened by hand, with one.
    import queue as q
    from dapr.proto.runtime.v1 import pubsub_pb2, appcallback_pb2
    outgoing = q.Queue()
    outgoing.put(pubsub_pb2.SubscribeTopicEventsRequestAlpha1(initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(
        pubsub_name="pubsub", topic="s", metadata={"maxRetries": "1"}, dead_letter_topic="s-dead")))
    call = sidecar.dapr_stub().SubscribeTopicEventsAlpha1(iter(outgoing.get, None), metadata=sidecar.app_metadata())
    assert next(call).HasField("initial_response")
    try:
        publish(sidecar, "s", {"poison": True})
        for _ in range(2):  # the first delivery and one retry
            event = next(call).event_message
            assert json.loads(event.data) == {"poison": True}
            outgoing.put(pubsub_pb2.SubscribeTopicEventsRequestAlpha1(event_processed=pubsub_pb2.SubscribeTopicEventsRequestProcessedAlpha1(
                id=event.id, status=appcallback_pb2.TopicEventResponse(status=appcallback_pb2.TopicEventResponse.RETRY))))
        dead_event = dead.receive()
        assert json.loads(dead_event.data) == {"poison": True} and dead_event.id == event.id
        dead.answer(dead_event.id, appcallback_pb2.TopicEventResponse.SUCCESS)
    finally:
        call.cancel()
        dead.close()
