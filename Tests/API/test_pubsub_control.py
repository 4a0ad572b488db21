"""Subscriptions as configuration through molt's Control API (ApplySubscription, RemoveSubscription,
ListSubscriptions) and `molt subscriptions apply|remove|list`: added, changed and removed without a restart while
every other subscription keeps receiving every message; kept in the state directory and delivered again after a
restart; a Control API subscription overrides a file's of the same name; bad input is refused naming the problem.
Real molt with --app-port, the in-memory-pubsub plugin and a Python HTTP app."""

import subprocess

import grpc
import pytest

from conftest import wait_for
from test_pubsub_app import PUBSUB, SubscriberApp, needs_plugin, publish  # noqa: F401 (needs_plugin: an autouse fixture)
from test_pubsub_app_hot import Recorder, run_hot_scenario, subscription_yaml, wait_route

CLI_TIMEOUT_S = 60


def cli(molt_bin, sidecar, *args):
    return subprocess.run([str(molt_bin), "subscriptions", *args, "--control-address", f"127.0.0.1:{sidecar.control_port}"],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def listed(sidecar) -> list:
    return list(sidecar.control_stub().ListSubscriptions(sidecar.protos.control_pb2.ListSubscriptionsRequest(), timeout=10).subscriptions)


def by_topic(sidecar, topic: str) -> list:
    return [s for s in listed(sidecar) if s.subscription.topic == topic]


def apply_fields(sidecar, name: str, topic: str, route: str, **extra):
    pb = sidecar.protos.control_pb2
    subscription = pb.Subscription(name=name, pubsubname="pubsub", topic=topic, default_route=route, **extra)
    return sidecar.control_stub().ApplySubscription(pb.ApplySubscriptionRequest(subscription=subscription), timeout=30)


def remove(sidecar, name: str):
    pb = sidecar.protos.control_pb2
    return sidecar.control_stub().RemoveSubscription(pb.RemoveSubscriptionRequest(name=name), timeout=30)


@pytest.fixture
def app():
    started = SubscriberApp(subscriptions=[{"pubsubname": "pubsub", "topic": "steady", "route": "/steady"}])
    recorder = Recorder(started)
    yield recorder
    recorder.stop()
    started.close()


def test_cli_adds_changes_and_removes_a_subscription_and_the_others_lose_nothing(molt, molt_bin, app, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(subscription_yaml("other", "other", "/other"))
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port), "--components", str(other)])
    hot = tmp_path / "hot.yaml"

    def declare(route):
        hot.write_text(subscription_yaml("hot", "hot", route))
        done = cli(molt_bin, sidecar, "apply", "-f", str(hot))
        assert done.returncode == 0, done.stderr
        assert "subscription/hot:" in done.stdout and ("added" in done.stdout or "changed" in done.stdout)

    def retract():
        done = cli(molt_bin, sidecar, "remove", "hot")
        assert done.returncode == 0, done.stderr
        assert "subscription/hot: removed" in done.stdout

    run_hot_scenario(sidecar, app, declare=declare, retract=retract)
    # The listing names each source and state.
    done = cli(molt_bin, sidecar, "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("steady" in line and "programmatic" in line and "subscribed" in line for line in lines), done.stdout
    assert any(line.startswith("other") and f"file {other}" in line and "subscribed" in line for line in lines), done.stdout
    assert not any(line.startswith("hot") for line in lines), done.stdout


def test_grpc_control_api_adds_changes_and_removes_and_lists_states(molt, app, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(subscription_yaml("other", "other", "/other"))
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port), "--components", str(other)])
    actions = []

    def declare(route):
        response = apply_fields(sidecar, "hot", "hot", route, rules=[sidecar.protos.control_pb2.SubscriptionRule(
            match='event.type == "big"', path="/big")])
        actions.append(response.applied[0].action)
        assert response.applied[0].status.source_kind == "control-api"

    run_hot_scenario(sidecar, app, declare=declare, retract=lambda: remove(sidecar, "hot"))
    assert actions == ["added", "changed"]
    assert by_topic(sidecar, "hot") == []
    # The same definition again changes nothing.
    assert apply_fields(sidecar, "hot2", "hot", "/hot-c").applied[0].action == "added"
    assert apply_fields(sidecar, "hot2", "hot", "/hot-c").applied[0].action == "unchanged"
    [status] = by_topic(sidecar, "hot")
    assert (status.subscription.name, status.source_kind, status.state) == ("hot2", "control-api", "subscribed")
    # A subscription whose pubsub is not configured waits for it.
    pb = sidecar.protos.control_pb2
    sidecar.control_stub().ApplySubscription(pb.ApplySubscriptionRequest(subscription=pb.Subscription(
        name="nopubsub", pubsubname="absent", topic="t", default_route="/t")), timeout=30)
    wait_for(lambda: [s.state for s in listed(sidecar) if s.subscription.name == "nopubsub"] == ["waiting-for-pubsub"],
             "nopubsub waiting for its pubsub")


def test_restart_with_the_same_state_directory_delivers_again(molt, molt_bin, app, tmp_path):
    state = tmp_path / "state"
    args = ["--app-port", str(app.app.port), "--state-directory", str(state)]
    sidecar = molt([PUBSUB], extra_args=args)
    hot = tmp_path / "hot.yaml"
    hot.write_text(subscription_yaml("kept", "kept", "/kept") + "---\n" + subscription_yaml("gone", "gone", "/gone"))
    done = cli(molt_bin, sidecar, "apply", "-f", str(hot))
    assert done.returncode == 0, done.stderr
    wait_route(sidecar, app, "kept", "/kept")
    assert remove(sidecar, "gone").removed.topic == "gone"
    sidecar.stop()

    again = molt([PUBSUB], extra_args=args)
    wait_route(again, app, "kept", "/kept")
    assert [s.subscription.name for s in listed(again) if s.source_kind == "control-api"] == ["kept"]
    start = app.count()
    for i in range(3):
        publish(again, "gone", {"after": i})
    wait_route(again, app, "steady", "/steady")
    assert [p for p in app.since(start) if p["path"] == "/gone"] == []


