"""Dapr's configuration API against the etcd-config plugin (kind configuration: the keys under a prefix in a real
etcd): the Dapr Python SDK's `get_configuration` / `subscribe_configuration` / `unsubscribe_configuration`,
grpcio (GetConfiguration, SubscribeConfiguration, UnsubscribeConfiguration and their Alpha1 names) and HTTP
`GET /v1.0/configuration/{store}?key=…`, with Dapr's answers (dapr/dapr pkg/api/grpc/grpc.go, pkg/api/http/http.go,
pkg/messages): an unknown store (400 ERR_CONFIGURATION_STORE_NOT_FOUND / INVALID_ARGUMENT), no store at all
(500 ERR_CONFIGURATION_STORE_NOT_CONFIGURED / FAILED_PRECONDITION), no item found (HTTP 204), the first subscription
message carrying only the id, an unknown id on unsubscribe (ok false and Dapr's message), and HTTP subscribe without
an app channel (500 ERR_APP_CHANNEL_NIL). Subscriptions: a put and a delete made in etcd arrive (a deleted item
with value "" and version ""), they survive a reload of the store, unsubscribe ends the stream, a client that
disappears takes its subscription with it, and an open subscription does not hold up a graceful shutdown."""

import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import pytest

RPC_TIMEOUT_S = 15
UPDATE_TIMEOUT_S = 20.0  # an etcd change to a subscriber: the plugin's watch, then molt's store watch (debug build)
PREFIX = "/app/config/"
STORE = "appconfig"


@pytest.fixture
def etcd_config_plugin(plugins_dir):
    if not any(plugins_dir.glob("etcd-config-*.so")):
        pytest.fail(f"no etcd-config plugin in {plugins_dir} (make build stages it; branch etcd-config)")


def config_store(server, name=STORE, **metadata):
    return {"kind": "configuration", "name": name, "plugin": "etcd-config",
            "metadata": {"endpoints": server.endpoint, "keyPrefix": PREFIX, **metadata}}


@pytest.fixture
def server(etcd):
    server = etcd()
    server.put(PREFIX + "color", "blue")
    server.put(PREFIX + "size", "10")
    server.put("/elsewhere/color", "red")  # outside the prefix: never an item
    return server


@pytest.fixture
def sidecar(molt, server, etcd_config_plugin):
    return molt([config_store(server)])


def version_of(server, key):
    """etcd's mod_revision of `key` under the prefix, which the plugin gives as the item's version."""
    kv, pb = server._stubs()
    response = kv.Range(pb.RangeRequest(key=(PREFIX + key).encode()), timeout=RPC_TIMEOUT_S)
    return str(response.kvs[0].mod_revision)


def grpc_get(sidecar, keys=(), store=STORE, method="GetConfiguration"):
    from dapr.proto.runtime.v1 import configuration_pb2
    request = configuration_pb2.GetConfigurationRequest(store_name=store, keys=list(keys))
    response = getattr(sidecar.dapr_stub(), method)(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)
    return {key: (item.value, item.version) for key, item in response.items.items()}


def grpc_unsubscribe(sidecar, subscription_id, store=STORE, method="UnsubscribeConfiguration"):
    from dapr.proto.runtime.v1 import configuration_pb2
    request = configuration_pb2.UnsubscribeConfigurationRequest(store_name=store, id=subscription_id)
    return getattr(sidecar.dapr_stub(), method)(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)


def grpc_code(call):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


