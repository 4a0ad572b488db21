"""Routing rules of classic subscriptions, as Dapr evaluates them (dapr/dapr pkg/runtime/pubsub, pkg/runtime/subscription
findMatchingRoute): `routes.rules` are tried in order, each `match` a CEL expression over `event` (the CloudEvent, its
data parsed JSON), the first that holds gives the path, else `routes.default`; an event no rule matches without a default
is dropped; a match that cannot be evaluated for an event (a missing field) sends it to the dead-letter topic. A match
that does not compile is refused when the subscription is read: a YAML file names the field, its line and the column
in the expression; an entry of GET /dapr/subscribe is skipped with the reason logged, the others work. Real molt and
the in-memory-pubsub plugin; the app is a Python HTTP server."""

import http.client
import json
import subprocess

import pytest

from test_pubsub_app import PUBSUB, SubscriberApp, apps, needs_plugin, publish, wait_subscribed  # noqa: F401 (fixtures)

ROUTED = """
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: orders}
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
      - match: event.type == "order.created" && has(event.data.total) && event.data.total > 100
        path: /orders/large
      - match: event.type.startsWith("order.") && has(event.data.total)
        path: /orders/other
    default: /orders
"""

RULES_ONLY = """
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: widgets}
spec:
  pubsubname: pubsub
  topic: widgets
  deadLetterTopic: widgets-dead
  routes:
    rules:
      - match: event.data.kind == "widget"
        path: /widgets
"""


def publish_cloudevent(sidecar, topic: str, event: dict, pubsub: str = "pubsub"):
    """Publishes the app's own CloudEvent (Dapr keeps its `type` and extensions)."""
    connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
    connection.request("POST", f"/v1.0/publish/{pubsub}/{topic}", body=json.dumps(event),
                       headers={"Content-Type": "application/cloudevents+json"})
    status = connection.getresponse().status
    connection.close()
    assert status == 204, status


def order(event_type: str, data, event_id: str) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "checkout", "type": event_type,
            "datacontenttype": "application/json", "data": data}


def test_declarative_rules_route_each_event_to_the_first_matching_path_then_the_default(molt, apps, tmp_path):
    app = apps(subscriptions=[])
    (tmp_path / "subscription.yaml").write_text(ROUTED)
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port), "--components", str(tmp_path / "subscription.yaml")])
    wait_subscribed(sidecar, "orders", app)  # probes: published with Dapr's type, no total: the default
    publish_cloudevent(sidecar, "orders", order("order.created", {"total": 150}, "large"))
    publish_cloudevent(sidecar, "orders", order("order.created", {"total": 20}, "small"))
    publish_cloudevent(sidecar, "orders", order("order.paid", {"total": 500}, "paid"))
    publish_cloudevent(sidecar, "orders", order("order.created", {"note": "no total"}, "untotalled"))
    publish(sidecar, "orders", {"total": 999})  # a plain JSON publish: type com.dapr.event.sent
    posts = app.posts_until(5)
    assert [(p["event"]["id"], p["path"]) for p in posts[:4]] == [
        ("large", "/orders/large"), ("small", "/orders/other"), ("paid", "/orders/other"), ("untotalled", "/orders")]
    assert posts[4]["path"] == "/orders" and posts[4]["event"]["data"] == {"total": 999}
    assert all(p["content_type"] == "application/cloudevents+json" for p in posts)
    assert app.quiet_for(0.5) == []


def test_rules_without_a_default_dead_letter_unmatched_and_failed_events(molt, apps, tmp_path):
    app = apps(subscriptions=[{"pubsubname": "pubsub", "topic": "widgets-dead", "route": "/dead"}])
    (tmp_path / "subscription.yaml").write_text(RULES_ONLY)
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port), "--components", str(tmp_path / "subscription.yaml")])
    wait_subscribed(sidecar, "widgets-dead", app)
    # Subscribed once a widget arrives (the declarative subscription starts asynchronously).
    for attempt in range(100):
        publish(sidecar, "widgets", {"kind": "widget", "n": attempt})
        try:
            if app.next_post(timeout=0.3)["path"] == "/widgets":
                break
        except Exception:
            pass
    app.quiet_for(0.5)
    publish(sidecar, "widgets", {"kind": "gadget"})   # no rule matches, no default: dead-lettered (dropped without one)
    publish(sidecar, "widgets", {"no_kind": True})    # the match fails (no such key): dead-lettered, as Dapr does
    publish(sidecar, "widgets", {"kind": "widget", "n": "last"})
    posts = app.posts_until(3)
    assert sorted((p["path"], json.dumps(p["event"]["data"])) for p in posts) == sorted([
        ("/dead", json.dumps({"kind": "gadget"})), ("/dead", json.dumps({"no_kind": True})),
        ("/widgets", json.dumps({"kind": "widget", "n": "last"}))])
    assert app.quiet_for(1.0) == []
    assert "error finding matching route for pub/sub event" in sidecar.stderr()
    assert "no such key: kind" in sidecar.stderr()


