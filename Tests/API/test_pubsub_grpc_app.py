"""Classic pub/sub subscriptions delivered to a gRPC app (`--app-protocol grpc`), as Dapr delivers them (dapr/dapr
pkg/runtime/pubsub GetSubscriptionsGRPC, pkg/runtime/subscription/postman/grpc): molt asks the app's
`dapr.proto.runtime.v1.AppCallback/ListTopicSubscriptions` (again while the app is not up; UNIMPLEMENTED: none),
reads declarative `kind: Subscription` files, and calls `OnTopicEvent` with each event as a TopicEventRequest. The
answer's status SUCCESS acks, RETRY redelivers, DROP drops (to the deadLetterTopic when there is one); after
`maxRetries` RETRY answers the event goes to the deadLetterTopic. The apps: the official Python SDK's gRPC app
(`dapr.ext.grpc.App`) and a grpcio servicer on the SDK's generated stubs. Real molt and the in-memory-pubsub plugin."""

import json
import queue
import threading
import time
from concurrent import futures

import grpc
import pytest
from dapr.clients.grpc._response import TopicEventResponse
from dapr.ext.grpc import App, SubscriptionMessage
from dapr.proto.runtime.v1 import appcallback_pb2, appcallback_pb2_grpc

from test_pubsub_app import PUBSUB, TIMEOUT_S, publish

Status = appcallback_pb2.TopicEventResponse.TopicEventResponseStatus


@pytest.fixture(autouse=True)
def needs_plugin(plugins_dir):
    if not any(plugins_dir.glob("in-memory-pubsub-*.so")):
        pytest.fail(f"no in-memory-pubsub plugin in {plugins_dir} (make build stages it)")


class SDKApp:
    """The Python SDK's gRPC app on `port`; `events` records (topic, SubscriptionMessage) of every handler call."""

    def __init__(self, port: int):
        self.port = port
        self.app = App()
        self.events: "queue.Queue[tuple[str, SubscriptionMessage]]" = queue.Queue()

    def subscribe(self, topic: str, answer=lambda event: None, **options):
        def handler(event: SubscriptionMessage):
            self.events.put((topic, event))
            return answer(event)
        self.app.subscribe(pubsub_name="pubsub", topic=topic, **options)(handler)

    def start(self):
        threading.Thread(target=self.app.run, args=(self.port, "127.0.0.1"), daemon=True).start()
        return self

    def next_events(self, count: int, timeout: float = TIMEOUT_S) -> list:
        deadline = time.monotonic() + timeout
        return [self.events.get(timeout=max(0.01, deadline - time.monotonic())) for _ in range(count)]

    def quiet_for(self, seconds: float) -> list:
        time.sleep(seconds)
        arrived = []
        while not self.events.empty():
            arrived.append(self.events.get_nowait())
        return arrived

    def close(self):
        self.app.stop()


class ServicerApp(appcallback_pb2_grpc.AppCallbackServicer):
    """A grpcio AppCallback servicer: lists `subscriptions` (None: UNIMPLEMENTED, the generated default), records
    every TopicEventRequest and answers `answer(request)` (a status, or None for UNIMPLEMENTED)."""

    def __init__(self, port: int, subscriptions=None):
        self.port = port
        self.subscriptions = subscriptions
        self.requests: "queue.Queue" = queue.Queue()
        self.answer = lambda request: Status.SUCCESS
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        appcallback_pb2_grpc.add_AppCallbackServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def ListTopicSubscriptions(self, request, context):
        if self.subscriptions is None:
            return super().ListTopicSubscriptions(request, context)
        return appcallback_pb2.ListTopicSubscriptionsResponse(subscriptions=[
            appcallback_pb2.TopicSubscription(pubsub_name="pubsub", topic=topic, routes=appcallback_pb2.TopicRoutes(default=path))
            for topic, path in self.subscriptions])

    def OnTopicEvent(self, request, context):
        self.requests.put(request)
        status = self.answer(request)
        if status is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"no handler for {request.path}")
        return appcallback_pb2.TopicEventResponse(status=status)

    def next_requests(self, count: int, timeout: float = TIMEOUT_S) -> list:
        deadline = time.monotonic() + timeout
        return [self.requests.get(timeout=max(0.01, deadline - time.monotonic())) for _ in range(count)]

    def quiet_for(self, seconds: float) -> list:
        time.sleep(seconds)
        arrived = []
        while not self.requests.empty():
            arrived.append(self.requests.get_nowait())
        return arrived

    def close(self):
        self.server.stop(0)


@pytest.fixture
def apps():
    started = []

    def keep(app):
        started.append(app)
        return app
    yield keep
    for app in started:
        app.close()


def grpc_app_args(port: int) -> list[str]:
    return ["--app-port", str(port), "--app-protocol", "grpc"]