def test_a_control_api_subscription_overrides_a_files_of_the_same_name_until_removed(molt, app, tmp_path):
    files = tmp_path / "subscriptions.yaml"
    files.write_text(subscription_yaml("orders", "orders", "/from-file"))
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port), "--components", str(files)])
    wait_route(sidecar, app, "orders", "/from-file")
    apply_fields(sidecar, "orders", "orders", "/from-control")
    first = wait_route(sidecar, app, "orders", "/from-control")
    assert [p for p in app.since(first) if p["path"] == "/from-file"] == []
    states = {(s.source_kind, s.state) for s in by_topic(sidecar, "orders")}
    assert states == {("control-api", "subscribed"), ("file", "overridden")}
    # Only the Control API's can be removed through it; the file's then comes back.
    with pytest.raises(grpc.RpcError) as refused:
        remove(sidecar, "steady-nope")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    remove(sidecar, "orders")
    wait_route(sidecar, app, "orders", "/from-file")
    with pytest.raises(grpc.RpcError) as refused:
        remove(sidecar, "orders")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert str(files) in refused.value.details() and "change or delete it there" in refused.value.details()
    # Another name to a topic a file holds: refused at run time, listed with the source that runs.
    apply_fields(sidecar, "orders-two", "orders", "/two")
    wait_for(lambda: [s.state for s in listed(sidecar) if s.subscription.name == "orders-two"] == ["refused"], "orders-two refused")
    [status] = [s for s in listed(sidecar) if s.subscription.name == "orders-two"]
    assert "--components" in status.detail


def test_bad_input_is_refused_naming_the_problem(molt, molt_bin, app, tmp_path):
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port)])
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: x}\nspec:\n  topic: t\n"
                   "  routes: {default: /t}\n")
    done = cli(molt_bin, sidecar, "apply", "-f", str(bad))
    assert done.returncode == 1
    assert f"{bad}:" in done.stderr and "pubsubname" in done.stderr, done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: x\n")
    done = cli(molt_bin, sidecar, "apply", "-f", str(broken))
    assert done.returncode == 1 and f"{broken}:" in done.stderr, done.stderr
    component = tmp_path / "component.yaml"
    component.write_text("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\nspec: {type: pubsub.in-memory}\n")
    done = cli(molt_bin, sidecar, "apply", "-f", str(component))
    assert done.returncode == 1 and "molt apply" in done.stderr, done.stderr
    done = cli(molt_bin, sidecar, "remove", "nothing")
    assert done.returncode == 1 and "no subscription named 'nothing'" in done.stderr, done.stderr
    for fields, problem in [(dict(name="Bad_Name", pubsubname="pubsub", topic="t", default_route="/t"), "subscription.name"),
                            (dict(name="ok", pubsubname="pubsub", topic="", default_route="/t"), "subscription.topic"),
                            (dict(name="ok", pubsubname="pubsub", topic="t"), "subscription.default_route")]:
        pb = sidecar.protos.control_pb2
        with pytest.raises(grpc.RpcError) as refused:
            sidecar.control_stub().ApplySubscription(pb.ApplySubscriptionRequest(subscription=pb.Subscription(**fields)), timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and problem in refused.value.details()
    # Two Control API subscriptions to one topic: the second is refused.
    apply_fields(sidecar, "first", "shared", "/first")
    with pytest.raises(grpc.RpcError) as refused:
        apply_fields(sidecar, "second", "shared", "/second")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "'first'" in refused.value.details()
    assert sidecar.alive()


def test_without_an_app_port_subscriptions_say_they_need_an_app_channel(molt, molt_bin, tmp_path):
    sidecar = molt([PUBSUB])
    done = cli(molt_bin, sidecar, "list")
    assert done.returncode == 1 and "app channel" in done.stderr and "--app-port" in done.stderr, done.stderr
    with pytest.raises(grpc.RpcError) as refused:
        listed(sidecar)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_change_that_cannot_be_persisted_changes_nothing(molt, app, tmp_path):
    state = tmp_path / "state"
    sidecar = molt([PUBSUB], extra_args=["--app-port", str(app.app.port), "--state-directory", str(state)])
    apply_fields(sidecar, "kept", "kept", "/kept")
    wait_route(sidecar, app, "kept", "/kept")
    # A directory where the file goes: the atomic rename onto it fails (even for root).
    (state / "subscriptions.json").unlink()
    (state / "subscriptions.json").mkdir()
    (state / "subscriptions.json" / "blocker").write_text("")
    with pytest.raises(grpc.RpcError) as refused:
        apply_fields(sidecar, "new", "new", "/new")
    assert refused.value.code() == grpc.StatusCode.INTERNAL and "nothing changed" in refused.value.details()
    with pytest.raises(grpc.RpcError) as refused:
        remove(sidecar, "kept")
    assert refused.value.code() == grpc.StatusCode.INTERNAL
    assert sorted(s.subscription.name for s in listed(sidecar) if s.source_kind == "control-api") == ["kept"]
    wait_route(sidecar, app, "kept", "/kept")