def test_programmatic_rules_route_and_a_malformed_match_skips_only_its_entry(molt, apps):
    app = apps(subscriptions=[
        {"pubsubname": "pubsub", "topic": "a", "routes": {
            "rules": [{"match": "has(event.data.priority) && event.data.priority >= 5", "path": "/a/urgent"},
                      {"match": "has(event.data.tags) && event.data.tags.exists(t, t == 'vip')", "path": "/a/vip"}],
            "default": "/a"}},
        {"pubsubname": "pubsub", "topic": "only", "routes": {"rules": [{"match": "event.data.n == 1", "path": "/only"}]}},
        {"pubsubname": "pubsub", "topic": "broken", "routes": {"rules": [{"match": "event.data.x = 1", "path": "/x"}], "default": "/b"}},
        {"pubsubname": "pubsub", "topic": "c", "route": "/c"},
    ])
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port)])
    wait_subscribed(sidecar, "c", app)
    wait_subscribed(sidecar, "a", app)
    publish(sidecar, "a", {"priority": 7, "tags": []})
    publish(sidecar, "a", {"priority": 1, "tags": ["vip"]})
    publish(sidecar, "a", {"priority": 1, "tags": ["new"]})
    publish(sidecar, "broken", {"x": 1})
    publish(sidecar, "c", {"n": 1})
    posts = app.posts_until(4)
    assert [p["path"] for p in posts if p["path"] != "/c"] == ["/a/urgent", "/a/vip", "/a"]  # one topic: in order
    assert [p["path"] for p in posts if p["path"] == "/c"] == ["/c"]
    # Rules without a default or a dead-letter topic: an event no rule matches is dropped (in order: n=2 went first).
    for attempt in range(100):
        publish(sidecar, "only", {"n": 2, "attempt": attempt})
        publish(sidecar, "only", {"n": 1, "attempt": attempt})
        try:
            post = app.next_post(timeout=0.3)
            break
        except Exception:
            pass
    assert post["path"] == "/only" and post["event"]["data"]["n"] == 1
    assert app.quiet_for(0.5) == []  # nothing subscribed to "broken"
    assert ("GET /dapr/subscribe: entry 2 (pubsub 'pubsub', topic 'broken'): routes.rules[0].match 'event.data.x = 1' "
            "does not compile: column 14: '=' is not an operator (did you mean '=='?); skipped") in sidecar.stderr()


BROKEN = ROUTED.replace('event.data.total > 100', 'event.data.total >> 100')


def test_a_malformed_match_in_a_subscription_file_is_refused_naming_the_field_and_the_position(molt_bin, plugins_dir, tmp_path):
    path = tmp_path / "subscription.yaml"
    path.write_text(BROKEN)
    expected = (f"{path}:10:16: spec.routes.rules[0].match: the CEL expression "
                "'event.type == \"order.created\" && has(event.data.total) && event.data.total >> 100' does not compile: "
                "column 77: unexpected '>'")
    env = {"PATH": "/usr/bin:/bin"}
    checked = subprocess.run([str(molt_bin), "config", "check", "--plugins-directory", str(plugins_dir), str(path)],
                             capture_output=True, text=True, timeout=30, env=env)
    assert checked.returncode == 1 and expected in checked.stderr, checked.stderr
    served = subprocess.run([str(molt_bin), "serve", "--plugins-directory", str(plugins_dir), "--components", str(path),
                             "--grpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--control-address", "127.0.0.1:0",
                             "--admin-address", "127.0.0.1:0"], capture_output=True, text=True, timeout=60, env=env)
    assert served.returncode != 0 and expected in served.stderr, served.stderr


def test_config_check_lists_each_subscription_with_its_routes_in_order(molt_bin, plugins_dir, tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(ROUTED + "---" + RULES_ONLY)
    checked = subprocess.run([str(molt_bin), "config", "check", "--plugins-directory", str(plugins_dir), str(path)],
                             capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert checked.returncode == 0, checked.stderr
    assert (f"{path}:2:1: subscription 'orders': pubsub 'pubsub', topic 'orders', routes: "
            "if event.type == \"order.created\" && has(event.data.total) && event.data.total > 100 -> /orders/large; "
            "if event.type.startsWith(\"order.\") && has(event.data.total) -> /orders/other; default -> /orders") in checked.stderr
    assert ("subscription 'widgets': pubsub 'pubsub', topic 'widgets', routes: if event.data.kind == \"widget\" -> /widgets; "
            "no default (an event no rule matches is dropped)") in checked.stderr
    assert f"{path}: OK (component file, 0 components, 2 subscriptions)" in checked.stderr


def test_control_api_subscriptions_route_by_their_rules_and_a_malformed_match_is_invalid_argument(molt, apps, molt_bin, tmp_path):
    import grpc
    app = apps(subscriptions=[])
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.port)])
    pb = sidecar.protos.control_pb2

    def apply(match: str):
        subscription = pb.Subscription(name="routed", pubsubname="pubsub", topic="ctl", default_route="/ctl",
                                       rules=[pb.SubscriptionRule(match=match, path="/ctl/big")])
        return sidecar.control_stub().ApplySubscription(pb.ApplySubscriptionRequest(subscription=subscription), timeout=30)

    with pytest.raises(grpc.RpcError) as refused:
        apply("has(event.data.size) && event.data.size > 10 > 2")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("subscription.rules[0].match: the CEL expression 'has(event.data.size) && event.data.size > 10 > 2' does not compile: "
            "column 46: no operator '>' for (bool, int)") in refused.value.details()
    assert apply("has(event.data.size) && event.data.size > 10").applied[0].action == "added"
    wait_subscribed(sidecar, "ctl", app)
    publish(sidecar, "ctl", {"size": 50})
    publish(sidecar, "ctl", {"size": 5})
    assert [p["path"] for p in app.posts_until(2)] == ["/ctl/big", "/ctl"]
    # The CLI with a file: the same check, naming the file, the line and the field.
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    done = subprocess.run([str(molt_bin), "subscriptions", "apply", "--control-address", f"127.0.0.1:{sidecar.control_port}",
                           "-f", str(broken)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and f"{broken}:10:16: spec.routes.rules[0].match" in done.stderr, done.stderr
