"""The `in-memory` state store plugin (Plugins/InMemoryState), molt's embedded default state store, against
a real `molt serve`: Dapr's `state.in-memory` semantics through the official Dapr Python SDK and the HTTP API
(etags, first-write, bulk get, all-or-nothing transactions, ttlInSeconds), `maxKeys` applied in place, and
its data (keys, values, etags, absolute expiries) carried over a reload and a version swap 1.0.0 -> 1.1.0 -> 1.0.0
by state transfer.
"""

import json

import pytest

from conftest import wait_for

TTL_TIMEOUT_S = 10.0  # a 1 s TTL until the key reads as missing (generous for a loaded machine)


def in_memory(name: str, version: str | None = None, **metadata: str) -> dict:
    component = {"kind": "state", "name": name, "plugin": "in-memory", "metadata": dict(metadata)}
    if version:
        component["version"] = version
    return component


@pytest.fixture(scope="module")
def store(module_molt):
    """One molt for the module: `statestore` (in-memory, no limit) and `limited` (maxKeys=2)."""
    return module_molt([in_memory("statestore"), in_memory("limited", maxKeys="2")])


def save(sidecar, store_name: str, key: str, value, **fields):
    """One item through `POST /v1.0/state/{store}`; returns the response."""
    return sidecar.http("POST", f"/v1.0/state/{store_name}", [{"key": key, "value": value, **fields}])


def read(sidecar, store_name: str, key: str):
    """(stored bytes as text, etag, ttlExpireTime) of `key` through `GET /v1.0/state/{store}/{key}`; None when
    missing. A value saved over HTTP is stored as its JSON text, one saved with the SDK as its bytes."""
    got = sidecar.http("GET", f"/v1.0/state/{store_name}/{key}")
    if got.status == 204:
        return None
    assert got.status == 200, f"GET {key}: {got}"
    return got.text, got.headers.get("etag"), got.headers.get("metadata.ttlexpiretime")


def read_json(sidecar, store_name: str, key: str):
    """The value of `key` saved over HTTP, decoded from its JSON text."""
    found = read(sidecar, store_name, key)
    assert found is not None, f"{store_name}/{key} is missing"
    return json.loads(found[0])


def snapshot(sidecar, store_name: str, keys) -> dict:
    return {key: read(sidecar, store_name, key) for key in keys}


# -- the Dapr API


def test_sdk_save_get_delete(store):
    seen = store.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            d.save_state("statestore", "im-basic", "hello in-memory")
            got = d.get_state("statestore", "im-basic")
            emit(value=got.data.decode(), etag=got.etag)
            d.save_state("statestore", "im-basic", "second")
            emit(second_etag=d.get_state("statestore", "im-basic").etag)
            d.delete_state("statestore", "im-basic")
            gone = d.get_state("statestore", "im-basic")
            emit(after_delete=gone.data.decode(), after_delete_etag=gone.etag)
        """)
    assert seen["value"] == "hello in-memory"
    assert seen["etag"].isdigit(), f"etags are decimal numbers: {seen['etag']!r}"
    assert int(seen["second_etag"]) > int(seen["etag"]), seen
    assert (seen["after_delete"], seen["after_delete_etag"]) == ("", "")


def test_http_save_get_delete(store):
    assert save(store, "statestore", "im-http", {"n": 1}).status == 204
    value, etag, ttl = read(store, "statestore", "im-http")
    assert json.loads(value) == {"n": 1} and etag and etag.isdigit() and ttl is None
    stale = store.http("DELETE", "/v1.0/state/statestore/im-http", headers={"If-Match": str(int(etag) + 1000)})
    assert stale.status == 409, f"a delete with a wrong etag: {stale}"
    deleted = store.http("DELETE", "/v1.0/state/statestore/im-http", headers={"If-Match": etag})
    assert deleted.status == 204, deleted
    assert read(store, "statestore", "im-http") is None
    assert store.http("DELETE", "/v1.0/state/statestore/im-http").status == 204, "deleting a missing key succeeds"


def test_etag_mismatch_and_invalid_etag(store):
    seen = store.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            d.save_state("statestore", "im-etag", "first")
            first = d.get_state("statestore", "im-etag").etag
            d.save_state("statestore", "im-etag", "second", etag=first)  # the current etag: accepted
            for name, etag in (("stale", first), ("invalid", "not-a-number"), ("missing_key", first)):
                key = "im-etag-missing" if name == "missing_key" else "im-etag"
                try:
                    d.save_state("statestore", key, "refused?", etag=etag)
                    emit(**{name: "accepted"})
                except Exception as error:
                    emit(**{name: grpc_code(error)})
            emit(value=d.get_state("statestore", "im-etag").data.decode())
        """)
    assert seen == {"stale": "ABORTED", "invalid": "INVALID_ARGUMENT", "missing_key": "ABORTED", "value": "second"}
    _, etag, _ = read(store, "statestore", "im-etag")
    assert save(store, "statestore", "im-etag", "third", etag=str(int(etag) - 1)).status == 409
    assert save(store, "statestore", "im-etag", "third", etag="x1").status == 400
    assert save(store, "statestore", "im-etag", "third", etag=etag).status == 204
    assert read_json(store, "statestore", "im-etag") == "third"


