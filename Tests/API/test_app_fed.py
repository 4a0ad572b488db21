"""App-fed configuration, end to end: at start an app pushes its own configuration through molt's control
plane (Layotto Lifecycle ApplyConfiguration for a component molt already runs, molt Control Apply for one it
adds). With `--state-directory` each push is on disk before the call returns, so after a restart, graceful
(SIGTERM) or not (kill -9), molt becomes ready only with that configuration restored: the app's first call
after readiness already goes where the app said, although the bootstrap file still says otherwise.
"""

import signal

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import state_pb2

from conftest import running_config, RPC_TIMEOUT_S, assert_maxlocks_limit

APP_ID = "orders"


def save(sidecar, store, key, value):
    request = state_pb2.SaveStateRequest(store_name=store, states=[common_pb2.StateItem(key=key, value=value.encode())])
    sidecar.dapr_stub().SaveState(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)


def stored_in(redis, key):
    """The value Redis holds for the Dapr state key `key` of this app (Dapr's `<app-id>||key` layout)."""
    full = f"{APP_ID}||{key}"
    return redis.cli("HGET", full, "data") if full in redis.keys() else None


def start(molt, bootstrap, state):
    """molt serve with the app's bootstrap file and state directory; returns once it is ready."""
    sidecar = molt(bootstrap, app_id=APP_ID, extra_args=["--state-directory", str(state)])
    assert sidecar.readiness() == 200
    return sidecar


def test_app_fed_config_is_what_a_restarted_molt_serves(molt, redis_server, components, tmp_path):
    redis_a, redis_b, redis_c = redis_server(), redis_server(), redis_server()
    state = tmp_path / "state"
    # The bootstrap file, the same at every start: the state store on Redis A, no lock store.
    bootstrap = [components.state("statestore", redis_a)]

    sidecar = start(molt, bootstrap, state)
    save(sidecar, "statestore", "bootstrap", "in A")
    assert stored_in(redis_a, "bootstrap") == "in A"

    # The app starts and feeds its configuration: its state store on Redis B (an existing component, through
    # Layotto's Lifecycle API) and a lock store of its own (a new component, through molt's Control API).
    sidecar.apply_configuration("state", "statestore", {"redisHost": redis_b.address})
    added = sidecar.control_apply("lock", "applock", {"maxLocks": "2"}, plugin="memorylock")
    assert (added.action, added.error) == ("added", ""), added
    save(sidecar, "statestore", "fed", "in B")
    assert stored_in(redis_b, "fed") == "in B" and stored_in(redis_a, "fed") is None

    # Graceful restart.
    assert sidecar.stop(signal.SIGTERM) == 0, sidecar.stderr()[-3000:]
    sidecar = start(molt, bootstrap, state)
    # The very first app call after readiness lands in B, not in the bootstrap file's A.
    save(sidecar, "statestore", "after-sigterm", "restarted")
    assert stored_in(redis_b, "after-sigterm") == "restarted", f"B has {redis_b.keys()}, A has {redis_a.keys()}"
    assert stored_in(redis_a, "after-sigterm") is None
    listed = sidecar.list_components()
    assert set(listed) == {("state", "statestore"), ("lock", "applock")}, sorted(listed)
    assert dict(listed[("state", "statestore")].metadata)["redisHost"] == redis_b.address
    assert dict(listed[("lock", "applock")].metadata) == running_config(listed[("lock", "applock")].plugin, {"maxLocks": "2"})
    assert_maxlocks_limit(sidecar, "applock", 2)

    # The app feeds a new configuration (Redis C, a tighter lock limit); molt dies the moment the last call
    # returned.
    sidecar.apply_configuration("state", "statestore", {"redisHost": redis_c.address})
    changed = sidecar.control_apply("lock", "applock", {"maxLocks": "1"})
    assert changed.action == "applied-in-place", changed
    sidecar.stop(signal.SIGKILL)

    sidecar = start(molt, bootstrap, state)
    # The app's first call after readiness, by the Dapr SDK, lands in C.
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            d.save_state("statestore", "after-kill", "restarted again")
            emit(read=d.get_state("statestore", "after-kill").data.decode())
    """)
    assert seen == {"read": "restarted again"}, seen
    assert stored_in(redis_c, "after-kill") == "restarted again", f"C has {redis_c.keys()}"
    assert stored_in(redis_a, "after-kill") is None and stored_in(redis_b, "after-kill") is None
    assert dict(sidecar.component("lock", "applock").metadata) == running_config(sidecar.component("lock", "applock").plugin, {"maxLocks": "1"})
    assert_maxlocks_limit(sidecar, "applock", 1, owner="after-kill")
