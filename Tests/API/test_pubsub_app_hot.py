"""Declarative subscriptions (Dapr `kind: Subscription`) that change while molt runs: a file of the file agent, an
etcd key, or the `--components` files re-read on SIGHUP. A new one starts delivering its topic to the app, a
changed route takes effect, a removed one stops, and meanwhile every other subscription (programmatic or declared
by another source) keeps receiving every message published (none lost; at-least-once, so duplicates are allowed).
As Dapr, the app's programmatic subscription wins over a declarative one to the same topic; between two
declarative sources the first keeps the topic and the later one is refused with a warning naming both."""

import queue
import signal
import threading
import time

import pytest

from conftest import common_key, wait_for
from test_pubsub_app import PUBSUB, SubscriberApp, needs_plugin, publish  # noqa: F401 (needs_plugin: an autouse fixture)


def subscription_yaml(name: str, topic: str, route: str) -> str:
    return f"""apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: {name}}}
spec:
  pubsubname: pubsub
  topic: {topic}
  routes: {{default: {route}}}
"""


class Recorder:
    """Moves the app's POSTs into a list as they arrive (`paths()`, `data(path)`, `seen_since(index, path)`)."""

    def __init__(self, app: SubscriberApp):
        self.app = app
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while self.running:
            try:
                post = self.app.posts.get(timeout=0.1)
            except queue.Empty:
                continue
            with self.lock:
                self.posts.append(post)

    def count(self) -> int:
        with self.lock:
            return len(self.posts)

    def since(self, index: int) -> list[dict]:
        with self.lock:
            return list(self.posts[index:])

    def stop(self):
        self.running = False
        self.thread.join()


class Publisher:
    """Publishes `{"n": i}` to each of `topics` every few milliseconds until stopped; `sent[topic]` counts them."""

    def __init__(self, sidecar, topics: list[str]):
        self.sidecar, self.topics = sidecar, topics
        self.sent = {topic: 0 for topic in topics}
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            for topic in self.topics:
                publish(self.sidecar, topic, {"n": self.sent[topic], "topic": topic})
                self.sent[topic] += 1
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()


def wait_route(sidecar, recorder: Recorder, topic: str, route: str) -> int:
    """Publishes probes to `topic` until one reaches `route`; returns the recorder index of that POST."""
    deadline = time.monotonic() + 20
    start = recorder.count()
    while time.monotonic() < deadline:
        publish(sidecar, topic, {"probe": route})
        time.sleep(0.2)
        for offset, post in enumerate(recorder.since(start)):
            if post["path"] == route:
                return start + offset
    pytest.fail(f"no event of topic {topic} reached {route}")


def assert_quiet(sidecar, recorder: Recorder, topic: str, routes: set[str]):
    """After a settling second, events published to `topic` reach none of `routes`."""
    time.sleep(1.0)
    start = recorder.count()
    for i in range(5):
        publish(sidecar, topic, {"after": i})
    time.sleep(1.5)
    assert [p for p in recorder.since(start) if p["path"] in routes] == []


def assert_every_message(recorder: Recorder, publisher: Publisher, topic: str, route: str):
    """Every `{"n": i}` published to `topic` reached `route` (at least once)."""
    def missing():
        got = {p["event"]["data"]["n"] for p in recorder.since(0)
               if p["path"] == route and isinstance(p["event"].get("data"), dict) and p["event"]["data"].get("topic") == topic}
        return sorted(set(range(publisher.sent[topic])) - got)
    wait_for(lambda: not missing(), f"every message of {topic} at {route}", timeout=20)