def test_first_write(store):
    seen = store.run_sdk("""
        from dapr.clients import DaprClient
        from dapr.clients.grpc._state import Concurrency, StateOptions
        first_write = StateOptions(concurrency=Concurrency.first_write)
        def attempt(name, **kwargs):
            try:
                d.save_state("statestore", "im-fw", name, options=first_write, **kwargs)
                emit(**{name: "accepted"})
            except Exception as error:
                emit(**{name: grpc_code(error)})
        with DaprClient() as d:
            attempt("create")                     # a new key without an etag: accepted
            attempt("overwrite")                  # an existing key without an etag: refused
            etag = d.get_state("statestore", "im-fw").etag
            attempt("with_etag", etag=etag)       # with the current etag: accepted
            attempt("stale_etag", etag=etag)      # that etag is stale now
            emit(value=d.get_state("statestore", "im-fw").data.decode())
        """)
    assert seen == {"create": "accepted", "overwrite": "ABORTED", "with_etag": "accepted", "stale_etag": "ABORTED",
                    "value": "with_etag"}
    options = {"options": {"concurrency": "first-write"}}
    assert save(store, "statestore", "im-fw-http", "a", **options).status == 204
    assert save(store, "statestore", "im-fw-http", "b", **options).status == 409
    assert save(store, "statestore", "im-fw-http", "c").status == 204, "last-write (the default) overwrites"
    assert read_json(store, "statestore", "im-fw-http") == "c"