class Subscription:
    """A grpcio SubscribeConfiguration call read by a background thread: `messages` gets each response as
    {"id": …, "items": {key: (value, version)}}, then the call's final status code (or the RpcError's)."""

    def __init__(self, sidecar, keys=(), store=STORE, method="SubscribeConfiguration"):
        from dapr.proto.runtime.v1 import configuration_pb2
        request = configuration_pb2.SubscribeConfigurationRequest(store_name=store, keys=list(keys))
        self.call = getattr(sidecar.dapr_stub(), method)(request, metadata=sidecar.app_metadata())
        self.messages: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for response in self.call:
                self.messages.put({"id": response.id,
                                   "items": {k: (v.value, v.version) for k, v in response.items.items()}})
            self.messages.put(self.call.code())
        except grpc.RpcError as error:
            self.messages.put(error.code())

    def next(self, timeout=UPDATE_TIMEOUT_S):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no SubscribeConfiguration message in {timeout} s", pytrace=False)

    def first(self):
        message = self.next()
        assert isinstance(message, dict), f"the subscription ended before its first message: {message}"
        return message

    def update_with(self, key, timeout=UPDATE_TIMEOUT_S):
        """The next update naming `key` (updates of other keys skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.1, deadline - time.monotonic()))
            assert isinstance(message, dict), f"the subscription ended: {message}"
            if key in message["items"]:
                return message

    def cancel(self):
        self.call.cancel()
        self.thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# Get


def test_the_sdk_gets_every_item_some_items_and_leaves_missing_keys_out(sidecar, server):
    seen = sidecar.run_sdk(f"""
        from dapr.clients import DaprClient
        def plain(response):
            return {{k: [v.value, v.version] for k, v in response.items.items()}}
        with DaprClient() as client:
            emit(every=plain(client.get_configuration("{STORE}", [])),
                 some=plain(client.get_configuration("{STORE}", ["color"])),
                 missing=plain(client.get_configuration("{STORE}", ["color", "nope"])),
                 none=plain(client.get_configuration("{STORE}", ["nope"])))
    """)
    color, size = ["blue", version_of(server, "color")], ["10", version_of(server, "size")]
    assert seen["every"] == {"color": color, "size": size}, seen
    assert seen["some"] == {"color": color}, seen
    assert seen["missing"] == {"color": color}, seen
    assert seen["none"] == {}, seen


def test_grpc_get_and_its_alpha1_name(sidecar, server):
    expected = {"color": ("blue", version_of(server, "color")), "size": ("10", version_of(server, "size"))}
    assert grpc_get(sidecar) == expected
    assert grpc_get(sidecar, method="GetConfigurationAlpha1") == expected
    assert grpc_get(sidecar, ["size", "nope"]) == {"size": expected["size"]}


def test_http_get_answers_dapr_json_and_204_when_nothing_is_found(sidecar, server):
    color = {"value": "blue", "version": version_of(server, "color")}
    size = {"value": "10", "version": version_of(server, "size")}
    for version in ("v1.0", "v1.0-alpha1"):
        every = sidecar.http("GET", f"/v1.0/configuration/{STORE}".replace("v1.0", version))
        assert every.status == 200 and every.json() == {"color": color, "size": size}, str(every)
        assert every.headers.get("content-type") == "application/json", str(every)
    some = sidecar.http("GET", f"/v1.0/configuration/{STORE}?key=color&key=nope")
    assert some.status == 200 and some.json() == {"color": color}, str(some)
    two = sidecar.http("GET", f"/v1.0/configuration/{STORE}?key=color&key=size")
    assert two.status == 200 and two.json() == {"color": color, "size": size}, str(two)
    none = sidecar.http("GET", f"/v1.0/configuration/{STORE}?key=nope")
    assert none.status == 204 and none.body == b"", str(none)


def test_an_unknown_store_is_dapr_store_not_found(sidecar):
    answer = sidecar.http("GET", "/v1.0/configuration/nope?key=color")
    assert answer.status == 400, str(answer)
    assert answer.json() == {"errorCode": "ERR_CONFIGURATION_STORE_NOT_FOUND",
                             "message": "configuration store nope not found"}, str(answer)
    assert grpc_code(lambda: grpc_get(sidecar, ["color"], store="nope")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "configuration store nope not found")
    subscription = Subscription(sidecar, store="nope")
    assert subscription.next() == grpc.StatusCode.INVALID_ARGUMENT
    for path in ("/v1.0/configuration/nope/subscribe", "/v1.0/configuration/nope/some-id/unsubscribe"):
        answer = sidecar.http("GET", path)
        assert answer.status == 400 and answer.json()["errorCode"] == "ERR_CONFIGURATION_STORE_NOT_FOUND", str(answer)


def test_no_configuration_store_at_all_is_dapr_not_configured(molt):
    sidecar = molt([])
    answer = sidecar.http("GET", f"/v1.0/configuration/{STORE}")
    assert answer.status == 500, str(answer)
    assert answer.json() == {"errorCode": "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                             "message": "configuration stores not configured"}, str(answer)
    assert grpc_code(lambda: grpc_get(sidecar, store=STORE)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "configuration stores not configured")


# ---------------------------------------------------------------------------------------------
# Subscribe


def test_the_sdk_subscription_receives_a_put_and_a_delete_made_in_etcd(sidecar, server):
    # The script changes etcd itself, through etcd's JSON gateway, once it holds its subscription id.
    seen = sidecar.run_sdk(f"""
        import base64, json, threading, urllib.request
        from dapr.clients import DaprClient
        def etcd(path, body):
            encoded = {{k: base64.b64encode(v.encode()).decode() for k, v in body.items()}}
            request = urllib.request.Request("http://{server.endpoint}/v3/kv/" + path, json.dumps(encoded).encode(),
                                             {{"Content-Type": "application/json"}})
            urllib.request.urlopen(request, timeout=10).read()
        updates, arrived = [], threading.Event()
        def handler(subscription_id, response):
            updates.append([subscription_id, {{k: [v.value, v.version] for k, v in response.items.items()}}])
            arrived.set()
        def wait_for(key):
            for _ in range(200):
                if any(key in items for _, items in updates):
                    return True
                arrived.wait(0.1); arrived.clear()
            return False
        with DaprClient() as client:
            subscription_id = client.subscribe_configuration("{STORE}", ["color", "size"], handler)
            etcd("put", {{"key": "{PREFIX}color", "value": "green"}})
            put_seen = wait_for("color")
            etcd("deleterange", {{"key": "{PREFIX}size"}})
            delete_seen = wait_for("size")
            stopped = client.unsubscribe_configuration("{STORE}", subscription_id)
            emit(id=subscription_id, updates=updates, put_seen=put_seen, delete_seen=delete_seen, stopped=stopped)
    """)
    assert seen["id"], seen
    assert seen["put_seen"] and seen["delete_seen"], seen
    by_key = {}
    for subscription_id, items in seen["updates"]:
        assert subscription_id == seen["id"], seen
        by_key.update(items)
    assert by_key["color"] == ["green", version_of(server, "color")], seen
    assert by_key["size"] == ["", ""], seen  # deleted: value "" and version ""
    assert seen["stopped"] is True, seen


def test_grpc_subscription_first_message_is_the_id_then_the_changed_items(sidecar, server):
    subscription = Subscription(sidecar, ["color", "size"])
    first = subscription.first()
    assert first["id"] and first["items"] == {}, first  # as Dapr: the id only, not the current items
    server.put(PREFIX + "color", "green")
    server.put(PREFIX + "unwatched", "x")  # not a key of this subscription
    update = subscription.update_with("color")
    assert update == {"id": first["id"], "items": {"color": ("green", version_of(server, "color"))}}, update
    server.delete(PREFIX + "size")
    update = subscription.update_with("size")
    assert update["id"] == first["id"] and update["items"] == {"size": ("", "")}, update
    subscription.cancel()


def test_a_subscription_to_every_item_sees_new_keys_and_the_alpha1_name_works(sidecar, server):
    subscription = Subscription(sidecar, method="SubscribeConfigurationAlpha1")
    first = subscription.first()
    server.put(PREFIX + "brand-new", "hello")
    update = subscription.update_with("brand-new")
    assert update["items"]["brand-new"] == ("hello", version_of(server, "brand-new")), update
    assert grpc_unsubscribe(sidecar, first["id"], method="UnsubscribeConfigurationAlpha1").ok
    assert subscription.next() == grpc.StatusCode.OK


def test_a_subscription_survives_a_reload_of_the_store_and_sees_later_changes(sidecar, server):
    subscription = Subscription(sidecar, ["color"])
    first = subscription.first()
    generation = sidecar.generation("configuration", STORE)
    result = sidecar.control_apply("configuration", STORE, config_store(server, dialTimeout="7s")["metadata"])
    assert result.action in ("reloaded", "applied-in-place"), result
    assert result.action == "applied-in-place" or sidecar.generation("configuration", STORE) > generation
    server.put(PREFIX + "color", "after-reload")
    update = subscription.update_with("color")
    assert update == {"id": first["id"], "items": {"color": ("after-reload", version_of(server, "color"))}}, update
    # Still the same subscription: unsubscribing it by its id ends this stream.
    assert grpc_unsubscribe(sidecar, first["id"]).ok
    assert subscription.next() == grpc.StatusCode.OK


def test_unsubscribe_ends_the_stream_and_an_unknown_id_is_not_ok(sidecar, server):
    subscription = Subscription(sidecar, ["color"])
    first = subscription.first()
    reply = grpc_unsubscribe(sidecar, first["id"])
    assert (reply.ok, reply.message) == (True, ""), reply
    assert subscription.next() == grpc.StatusCode.OK  # the stream ended, with OK, as Dapr's
    again = grpc_unsubscribe(sidecar, first["id"])
    assert (again.ok, again.message) == (
        False, f"failed to unsubscribe to configuration request {first['id']}: subscription does not exist"), again

    # HTTP: a live subscription ends the same way; an unknown id is a 500 with Dapr's body (no "ok").
    subscription = Subscription(sidecar, ["color"])
    second = subscription.first()
    answer = sidecar.http("GET", f"/v1.0/configuration/{STORE}/{second['id']}/unsubscribe")
    assert answer.status == 200 and answer.json() == {"ok": True}, str(answer)
    assert subscription.next() == grpc.StatusCode.OK
    answer = sidecar.http("GET", f"/v1.0-alpha1/configuration/{STORE}/{second['id']}/unsubscribe")
    assert answer.status == 500, str(answer)
    assert answer.json() == {"message": f"failed to unsubscribe to configuration request {second['id']}: "
                                        "subscription does not exist"}, str(answer)


def test_a_client_that_goes_away_removes_its_subscription(sidecar, server):
    # A cancelled call (RST_STREAM).
    subscription = Subscription(sidecar, ["color"])
    cancelled = subscription.first()["id"]
    subscription.cancel()
    # A client process killed outright (its connection closes).
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, grpc
        from dapr.proto.runtime.v1 import configuration_pb2, dapr_pb2_grpc
        stub = dapr_pb2_grpc.DaprStub(grpc.insecure_channel("127.0.0.1:{sidecar.grpc_port}"))
        call = stub.SubscribeConfiguration(configuration_pb2.SubscribeConfigurationRequest(store_name="{STORE}", keys=["color"]),
                                           metadata={sidecar.app_metadata()!r})
        print(next(call).id, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        killed = holder.stdout.readline().strip()
        assert killed, "the subscribing process printed no id"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    # An unsubscribe of a live subscription would succeed (and remove it): one look each, after the server
    # had time to see the stream reset and the connection close.
    time.sleep(2)
    for gone in (cancelled, killed):
        reply = grpc_unsubscribe(sidecar, gone)
        assert not reply.ok and "subscription does not exist" in reply.message, (gone, reply)
    # The store serves on, and a new subscription works.
    subscription = Subscription(sidecar, ["color"])
    subscription.first()
    server.put(PREFIX + "color", "still-served")
    assert subscription.update_with("color")["items"]["color"][0] == "still-served"
    subscription.cancel()


def test_http_subscribe_needs_an_app_channel_and_points_to_grpc(sidecar):
    answer = sidecar.http("GET", f"/v1.0/configuration/{STORE}/subscribe?key=color")
    assert answer.status == 500, str(answer)
    body = answer.json()
    assert body["errorCode"] == "ERR_APP_CHANNEL_NIL", body
    assert body["message"].startswith("app channel is not initialized. cannot subscribe to configuration updates"), body
    assert "gRPC SubscribeConfiguration" in body["message"], body


def test_an_open_subscription_does_not_hold_up_a_graceful_shutdown(sidecar):
    subscription = Subscription(sidecar, ["color"])
    subscription.first()
    started = time.monotonic()
    assert sidecar.stop(signal.SIGTERM) == 0, sidecar.stderr()[-3000:]
    assert time.monotonic() - started < 10, "molt waited for the subscription to end"
    # The server ended the call (OK) before it closed the connection.
    assert subscription.next() == grpc.StatusCode.OK