def wait_subscribed(sidecar, topic: str, next_event):
    """Publishes probes until the app sees one (molt subscribes asynchronously), then lets the rest drain."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        publish(sidecar, topic, {"probe": True})
        try:
            next_event(0.5)
            time.sleep(0.3)
            return
        except queue.Empty:
            pass
    pytest.fail("molt never delivered to the app")


def drain(app):
    app.quiet_for(0.3)


def test_the_sdk_apps_subscription_gets_events_in_order_as_topic_event_requests(molt, apps, free_port):
    app = apps(SDKApp(free_port()))
    app.subscribe("orders")
    app.start()
    sidecar = molt([PUBSUB], extra_args=grpc_app_args(app.port))
    wait_subscribed(sidecar, "orders", lambda timeout: app.events.get(timeout=timeout))
    drain(app)
    for i in range(10):
        publish(sidecar, "orders", {"orderId": i})
    events = [event for _, event in app.next_events(10)]
    assert [event.data() for event in events] == [{"orderId": i} for i in range(10)]
    first = events[0]
    assert first.id() and first.type() == "com.dapr.event.sent" and first.source() and first.spec_version() == "1.0"
    assert first.data_content_type() == "application/json" and first.topic() == "orders" and first.pubsub_name() == "pubsub"
    extensions = first.extensions()
    assert extensions["pubsubname"] == "pubsub" and extensions["topic"] == "orders", extensions
    assert "data" not in extensions and "id" not in extensions
    assert len({event.id() for event in events}) == 10
    assert "app_channel" in sidecar.stderr() and "grpc 127.0.0.1" in sidecar.stderr()


def test_retry_is_redelivered_then_acked(molt, apps, free_port):
    app = apps(SDKApp(free_port()))
    answers = {"retried": False}

    def answer(event):
        if event.data().get("flaky") and not answers["retried"]:
            answers["retried"] = True
            return TopicEventResponse("retry")
        return TopicEventResponse("success")
    app.subscribe("t", answer)
    app.start()
    sidecar = molt([PUBSUB], extra_args=grpc_app_args(app.port))
    wait_subscribed(sidecar, "t", lambda timeout: app.events.get(timeout=timeout))
    drain(app)
    publish(sidecar, "t", {"flaky": True})
    events = [event for _, event in app.next_events(2)]
    assert [event.data() for event in events] == [{"flaky": True}] * 2
    assert events[0].id() == events[1].id()  # the same event, delivered again
    assert app.quiet_for(1.0) == []  # then acknowledged


def test_drop_goes_to_the_dead_letter_topic_and_retries_are_bounded(molt, apps, free_port):
    app = apps(SDKApp(free_port()))
    def answer(event):
        data = event.data()
        return TopicEventResponse("drop" if data.get("bad") else "success" if data.get("probe") else "retry")
    app.subscribe("work", answer, metadata={"maxRetries": "2"}, dead_letter_topic="work-dead")
    app.subscribe("work-dead")
    app.start()
    sidecar = molt([PUBSUB], extra_args=grpc_app_args(app.port))
    wait_subscribed(sidecar, "work-dead", lambda timeout: app.events.get(timeout=timeout))
    drain(app)
    wait_subscribed(sidecar, "work", lambda timeout: app.events.get(timeout=timeout))
    drain(app)
    publish(sidecar, "work", {"bad": True})
    got = [(topic, event.data()) for topic, event in app.next_events(2)]
    assert got == [("work", {"bad": True}), ("work-dead", {"bad": True})]  # DROP: not retried, dead-lettered
    publish(sidecar, "work", {"poison": True})
    got = [(topic, event.data()) for topic, event in app.next_events(4)]
    assert got == [("work", {"poison": True})] * 3 + [("work-dead", {"poison": True})]  # the first attempt and 2 retries
    assert app.quiet_for(1.0) == []


def test_declarative_subscription_is_delivered_over_grpc_with_its_route_as_path(molt, apps, free_port, tmp_path):
    app = apps(ServicerApp(free_port()))  # ListTopicSubscriptions UNIMPLEMENTED: no programmatic subscriptions
    subscription = tmp_path / "subscriptions.yaml"
    subscription.write_text("""
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: mine}
spec:
  pubsubname: pubsub
  topic: mine
  routes: {default: /mine}
""")
    sidecar = molt([PUBSUB], extra_args=grpc_app_args(app.port) + ["--components", str(subscription)])
    wait_subscribed(sidecar, "mine", lambda timeout: app.requests.get(timeout=timeout))
    drain(app)
    publish(sidecar, "mine", {"n": 1})
    [request] = app.next_requests(1)
    assert request.path == "/mine" and request.topic == "mine" and request.pubsub_name == "pubsub"
    assert json.loads(request.data) == {"n": 1} and request.data_content_type == "application/json"
    assert request.spec_version == "1.0" and request.id
    assert request.extensions["pubsubname"] == "pubsub"
    # UNIMPLEMENTED from OnTopicEvent is non-retriable, as in Dapr: dropped, not delivered again.
    app.answer = lambda request: None
    publish(sidecar, "mine", {"n": 2})
    assert [json.loads(r.data) for r in app.next_requests(1)] == [{"n": 2}]
    assert app.quiet_for(1.0) == []
    assert "non-retriable error returned from app" in sidecar.stderr()


def test_app_down_at_first_then_up_gets_every_message(molt, apps, free_port, tmp_path):
    port = free_port()
    subscription = tmp_path / "subscription.yaml"
    subscription.write_text("""
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: early}
spec: {pubsubname: pubsub, topic: early, route: /early}
""")
    sidecar = molt([PUBSUB], extra_args=grpc_app_args(port) + ["--components", str(subscription)])
    time.sleep(1.0)  # molt is subscribed and cannot reach the app
    for i in range(5):
        publish(sidecar, "early", {"n": i})
    time.sleep(1.0)
    app = apps(ServicerApp(port, subscriptions=[("late", "")]))
    got = sorted(json.loads(r.data)["n"] for r in app.next_requests(5) if r.path == "/early")
    assert got == list(range(5))
    # The programmatic subscription, asked for again until the app answered, works too (path "": no routes).
    wait_subscribed(sidecar, "late", lambda timeout: app.requests.get(timeout=timeout))
    drain(app)
    publish(sidecar, "late", {"n": "late"})
    [late] = app.next_requests(1)
    assert json.loads(late.data) == {"n": "late"} and late.path == "" and late.topic == "late"
