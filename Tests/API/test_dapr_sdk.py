"""The official Dapr Python SDK, unmodified, against molt.

Each scenario is a small script run in its own Python process whose environment configures the SDK
with Dapr's standard variables only (DAPR_RUNTIME_HOST, DAPR_HTTP_PORT, DAPR_GRPC_PORT,
DAPR_API_TOKEN; see Molt.sdk_env). The script reports what it saw with `emit(...)`; the
assertions are here.
"""

import pytest


def test_save_get_delete_state(sidecar, redis):
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            d.save_state("statestore", "sdk-basic", "hello molt")
            got = d.get_state("statestore", "sdk-basic")
            emit(value=got.data.decode(), etag=got.etag)
            d.delete_state("statestore", "sdk-basic")
            gone = d.get_state("statestore", "sdk-basic")
            emit(after_delete=gone.data.decode(), after_delete_etag=gone.etag)
        """)
    assert seen["value"] == "hello molt"
    assert seen["etag"], "get_state returned no etag"
    assert seen["after_delete"] == ""
    assert seen["after_delete_etag"] == ""


def test_state_is_stored_in_daprs_redis_layout(sidecar, redis):
    """Dapr stores key K of app A as the Redis hash `A||K` with fields data and version, so an app
    moving from daprd to molt keeps its data (Plugins/RedisState/README.md)."""
    sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            d.save_state("statestore", "sdk-layout", "in redis")
        """)
    assert redis.cli("HGET", "molt||sdk-layout", "data") == "in redis", f"keys in redis: {redis.keys()}"
    assert redis.cli("HGET", "molt||sdk-layout", "version") == "1"


def test_get_bulk_state(sidecar):
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            for i in range(3):
                d.save_state("statestore", f"sdk-bulk-{i}", f"value-{i}")
            bulk = d.get_bulk_state("statestore", ["sdk-bulk-0", "sdk-bulk-1", "sdk-bulk-2", "sdk-bulk-missing"])
            emit(items={item.key: [item.data.decode(), bool(item.etag), item.error] for item in bulk.items})
        """)
    assert seen["items"] == {
        "sdk-bulk-0": ["value-0", True, ""],
        "sdk-bulk-1": ["value-1", True, ""],
        "sdk-bulk-2": ["value-2", True, ""],
        "sdk-bulk-missing": ["", False, ""],
    }


def test_save_with_stale_etag_is_aborted(sidecar):
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            d.save_state("statestore", "sdk-etag", "first")
            first = d.get_state("statestore", "sdk-etag").etag
            d.save_state("statestore", "sdk-etag", "second", etag=first)  # current etag: accepted
            second = d.get_state("statestore", "sdk-etag").etag
            emit(first=first, second=second)
            try:
                d.save_state("statestore", "sdk-etag", "third", etag=first)  # stale etag: refused
                emit(stale="accepted")
            except Exception as error:
                emit(stale="refused", code=grpc_code(error), message=str(error)[:300])
            emit(value=d.get_state("statestore", "sdk-etag").data.decode())
        """)
    assert seen["first"] != seen["second"], "a write did not change the etag"
    assert seen["stale"] == "refused", "a save with a stale etag was accepted"
    assert seen["code"] == "ABORTED", f"Dapr answers ABORTED for an etag mismatch; got {seen['code']}: {seen['message']}"
    assert seen["value"] == "second"


def test_execute_state_transaction(sidecar):
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
        with DaprClient() as d:
            d.save_state("statestore", "sdk-tx-a", "old")
            d.save_state("statestore", "sdk-tx-b", "to delete")
            d.execute_state_transaction("statestore", [
                TransactionalStateOperation(key="sdk-tx-a", data="new"),
                TransactionalStateOperation(key="sdk-tx-b", operation_type=TransactionOperationType.delete),
                TransactionalStateOperation(key="sdk-tx-c", data="created"),
            ])
            emit(**{key: d.get_state("statestore", key).data.decode() for key in ("sdk-tx-a", "sdk-tx-b", "sdk-tx-c")})
        """)
    assert seen == {"sdk-tx-a": "new", "sdk-tx-b": "", "sdk-tx-c": "created"}


def test_try_lock_and_unlock(sidecar):
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            emit(alice_locks=d.try_lock("lockstore", "sdk-res", "alice", 10).success)
            emit(bob_locks=d.try_lock("lockstore", "sdk-res", "bob", 10).success)
            emit(bob_unlocks=d.unlock("lockstore", "sdk-res", "bob").status.name)
            emit(alice_unlocks=d.unlock("lockstore", "sdk-res", "alice").status.name)
            emit(alice_unlocks_again=d.unlock("lockstore", "sdk-res", "alice").status.name)
            emit(bob_locks_after=d.try_lock("lockstore", "sdk-res", "bob", 10).success)
        """)
    assert seen == {
        "alice_locks": True,
        "bob_locks": False,
        "bob_unlocks": "lock_belongs_to_others",
        "alice_unlocks": "success",
        "alice_unlocks_again": "lock_does_not_exist",
        "bob_locks_after": True,
    }


def test_get_metadata_lists_molts_components(sidecar):
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            meta = d.get_metadata()
            emit(app_id=meta.application_id,
                 components=sorted([c.name, c.type, c.version] for c in meta.registered_components),
                 extended=meta.extended_metadata)
        """)
    assert seen["app_id"] == "molt"
    by_name = {name: (kind, version) for name, kind, version in seen["components"]}
    assert by_name.get("statestore", (None,))[0] == "state.redis-state", seen["components"]
    assert by_name.get("lockstore", (None,))[0] == "lock.memorylock", seen["components"]
    # molt's generation of each component is in the extended metadata, the same as Control.ListComponents.
    for kind, name in (("state", "statestore"), ("lock", "lockstore")):
        generation_keys = [key for key in seen["extended"] if name in key and "generation" in key]
        assert generation_keys, f"no generation of {name} in extended_metadata: {seen['extended']}"
        assert seen["extended"][generation_keys[0]] == str(sidecar.generation(kind, name))


# -- API token


@pytest.fixture(scope="module")
def guarded(module_molt, redis, components):
    return module_molt([components.state("statestore", redis), components.lock("lockstore")], api_token="s3cret-token")


_SAVE_AND_GET = """
    from dapr.clients import DaprClient
    try:
        with DaprClient() as d:
            d.save_state("statestore", "sdk-token", "guarded value")
            emit(outcome="ok", value=d.get_state("statestore", "sdk-token").data.decode())
    except Exception as error:
        emit(outcome="error", error_type=type(error).__name__, code=grpc_code(error), message=str(error)[:300])
    """


def test_api_token_right_token_works(guarded):
    seen = guarded.run_sdk(_SAVE_AND_GET, token="s3cret-token")
    assert seen == {"outcome": "ok", "value": "guarded value"}


@pytest.mark.parametrize("token", ["wrong-token", None], ids=["wrong-token", "no-token"])
def test_api_token_wrong_or_missing_token_fails(guarded, token):
    seen = guarded.run_sdk(_SAVE_AND_GET, token=token)
    assert seen["outcome"] == "error", f"a call with token {token!r} succeeded"
    assert seen["code"] == "UNAUTHENTICATED", seen