def run_hot_scenario(sidecar, recorder: Recorder, declare, retract):
    """The scenario shared by every source: `declare(route)` writes the `hot` subscription with `route`,
    `retract()` removes it; `steady` (programmatic) and `other` (declared elsewhere) must lose nothing."""
    wait_route(sidecar, recorder, "steady", "/steady")
    wait_route(sidecar, recorder, "other", "/other")
    publisher = Publisher(sidecar, ["steady", "other"])
    try:
        declare("/hot-a")
        wait_route(sidecar, recorder, "hot", "/hot-a")
        declare("/hot-b")
        first_b = wait_route(sidecar, recorder, "hot", "/hot-b")
        # The old route was stopped before the new one started: nothing reaches it afterwards.
        assert [p for p in recorder.since(first_b) if p["path"] == "/hot-a"] == []
        retract()
        assert_quiet(sidecar, recorder, "hot", {"/hot-a", "/hot-b"})
    finally:
        publisher.stop()
    assert_every_message(recorder, publisher, "steady", "/steady")
    assert_every_message(recorder, publisher, "other", "/other")
    assert publisher.sent["steady"] > 20


@pytest.fixture
def app():
    started = SubscriberApp(subscriptions=[{"pubsubname": "pubsub", "topic": "steady", "route": "/steady"}])
    recorder = Recorder(started)
    yield recorder
    recorder.stop()
    started.close()


def test_file_agent_subscription_added_changed_and_deleted_loses_no_other_message(molt, app, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "other.yaml").write_text(subscription_yaml("other", "other", "/other"))
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port), "--agents-file-directory", str(watched)])
    hot = watched / "hot.yaml"
    run_hot_scenario(sidecar, app, declare=lambda route: hot.write_text(subscription_yaml("hot", "hot", route)),
                     retract=hot.unlink)
    assert "are not run yet" not in sidecar.stderr()


def test_sighup_rereads_the_subscriptions_of_the_components_files(molt, app, tmp_path):
    # One file, one source: `hot` comes and goes beside `other`, which is not restarted.
    subscriptions = tmp_path / "subscriptions.yaml"
    other = subscription_yaml("other", "other", "/other")
    subscriptions.write_text(other)
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port), "--components", str(subscriptions)])

    def reload(text: str):
        subscriptions.write_text(text)
        sidecar.process.send_signal(signal.SIGHUP)

    run_hot_scenario(sidecar, app, declare=lambda route: reload(other + "---\n" + subscription_yaml("hot", "hot", route)),
                     retract=lambda: reload(other))


def test_etcd_key_subscription_added_changed_and_deleted_loses_no_other_message(molt, app, etcd):
    server = etcd()
    server.put(common_key("other"), subscription_yaml("other", "other", "/other"))
    sidecar = molt([PUBSUB], app_id="orders", extra_args=server.molt_args() + ["--app-port", str(app.app.port)])
    key = common_key("hot")
    run_hot_scenario(sidecar, app, declare=lambda route: server.put(key, subscription_yaml("hot", "hot", route)),
                     retract=lambda: server.delete(key))


def test_precedence_programmatic_wins_and_the_first_declaring_file_keeps_its_topic(molt, app, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port), "--agents-file-directory", str(watched)])
    wait_route(sidecar, app, "steady", "/steady")
    # The app's own subscription to `steady` wins over a file declaring it (Dapr's rule).
    (watched / "steady.yaml").write_text(subscription_yaml("steady-file", "steady", "/steady-file"))
    wait_for(lambda: "the app's wins" in sidecar.stderr(), "the precedence warning")
    assert_quiet(sidecar, app, "steady", {"/steady-file"})

    # Two files declaring one topic: the first keeps it, the later one is refused naming both.
    first, second = watched / "a-first.yaml", watched / "b-second.yaml"
    first.write_text(subscription_yaml("first", "shared", "/first"))
    wait_route(sidecar, app, "shared", "/first")
    second.write_text(subscription_yaml("second", "shared", "/second"))
    wait_for(lambda: "already declared by another source" in sidecar.stderr(), "the conflict warning")
    line = next(line for line in sidecar.stderr().splitlines() if "already declared by another source" in line)
    assert str(first) in line and str(second) in line
    assert_quiet(sidecar, app, "shared", {"/second"})
    # The first one goes: the second takes the topic over.
    first.unlink()
    wait_route(sidecar, app, "shared", "/second")