def test_bulk_get(store):
    seen = store.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as d:
            for i in range(3):
                d.save_state("statestore", f"im-bulk-{i}", f"value-{i}")
            bulk = d.get_bulk_state("statestore", ["im-bulk-0", "im-bulk-1", "im-bulk-2", "im-bulk-missing"])
            emit(items=[[item.key, item.data.decode(), item.etag.isdigit(), item.error] for item in bulk.items])
        """)
    assert seen["items"] == [["im-bulk-0", "value-0", True, ""], ["im-bulk-1", "value-1", True, ""],
                             ["im-bulk-2", "value-2", True, ""], ["im-bulk-missing", "", False, ""]]
    response = store.http("POST", "/v1.0/state/statestore/bulk", {"keys": ["im-bulk-2", "im-bulk-none", "im-bulk-0"]})
    assert response.status == 200, response
    items = response.json()
    assert [(item["key"], item.get("data")) for item in items] == [
        ("im-bulk-2", "value-2"), ("im-bulk-none", None), ("im-bulk-0", "value-0")]
    assert items[0]["etag"] == read(store, "statestore", "im-bulk-2")[1]


def test_transaction_is_all_or_nothing(store):
    seen = store.run_sdk("""
        from dapr.clients import DaprClient
        from dapr.clients.grpc._request import TransactionalStateOperation as Op, TransactionOperationType
        DELETE = TransactionOperationType.delete
        keys = ("im-tx-a", "im-tx-b", "im-tx-c")
        with DaprClient() as d:
            d.save_state("statestore", "im-tx-a", "old")
            d.save_state("statestore", "im-tx-b", "to delete")
            stale = d.get_state("statestore", "im-tx-a").etag
            d.save_state("statestore", "im-tx-a", "current")
            try:  # the last operation's etag is stale: nothing of it may happen
                d.execute_state_transaction("statestore", [
                    Op(key="im-tx-c", data="created"),
                    Op(key="im-tx-b", operation_type=DELETE),
                    Op(key="im-tx-a", data="new", etag=stale),
                ])
                emit(failed_tx="accepted")
            except Exception as error:
                emit(failed_tx=grpc_code(error))
            emit(after_failed={key: d.get_state("statestore", key).data.decode() for key in keys})
            d.execute_state_transaction("statestore", [
                Op(key="im-tx-c", data="created"),
                Op(key="im-tx-b", operation_type=DELETE),
                Op(key="im-tx-a", data="new", etag=d.get_state("statestore", "im-tx-a").etag),
            ])
            emit(after_tx={key: d.get_state("statestore", key).data.decode() for key in keys})
        """)
    assert seen["failed_tx"] == "ABORTED"
    assert seen["after_failed"] == {"im-tx-a": "current", "im-tx-b": "to delete", "im-tx-c": ""}
    assert seen["after_tx"] == {"im-tx-a": "new", "im-tx-b": "", "im-tx-c": "created"}

    before = snapshot(store, "statestore", ["im-tx-a", "im-tx-c", "im-tx-d"])
    refused = store.http("POST", "/v1.0/state/statestore/transaction", {"operations": [
        {"operation": "upsert", "request": {"key": "im-tx-d", "value": "d"}},
        {"operation": "delete", "request": {"key": "im-tx-c"}},
        {"operation": "upsert", "request": {"key": "im-tx-a", "value": "x", "etag": "999999999"}},
    ]})
    assert refused.status == 409, refused
    assert snapshot(store, "statestore", ["im-tx-a", "im-tx-c", "im-tx-d"]) == before
    applied = store.http("POST", "/v1.0/state/statestore/transaction", {"operations": [
        {"operation": "upsert", "request": {"key": "im-tx-d", "value": "d"}},
        {"operation": "delete", "request": {"key": "im-tx-c", "etag": before["im-tx-c"][1]}},
    ]})
    assert applied.status == 204, applied
    assert read_json(store, "statestore", "im-tx-d") == "d" and read(store, "statestore", "im-tx-c") is None


def test_ttl_in_seconds_expires_keys(store):
    assert save(store, "statestore", "im-ttl-http", "short", metadata={"ttlInSeconds": "1"}).status == 204
    assert save(store, "statestore", "im-ttl-never", "kept", metadata={"ttlInSeconds": "-1"}).status == 204
    value, _, expires = read(store, "statestore", "im-ttl-http")
    assert json.loads(value) == "short" and expires and expires.endswith("Z"), f"ttlExpireTime in RFC3339: {expires!r}"
    assert read(store, "statestore", "im-ttl-never")[2] is None, "ttlInSeconds -1 never expires"
    seen = store.run_sdk("""
        import time
        from dapr.clients import DaprClient
        with DaprClient() as d:
            d.save_state("statestore", "im-ttl-sdk", "short", state_metadata={"ttlInSeconds": "1"})
            emit(right_after=d.get_state("statestore", "im-ttl-sdk").data.decode())
            start = time.monotonic()
            while d.get_state("statestore", "im-ttl-sdk").data and time.monotonic() - start < 10:
                time.sleep(0.1)
            emit(expired_after_s=time.monotonic() - start, final=d.get_state("statestore", "im-ttl-sdk").data.decode())
        """)
    assert seen["right_after"] == "short"
    assert seen["final"] == "", f"the key did not expire within 10 s: {seen}"
    wait_for(lambda: read(store, "statestore", "im-ttl-http") is None, "im-ttl-http to expire", timeout=TTL_TIMEOUT_S)
    assert read_json(store, "statestore", "im-ttl-never") == "kept"
    # An expired key is missing for etag checks too: first-write may create it again.
    assert save(store, "statestore", "im-ttl-http", "again", options={"concurrency": "first-write"}).status == 204
    assert save(store, "statestore", "im-ttl-bad", "v", metadata={"ttlInSeconds": "0"}).status == 400


def test_max_keys_applies_in_place(store):
    generation = store.generation("state", "limited")
    assert save(store, "limited", "one", 1).status == 204
    assert save(store, "limited", "two", 2).status == 204
    refused = save(store, "limited", "three", 3)
    assert refused.status == 500 and "maxKeys (2) reached" in refused.text, refused
    assert save(store, "limited", "two", 22).status == 204, "overwriting a stored key needs no new slot"

    result = store.control_apply("state", "limited", {"maxKeys": "3"})
    assert (result.action, result.error) == ("applied-in-place", ""), result
    assert store.generation("state", "limited") == generation
    assert save(store, "limited", "three", 3).status == 204
    assert save(store, "limited", "four", 4).status == 500
    assert store.http("DELETE", "/v1.0/state/limited/one").status == 204
    assert save(store, "limited", "four", 4).status == 204, "a delete frees its slot"


# -- state transfer: reload and version swaps


def seed(sidecar, store_name: str) -> list[str]:
    """Writes a mix of keys to `store_name` (JSON and text values, a rewritten key, a deleted key, a long TTL);
    returns the keys to compare (the deleted one included: it must stay missing)."""
    seen = sidecar.run_sdk(f"""
        import json
        from dapr.clients import DaprClient
        with DaprClient() as d:
            for i in range(20):
                d.save_state({store_name!r}, f"seed-{{i}}", json.dumps({{"i": i, "text": "value " * i}}))
            for round in range(3):
                d.save_state({store_name!r}, "seed-rewritten", f"round {{round}}")
            d.save_state({store_name!r}, "seed-deleted", "soon gone")
            d.delete_state({store_name!r}, "seed-deleted")
            d.save_state({store_name!r}, "seed-ttl", "expires in an hour", state_metadata={{"ttlInSeconds": "3600"}})
            emit(done=True)
        """)
    assert seen == {"done": True}
    return [f"seed-{i}" for i in range(20)] + ["seed-rewritten", "seed-deleted", "seed-ttl"]


def assert_intact(before: dict, after: dict, what: str) -> None:
    assert before["seed-deleted"] is None and before["seed-ttl"][2], before
    lost = {key: (before[key], after.get(key)) for key in before if after.get(key) != before[key]}
    assert not lost, f"{what} changed keys (before, after): {lost}"


def test_data_survives_a_reload(store):
    added = store.control_apply("state", "reloadstore", {}, plugin="in-memory", version="1.0.0")
    assert added.action == "added", added
    keys = seed(store, "reloadstore")
    before = snapshot(store, "reloadstore", keys)
    generation = store.generation("state", "reloadstore")

    result = store.control_apply("state", "reloadstore", {"initialBuckets": "64"})
    assert (result.action, result.error) == ("reloaded", ""), result
    assert (result.old_generation, result.new_generation) == (generation, generation + 1), result
    assert_intact(before, snapshot(store, "reloadstore", keys), "a reload")

    # The etag counter came along: an old etag still matches, and new etags never repeat an old one.
    old_etag = before["seed-rewritten"][1]
    assert save(store, "reloadstore", "seed-rewritten", "after reload", etag=old_etag).status == 204
    new_etag = read(store, "reloadstore", "seed-rewritten")[1]
    assert int(new_etag) > max(int(entry[1]) for entry in before.values() if entry), new_etag
    assert save(store, "reloadstore", "seed-rewritten", "stale", etag=old_etag).status == 409


def test_data_survives_version_swaps(store):
    added = store.control_apply("state", "swapstore", {}, plugin="in-memory", version="1.0.0")
    assert added.action == "added", added
    keys = seed(store, "swapstore")
    before = snapshot(store, "swapstore", keys)

    up = store.control_apply("state", "swapstore", version="1.1.0")
    assert (up.action, up.error) == ("version-swapped", ""), up
    assert store.component("state", "swapstore").plugin == "in-memory@1.1.0"
    assert_intact(before, snapshot(store, "swapstore", keys), "the swap to 1.1.0")

    # A write on 1.1.0 travels back to 1.0.0 as well.
    assert save(store, "swapstore", "written-on-1.1.0", {"by": "1.1.0"}).status == 204
    keys.append("written-on-1.1.0")
    before = snapshot(store, "swapstore", keys)

    down = store.control_apply("state", "swapstore", version="1.0.0")
    assert (down.action, down.error) == ("version-swapped", ""), down
    assert store.component("state", "swapstore").plugin == "in-memory@1.0.0"
    assert_intact(before, snapshot(store, "swapstore", keys), "the swap back to 1.0.0")

    seen = store.run_sdk("""
        import json
        from dapr.clients import DaprClient
        with DaprClient() as d:
            got = d.get_state("swapstore", "seed-7")
            emit(value=json.loads(got.data), etag=got.etag, gone=d.get_state("swapstore", "seed-deleted").data.decode())
        """)
    assert seen == {"value": {"i": 7, "text": "value " * 7}, "etag": before["seed-7"][1], "gone": ""}


# -- Dapr Component YAML


DAPR_STATE_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: yamlstore
spec:
  type: state.in-memory
  version: v1
  metadata: []
"""


def test_dapr_component_yaml_state_in_memory(molt, tmp_path):
    path = tmp_path / "yamlstore.yaml"
    path.write_text(DAPR_STATE_YAML)
    sidecar = molt([], extra_args=["--components", str(path)])
    assert sidecar.component("state", "yamlstore").plugin.startswith("in-memory@1."), sidecar.component("state", "yamlstore")
    metadata = sidecar.http("GET", "/v1.0/metadata").json()
    assert {"name": "yamlstore", "type": "state.in-memory"}.items() <= next(
        c for c in metadata["components"] if c["name"] == "yamlstore").items(), json.dumps(metadata)
    assert save(sidecar, "yamlstore", "k", "from yaml").status == 204
    assert read_json(sidecar, "yamlstore", "k") == "from yaml"
