"""Bad inputs against real `molt serve` processes: every case asserts the precise refusal (HTTP status and
Dapr errorCode, gRPC status code, ApplyResult failure, or exit code) and a message that names the
problem, then proves molt still serves with a valid call made right after the bad one.

Planes covered: the Dapr app API over HTTP (curl) and gRPC (the dapr package's stubs, plus raw bytes
for what those stubs cannot send), molt's control plane (Control and Layotto's Lifecycle), the CLI and
the configuration files (`molt serve`, `molt config check`, `molt apply -f`), and the plugins directory
(`molt plugin list`, `molt serve`).

Cases marked xfail(strict=True) document a molt bug: the reason gives the observed behaviour, the
assertions the expected one. They are strict, so the fix makes them fail until the mark is removed.

Limits (value, where set and enforced, what happens over it; paths of dependencies are under .build/checkouts/).
molt's own limits are named constants, one place per layer: `AppAPILimits` (Sources/Serving/Core/AppAPILimits.swift),
`ComponentLimits` (Sources/Engine/ComponentLimits.swift), `PluginHostLimits` (Sources/PluginHost/CMarshalling.swift).
  * HTTP app API body: 4 MiB = 4194304 bytes, Dapr's default --max-body-size (`AppAPILimits.maxHTTPBodyBytes`),
    enforced while the body is read (HTTPChannelHandler stops collecting it, HTTPServerRequest.decodeJSON refuses
    it; Sources/Serving/HTTP): one byte more is 400 ERR_MALFORMED_REQUEST "HTTP body is larger than 4194304 bytes",
    answered as soon as the limit is passed (the rest of the body is read and dropped).
  * gRPC request message, app and control planes: 4 MiB = 4194304 bytes (`AppAPILimits.maxGRPCMessageBytes`).
    The app API (Sources/Serving/GRPC/GRPCCallHandler.swift) answers one byte more with RESOURCE_EXHAUSTED naming
    the limit. The control plane sets it as grpc-swift's `maxRequestPayloadSize` (GRPCServerService in
    Sources/Host/Serve.swift): its decoder raises RESOURCE_EXHAUSTED, but its stream handler only resets the stream,
    so the client sees CANCELLED without a message (see the xfail case).
  * State values have no limit of their own: a value is at most the message carrying it (the two limits above,
    less the request's other bytes).
  * State key: 4096 UTF-8 bytes as the app sends it, before the `<app-id>||` prefix (`AppAPILimits.maxStateKeyBytes`),
    checked for every key of save, get, delete, bulk get, bulk delete and transactions, gRPC and HTTP
    (StateRequests.requireKey, Sources/Serving/Core/StateRequests.swift): one byte more is gRPC INVALID_ARGUMENT /
    HTTP 400 ERR_MALFORMED_REQUEST "state key 'kkkk…' is 4097 bytes, over the limit of 4096 bytes" (the key's
    first 32 characters). Such a key fits a URL even fully percent-encoded.
  * HTTP request head (request line + headers): 80 KiB = 81920 bytes, swift-nio's default
    NIOHTTPDecoderLimitConfiguration (swift-nio/Sources/NIOHTTP1/HTTPDecoder.swift:559-560), not changed
    by molt (Sources/Serving/HTTP/HTTPServer.swift). Over it swift-nio's HTTPServerProtocolErrorHandler answers
    a bare 400 (`Connection: close`, empty body) and the connection is closed
    (swift-nio/Sources/NIOHTTP1/HTTPServerProtocolErrorHandler.swift):
    only a key far over the state key limit reaches it (see the xfail case).
  * Lock ResourceId and LockOwner: 4096 UTF-8 bytes each (`AppAPILimits.maxLockResourceIDBytes`, `.maxLockOwnerBytes`),
    gRPC and HTTP, lock and unlock (LockRequests.requireArguments, StateRequests.swift): INVALID_ARGUMENT / 400
    ERR_MALFORMED_REQUEST "ResourceId 'rrrr…' is 4097 bytes, over the limit of 4096 bytes in lock store lockstore".
  * Lock expiry over HTTP: 1...Int32.max seconds, Sources/Serving/HTTP/DaprBodies.swift (TryLockBody.validated).
  * Components: at most 1024 per molt (`ComponentLimits.maxComponents`); per component at most 1024 metadata
    entries (`.maxMetadataEntries`), keys of 256 bytes (`.maxMetadataKeyBytes`), values of 65536 bytes
    (`.maxMetadataValueBytes`) and 1 MiB of keys and values together (`.maxMetadataBytes`). The engine checks them
    on every apply, batch and bootstrap (Engine.applySerialized, Engine.applyBatchLocked, Engine.bootstrap), so
    Control, Lifecycle, the agents and a restored snapshot all get them: the apply fails "invalid-definition"
    before any binary is loaded (Lifecycle: INVALID_ARGUMENT), naming the component, the size and the limit,
    e.g. "the value of metadata key 'note' of lock/x is 65537 bytes, over the limit of 65536 bytes", "adding
    lock/x would make 1025 components, over the limit of 1024; remove components first"; a batch is refused
    whole; a bootstrap over the count starts the first ones in name order and fails the rest. Component files
    are checked when read (ComponentSources, Sources/Config/Components/ComponentSources.swift), so `molt serve`
    and `molt apply -f` refuse them with the file and line (exit 64).
  * Plugin message buffer (errors a plugin reports from init, readiness, apply_config, export and import):
    69632 bytes (`PluginHostLimits.messageCapacity`), so a message quoting a whole metadata value at its limit
    still names the key; longer messages are cut. The ABI leaves the capacity to the host (>= 256).
  * Plugin file size: 256 MiB, Sources/PluginHost/PluginLoader.swift:20 (`maximumPluginSize`);
    config keys a plugin may declare: 4096, PluginLoader.swift:309; plugin names
    [a-z0-9][a-z0-9._-]{0,63}, PluginLoader.swift:338-345.
  * ELF vetting (Sources/PluginHost/ELFImage.swift) reads the ELF header, the program headers and the
    dynamic section with bounds checks, and refuses a file whose PT_LOAD segments reach past its end
    (dlopen would map them and fault with SIGBUS when touched).

Start-up refusals of `molt serve` (bad configuration or components files) are asserted by exit code
(64, ArgumentParser's usage error) and the message on stderr; molt never started, so there is nothing
that keeps serving in those cases.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import invoke_pb2, lock_pb2, state_pb2

from conftest import running_config, DAPR_LOCK_YAML, pick_free_port, wait_for

RPC_TIMEOUT_S = 15
CLI_TIMEOUT_S = 30
EX_USAGE = 64  # ArgumentParser's exit code for a ValidationError (every start-up refusal)

# The limits (see the module docstring for where each is set and enforced).
HTTP_BODY_LIMIT = 4 << 20  # AppAPILimits.maxHTTPBodyBytes
GRPC_MESSAGE_LIMIT = 4 << 20  # AppAPILimits.maxGRPCMessageBytes
HTTP_HEAD_LIMIT = 80 * 1024  # swift-nio NIOHTTP1/HTTPDecoder.swift:559-560
STATE_KEY_LIMIT = 4096  # AppAPILimits.maxStateKeyBytes
LOCK_ID_LIMIT = 4096  # AppAPILimits.maxLockResourceIDBytes and .maxLockOwnerBytes
COMPONENT_LIMIT = 1024  # ComponentLimits.maxComponents
METADATA_ENTRIES_LIMIT = 1024  # ComponentLimits.maxMetadataEntries
METADATA_KEY_LIMIT = 256  # ComponentLimits.maxMetadataKeyBytes
METADATA_VALUE_LIMIT = 64 * 1024  # ComponentLimits.maxMetadataValueBytes
METADATA_TOTAL_LIMIT = 1 << 20  # ComponentLimits.maxMetadataBytes

API_TOKEN = "app-s3cret"
CONTROL_TOKEN = "control-s3cret"


def molt_bug(reason: str):
    """The mark of a case molt gets wrong: strict, and only an AssertionError counts as the expected failure
    (a broken fixture or an unexpected exception still fails the test)."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"molt bug: {reason}")


# ---------------------------------------------------------------------------------------------
# Shared sidecars


@pytest.fixture(scope="module")
def guarded(module_molt, redis, components):
    """A molt with an app API token and a control token."""
    return module_molt([components.state("statestore", redis), components.lock("lockstore")],
                       api_token=API_TOKEN, control_token=CONTROL_TOKEN)


@pytest.fixture(scope="module")
def dapr(sidecar):
    """The Dapr gRPC stub on the shared sidecar's app port (one channel for the module)."""
    return sidecar.dapr_stub()


# ---------------------------------------------------------------------------------------------
# "molt keeps serving": a valid call right after the bad one


def assert_http_serves(molt, tag: str) -> None:
    """molt is alive and a Dapr HTTP state save then get round-trips a fresh value."""
    assert molt.alive(), f"molt exited after the bad input (exit code {molt.process.poll()})"
    key, value = f"after-{tag}", {"fine": tag, "at": time.monotonic_ns()}
    saved = molt.http("POST", "/v1.0/state/statestore", [{"key": key, "value": value}])
    assert saved.status == 204, f"a valid save after the bad input failed: {saved}"
    got = molt.http("GET", f"/v1.0/state/statestore/{key}")
    assert got.status == 200 and got.json() == value, f"a valid get after the bad input failed: {got}"


def assert_grpc_serves(molt, stub, tag: str) -> None:
    """molt is alive and a Dapr gRPC SaveState then GetState round-trips a fresh value."""
    assert molt.alive(), f"molt exited after the bad input (exit code {molt.process.poll()})"
    key, value = f"after-grpc-{tag}", f"fine-{time.monotonic_ns()}".encode()
    stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore", states=[common_pb2.StateItem(key=key, value=value)]),
                   metadata=molt.app_metadata(), timeout=RPC_TIMEOUT_S)
    got = stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key=key), metadata=molt.app_metadata(),
                        timeout=RPC_TIMEOUT_S)
    assert got.data == value, f"a valid GetState after the bad input returned {got.data!r}"


def assert_components_unchanged(molt, expected: dict | None = None) -> None:
    """Control.ListComponents answers and shows exactly the bootstrap components, still generation 1 with
    their bootstrap configuration (nothing the bad input carried was applied)."""
    assert molt.alive(), f"molt exited after the bad input (exit code {molt.process.poll()})"
    listed = molt.list_components()
    expected = expected or {("lock", "lockstore"): {}, ("state", "statestore"): None}
    assert sorted(listed) == sorted(expected), f"the components changed: {sorted(listed)}"
    for key, metadata in expected.items():
        assert listed[key].generation == 1, f"{key} has generation {listed[key].generation}"
        if metadata is not None:
            assert dict(listed[key].metadata) == running_config(listed[key].plugin, metadata), f"{key} runs with {dict(listed[key].metadata)}"


def try_lock_works(molt, store: str = "lockstore") -> None:
    """A fresh resource is granted over the Dapr gRPC API (the lock plugin serves)."""
    resource = f"after-{time.monotonic_ns()}"
    assert molt.try_lock(store, resource, "checker", expiry=5), f"{store}: a fresh lock was not granted"


# ---------------------------------------------------------------------------------------------
# App API over HTTP


LONG_KEY = "k" * (STATE_KEY_LIMIT + 1)
LONG_KEY_MESSAGE = f"state key '{'k' * 32}…' is {STATE_KEY_LIMIT + 1} bytes, over the limit of {STATE_KEY_LIMIT} bytes"
LONG_MULTIBYTE_KEY = "é" * (STATE_KEY_LIMIT // 2 + 1)  # 2049 characters, 4098 UTF-8 bytes


def lock_id_message(field: str, letter: str, store: str = "lockstore") -> str:
    """molt's refusal of a ResourceId or LockOwner made of LOCK_ID_LIMIT + 1 times `letter`."""
    return (f"{field} '{letter * 32}…' is {LOCK_ID_LIMIT + 1} bytes, over the limit of {LOCK_ID_LIMIT} bytes "
            f"in lock store {store}")


# (id, method, path, body, extra headers, HTTP status, Dapr errorCode, message substring)
HTTP_CASES = [
    # -- state save: malformed and wrong-typed JSON
    ("save-truncated-json", "POST", "/v1.0/state/statestore", '[{"key": "k", "value": ', None,
     400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: body: The given data was not valid JSON"),
    ("save-object-not-list", "POST", "/v1.0/state/statestore", '{"key": "k", "value": 1}', None,
     400, "ERR_MALFORMED_REQUEST", "body: Expected to decode Array<Any> but found a dictionary instead"),
    ("save-key-is-a-number", "POST", "/v1.0/state/statestore", '[{"key": 5, "value": 1}]', None,
     400, "ERR_MALFORMED_REQUEST", "[0].key: Expected to decode String but found number instead"),
    ("save-key-missing", "POST", "/v1.0/state/statestore", '[{"value": 1}]', None,
     400, "ERR_MALFORMED_REQUEST", "[0].key: required field is missing"),
    ("save-etag-is-a-number", "POST", "/v1.0/state/statestore", '[{"key": "k", "value": 1, "etag": 5}]', None,
     400, "ERR_MALFORMED_REQUEST", "[0].etag: Expected to decode String but found number instead"),
    ("save-metadata-value-is-a-number", "POST", "/v1.0/state/statestore",
     '[{"key": "k", "value": 1, "metadata": {"ttlInSeconds": 5}}]', None,
     400, "ERR_MALFORMED_REQUEST", "[0].metadata.ttlInSeconds: Expected to decode String but found number instead"),
    # -- state save: values molt or the store refuse
    ("save-empty-key", "POST", "/v1.0/state/statestore", '[{"key": "", "value": 1}]', None,
     400, "ERR_MALFORMED_REQUEST", "a state key must not be empty"),
    ("save-key-with-separator", "POST", "/v1.0/state/statestore", '[{"key": "a||b", "value": 1}]', None,
     400, "ERR_MALFORMED_REQUEST", "input key 'a||b' can't contain '||'"),
    ("save-unknown-store", "POST", "/v1.0/state/no-such-store", '[{"key": "k", "value": 1}]', None,
     400, "ERR_STATE_STORE_NOT_FOUND", "state store no-such-store is not found"),
    ("save-etag-not-a-version", "POST", "/v1.0/state/statestore", '[{"key": "k", "value": 1, "etag": "not-a-number"}]', None,
     400, "ERR_STATE_SAVE", "invalid etag value: etag 'not-a-number' is not a valid redis-state etag (an integer version)"),
    ("save-unknown-concurrency", "POST", "/v1.0/state/statestore",
     '[{"key": "k", "value": 1, "options": {"concurrency": "sometimes"}}]', None,
     400, "ERR_MALFORMED_REQUEST", "unknown concurrency 'sometimes' (first-write or last-write)"),
    ("save-ttl-not-an-integer", "POST", "/v1.0/state/statestore",
     '[{"key": "k", "value": 1, "metadata": {"ttlInSeconds": "soon"}}]', None,
     400, "ERR_MALFORMED_REQUEST", "metadata ttlInSeconds 'soon' of key 'k' is not an integer >= -1"),
    # -- invalid UTF-8
    ("save-invalid-utf8-in-key", "POST", "/v1.0/state/statestore", b'[{"key": "k\xff", "value": 1}]', None,
     400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: body: The given data was not valid JSON"),
    pytest.param(
        "save-invalid-utf8-in-value", "POST", "/v1.0/state/statestore", b'[{"key": "k", "value": "\xff\xfe"}]', None,
        400, "ERR_MALFORMED_REQUEST", "UTF-8",
        marks=molt_bug("a JSON string value holding invalid UTF-8 is refused with 400 ERR_MALFORMED_REQUEST, but the "
                       "message is misleading: '[0].value: Expected to decode Dictionary<String, Any> but found a string "
                       "instead.' (JSONValue's decoder falls through to its last alternative); expected a message naming "
                       "the invalid UTF-8"),
        id="save-invalid-utf8-in-value"),
    pytest.param(
        "get-invalid-utf8-in-path-key", "GET", "/v1.0/state/statestore/k%FF", None, None,
        400, "ERR_MALFORMED_REQUEST", "UTF-8",
        id="get-invalid-utf8-in-path-key"),
    # -- state get and delete
    ("get-key-with-separator", "GET", "/v1.0/state/statestore/a%7C%7Cb", None, None,
     400, "ERR_MALFORMED_REQUEST", "input key 'a||b' can't contain '||'"),
    ("get-unknown-store", "GET", "/v1.0/state/no-such-store/k", None, None,
     400, "ERR_STATE_STORE_NOT_FOUND", "state store no-such-store is not found"),
    ("get-unknown-consistency", "GET", "/v1.0/state/statestore/k?consistency=sometimes", None, None,
     400, "ERR_MALFORMED_REQUEST", "unknown consistency 'sometimes' (eventual or strong)"),
    ("delete-etag-not-a-version", "DELETE", "/v1.0/state/statestore/k", None, {"If-Match": "W/\"xyz\""},
     400, "ERR_STATE_DELETE", "invalid etag value: etag 'W/\"xyz\"' is not a valid redis-state etag"),
    ("delete-unknown-store", "DELETE", "/v1.0/state/no-such-store/k", None, None,
     400, "ERR_STATE_STORE_NOT_FOUND", "state store no-such-store is not found"),
    # -- bulk get
    ("bulk-keys-not-a-list", "POST", "/v1.0/state/statestore/bulk", '{"keys": "a"}', None,
     400, "ERR_MALFORMED_REQUEST", "keys: Expected to decode Array<Any> but found a string instead"),
    ("bulk-parallelism-is-a-string", "POST", "/v1.0/state/statestore/bulk", '{"keys": ["a"], "parallelism": "x"}', None,
     400, "ERR_MALFORMED_REQUEST", "parallelism: Expected to decode Int but found a string instead"),
    ("bulk-empty-key", "POST", "/v1.0/state/statestore/bulk", '{"keys": ["a", ""]}', None,
     400, "ERR_MALFORMED_REQUEST", "a state key must not be empty"),
    ("bulk-unknown-store", "POST", "/v1.0/state/no-such-store/bulk", '{"keys": ["a"]}', None,
     400, "ERR_STATE_STORE_NOT_FOUND", "state store no-such-store is not found"),
    # -- transaction
    ("transaction-unknown-operation", "POST", "/v1.0/state/statestore/transaction",
     '{"operations": [{"operation": "merge", "request": {"key": "a"}}]}', None,
     400, "ERR_NOT_SUPPORTED_STATE_OPERATION", "operation type merge not supported"),
    ("transaction-operations-missing", "POST", "/v1.0/state/statestore/transaction", '{"ops": []}', None,
     400, "ERR_MALFORMED_REQUEST", "operations: required field is missing"),
    ("transaction-request-not-an-object", "POST", "/v1.0/state/statestore/transaction",
     '{"operations": [{"operation": "upsert", "request": "a"}]}', None,
     400, "ERR_MALFORMED_REQUEST", "operations[0].request: Expected to decode Dictionary<String, Any> but found a string"),
    ("transaction-key-with-separator", "POST", "/v1.0/state/statestore/transaction",
     '{"operations": [{"operation": "upsert", "request": {"key": "x||y", "value": 1}}]}', None,
     400, "ERR_MALFORMED_REQUEST", "input key 'x||y' can't contain '||'"),
    # -- lock and unlock
    # A string holding a number is an int32 to protojson (Dapr's reader), and to molt (test_http.py).
    ("lock-expiry-is-a-word", "POST", "/v1.0-alpha1/lock/lockstore",
     '{"resourceId": "r", "lockOwner": "o", "expiryInSeconds": "ten"}', None,
     400, "ERR_MALFORMED_REQUEST", "expiryInSeconds: Expected to decode Int64 but found a string instead"),
    ("lock-expiry-zero", "POST", "/v1.0-alpha1/lock/lockstore",
     '{"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 0}', None,
     400, "ERR_MALFORMED_REQUEST", "ExpiryInSeconds is not positive in lock store lockstore"),
    ("lock-expiry-over-int32", "POST", "/v1.0-alpha1/lock/lockstore",
     '{"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 99999999999}', None,
     400, "ERR_MALFORMED_REQUEST", "ExpiryInSeconds 99999999999 is too large in lock store lockstore"),
    ("lock-resource-missing", "POST", "/v1.0-alpha1/lock/lockstore", '{"lockOwner": "o", "expiryInSeconds": 10}', None,
     400, "ERR_MALFORMED_REQUEST", "ResourceId is empty in lock store lockstore"),
    ("lock-unknown-store", "POST", "/v1.0-alpha1/lock/no-such-lock",
     '{"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 10}', None,
     400, "ERR_LOCK_STORE_NOT_FOUND", "lock store no-such-lock is not found"),
    ("unlock-body-is-a-list", "POST", "/v1.0-alpha1/unlock/lockstore", "[1]", None,
     400, "ERR_MALFORMED_REQUEST", "body: Expected to decode Dictionary<String, Any> but found an array instead"),
    ("unlock-owner-empty", "POST", "/v1.0-alpha1/unlock/lockstore", '{"resourceId": "r", "lockOwner": ""}', None,
     400, "ERR_MALFORMED_REQUEST", "LockOwner is empty in lock store lockstore"),
    # -- keys, resource ids and owners one byte over their limit (bytes, not characters)
    ("save-key-over-limit", "POST", "/v1.0/state/statestore", json.dumps([{"key": LONG_KEY, "value": 1}]), None,
     400, "ERR_MALFORMED_REQUEST", LONG_KEY_MESSAGE),
    ("save-multibyte-key-over-limit", "POST", "/v1.0/state/statestore", json.dumps([{"key": LONG_MULTIBYTE_KEY, "value": 1}]),
     None, 400, "ERR_MALFORMED_REQUEST",
     f"state key '{'é' * 32}…' is {STATE_KEY_LIMIT + 2} bytes, over the limit of {STATE_KEY_LIMIT} bytes"),
    ("save-second-item-key-over-limit", "POST", "/v1.0/state/statestore",
     json.dumps([{"key": "first-of-two", "value": 1}, {"key": LONG_KEY, "value": 1}]), None,
     400, "ERR_MALFORMED_REQUEST", LONG_KEY_MESSAGE),
    ("get-key-over-limit", "GET", f"/v1.0/state/statestore/{LONG_KEY}", None, None,
     400, "ERR_MALFORMED_REQUEST", LONG_KEY_MESSAGE),
    ("get-percent-encoded-key-over-limit", "GET", f"/v1.0/state/statestore/{quote(LONG_MULTIBYTE_KEY)}", None, None,
     400, "ERR_MALFORMED_REQUEST", f"is {STATE_KEY_LIMIT + 2} bytes, over the limit of {STATE_KEY_LIMIT} bytes"),
    ("delete-key-over-limit", "DELETE", f"/v1.0/state/statestore/{LONG_KEY}", None, None,
     400, "ERR_MALFORMED_REQUEST", LONG_KEY_MESSAGE),
    ("bulk-key-over-limit", "POST", "/v1.0/state/statestore/bulk", json.dumps({"keys": ["a", LONG_KEY]}), None,
     400, "ERR_MALFORMED_REQUEST", LONG_KEY_MESSAGE),
    ("transaction-upsert-key-over-limit", "POST", "/v1.0/state/statestore/transaction",
     json.dumps({"operations": [{"operation": "upsert", "request": {"key": LONG_KEY, "value": 1}}]}), None,
     400, "ERR_MALFORMED_REQUEST", LONG_KEY_MESSAGE),
    ("transaction-delete-key-over-limit", "POST", "/v1.0/state/statestore/transaction",
     json.dumps({"operations": [{"operation": "delete", "request": {"key": LONG_KEY}}]}), None,
     400, "ERR_MALFORMED_REQUEST", LONG_KEY_MESSAGE),
    ("lock-resource-over-limit", "POST", "/v1.0-alpha1/lock/lockstore",
     json.dumps({"resourceId": "r" * (LOCK_ID_LIMIT + 1), "lockOwner": "o", "expiryInSeconds": 10}), None,
     400, "ERR_MALFORMED_REQUEST", lock_id_message("ResourceId", "r")),
    ("lock-owner-over-limit", "POST", "/v1.0-alpha1/lock/lockstore",
     json.dumps({"resourceId": "r", "lockOwner": "o" * (LOCK_ID_LIMIT + 1), "expiryInSeconds": 10}), None,
     400, "ERR_MALFORMED_REQUEST", lock_id_message("LockOwner", "o")),
    ("unlock-resource-over-limit", "POST", "/v1.0-alpha1/unlock/lockstore",
     json.dumps({"resourceId": "r" * (LOCK_ID_LIMIT + 1), "lockOwner": "o"}), None,
     400, "ERR_MALFORMED_REQUEST", lock_id_message("ResourceId", "r")),
    ("unlock-owner-over-limit", "POST", "/v1.0-alpha1/unlock/lockstore",
     json.dumps({"resourceId": "r", "lockOwner": "o" * (LOCK_ID_LIMIT + 1)}), None,
     400, "ERR_MALFORMED_REQUEST", lock_id_message("LockOwner", "o")),
]


def _case_id(case) -> str:
    return case.id if hasattr(case, "id") and case.id else case[0]


@pytest.mark.parametrize("case_id, method, path, body, headers, status, error_code, message", HTTP_CASES,
                         ids=[_case_id(case) for case in HTTP_CASES])
def test_http_app_api_refuses(sidecar, case_id, method, path, body, headers, status, error_code, message):
    response = sidecar.http(method, path, body, headers=headers)
    assert response.status == status, f"{case_id}: {response}"
    assert response.headers.get("content-type", "").startswith("application/json"), f"{case_id}: {response}"
    error = response.json()
    assert error.get("errorCode") == error_code, f"{case_id}: {response}"
    assert message in error.get("message", ""), f"{case_id}: expected {message!r} in {response}"
    assert_http_serves(sidecar, case_id)


def raw_http(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
    """One request with http.client (no `Expect: 100-continue` pause for large bodies, unlike curl)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def body_of_size(size: int, key: str) -> bytes:
    """A state save body of exactly `size` bytes: one item whose string value fills the rest."""
    frame = f'[{{"key":"{key}","value":""}}]'
    body = (f'[{{"key":"{key}","value":"' + "x" * (size - len(frame)) + '"}]').encode()
    assert len(body) == size
    return body


def test_http_body_of_exactly_the_limit_is_served(sidecar):
    """The boundary of the limit below: 4 MiB exactly is a normal save."""
    status, answer = raw_http(sidecar.http_port, "POST", "/v1.0/state/statestore", body_of_size(HTTP_BODY_LIMIT, "at-limit"))
    assert status == 204, answer
    got = sidecar.http("GET", "/v1.0/state/statestore/at-limit")
    assert got.status == 200 and len(got.json()) == HTTP_BODY_LIMIT - len('[{"key":"at-limit","value":""}]'), str(got)[:200]


@pytest.mark.parametrize("size", [HTTP_BODY_LIMIT + 1, 16 * HTTP_BODY_LIMIT], ids=["limit+1", "16x-limit"])
def test_http_oversized_body(sidecar, size):
    status, answer = raw_http(sidecar.http_port, "POST", "/v1.0/state/statestore", body_of_size(size, f"over-{size}"))
    assert status == 400, answer[:300]
    error = json.loads(answer)
    assert error == {"errorCode": "ERR_MALFORMED_REQUEST", "message": f"HTTP body is larger than {HTTP_BODY_LIMIT} bytes"}
    assert sidecar.http("GET", f"/v1.0/state/statestore/over-{size}").status == 204, "part of the oversized save was stored"
    assert_http_serves(sidecar, f"oversized-{size}")


@molt_bug(f"a request whose URL (with the headers) exceeds swift-nio's {HTTP_HEAD_LIMIT}-byte head limit, e.g. a "
          "90000-byte state key in the path, gets a bare 400 with an empty body (swift-nio's HTTP parser error "
          "answer) and the connection is closed; expected a Dapr error (JSON errorCode/message) naming the size "
          "limit, or 414/431")
def test_http_oversized_key_in_path(sidecar):
    status, answer = raw_http(sidecar.http_port, "GET", "/v1.0/state/statestore/" + "k" * 90_000)
    try:
        assert status in (400, 414, 431), f"status {status}"
        error = json.loads(answer) if answer else {}
        assert error.get("errorCode"), f"no Dapr error body: {answer[:200]!r}"
        assert str(HTTP_HEAD_LIMIT) in error.get("message", "") or "too long" in error.get("message", ""), error
    finally:
        assert_http_serves(sidecar, "oversized-path")


@pytest.mark.parametrize("key", ["k" * STATE_KEY_LIMIT, "é" * (STATE_KEY_LIMIT // 2)], ids=["ascii", "two-byte-characters"])
def test_http_state_key_of_exactly_the_limit_is_served(sidecar, key):
    """A key of exactly STATE_KEY_LIMIT bytes goes through every state call (the over-limit cases are in HTTP_CASES)."""
    path = f"/v1.0/state/statestore/{quote(key)}"
    saved = sidecar.http("POST", "/v1.0/state/statestore", [{"key": key, "value": {"at": "limit"}}])
    assert saved.status == 204, str(saved)
    got = sidecar.http("GET", path)
    assert got.status == 200 and got.json() == {"at": "limit"}, str(got)
    bulk = sidecar.http("POST", "/v1.0/state/statestore/bulk", {"keys": [key]})
    assert bulk.status == 200 and [item["key"] for item in bulk.json()] == [key], str(bulk)
    transaction = sidecar.http("POST", "/v1.0/state/statestore/transaction",
                               {"operations": [{"operation": "upsert", "request": {"key": key, "value": 2}}]})
    assert transaction.status == 204, str(transaction)
    deleted = sidecar.http("DELETE", path)
    assert deleted.status == 204 and sidecar.http("GET", path).status == 204, str(deleted)


def test_http_lock_ids_of_exactly_the_limit_are_served(sidecar):
    resource, owner = "r" * LOCK_ID_LIMIT, "o" * LOCK_ID_LIMIT
    locked = sidecar.http("POST", "/v1.0-alpha1/lock/lockstore",
                          {"resourceId": resource, "lockOwner": owner, "expiryInSeconds": 10})
    assert locked.status == 200 and locked.json() == {"success": True}, str(locked)
    unlocked = sidecar.http("POST", "/v1.0-alpha1/unlock/lockstore", {"resourceId": resource, "lockOwner": owner})
    assert unlocked.status == 200 and unlocked.json() == {"status": 0}, str(unlocked)


# ---------------------------------------------------------------------------------------------
# App API over gRPC


def raw_unary(molt, method: str, payload: bytes, metadata=None):
    """A unary call with a hand-made request body (bytes the generated stubs would never send)."""
    call = molt.channel(molt.grpc_port).unary_unary(f"/dapr.proto.runtime.v1.Dapr/{method}",
                                                    request_serializer=lambda raw: raw,
                                                    response_deserializer=lambda raw: raw)
    return call(payload, metadata=metadata or molt.app_metadata(), timeout=RPC_TIMEOUT_S)


def length_delimited(field: int, value: bytes) -> bytes:
    assert len(value) < 128
    return bytes([field << 3 | 2, len(value)]) + value


def save_request(key: str, value: bytes = b"1", etag: str | None = None, store: str = "statestore"):
    item = common_pb2.StateItem(key=key, value=value)
    if etag is not None:
        item.etag.value = etag
    return state_pb2.SaveStateRequest(store_name=store, states=[item])


# (id, call(molt, stub), gRPC status code, message substring)
GRPC_CASES = [
    ("get-unknown-store", lambda m, s: s.GetState(state_pb2.GetStateRequest(store_name="no-such-store", key="k"),
                                                  timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "state store no-such-store is not found"),
    ("get-empty-key", lambda m, s: s.GetState(state_pb2.GetStateRequest(store_name="statestore", key=""), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "a state key must not be empty"),
    ("save-empty-key", lambda m, s: s.SaveState(save_request(""), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "a state key must not be empty"),
    ("save-key-with-separator", lambda m, s: s.SaveState(save_request("a||b"), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "input key 'a||b' can't contain '||'"),
    ("save-unknown-store", lambda m, s: s.SaveState(save_request("k", store="no-such-store"), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "state store no-such-store is not found"),
    ("save-etag-not-a-version", lambda m, s: s.SaveState(save_request("k", etag="zz"), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "invalid etag value: etag 'zz' is not a valid redis-state etag (an integer version)"),
    ("delete-bulk-empty-key", lambda m, s: s.DeleteBulkState(
        state_pb2.DeleteBulkStateRequest(store_name="statestore", states=[common_pb2.StateItem(key="")]), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "a state key must not be empty"),
    ("transaction-unknown-operation", lambda m, s: s.ExecuteStateTransaction(state_pb2.ExecuteStateTransactionRequest(
        storeName="statestore", operations=[state_pb2.TransactionalStateOperation(
            operationType="merge", request=common_pb2.StateItem(key="a"))]), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "operation type 'merge' is not supported: use 'upsert' or 'delete'"),
    ("lock-expiry-zero", lambda m, s: s.TryLockAlpha1(lock_pb2.TryLockRequest(
        store_name="lockstore", resource_id="r", lock_owner="o", expiry_in_seconds=0), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "ExpiryInSeconds is not positive in lock store lockstore"),
    ("lock-owner-empty", lambda m, s: s.TryLockAlpha1(lock_pb2.TryLockRequest(
        store_name="lockstore", resource_id="r", lock_owner="", expiry_in_seconds=5), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "LockOwner is empty in lock store lockstore"),
    ("lock-unknown-store", lambda m, s: s.TryLockAlpha1(lock_pb2.TryLockRequest(
        store_name="no-such-lock", resource_id="r", lock_owner="o", expiry_in_seconds=5), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, "lock store no-such-lock is not found"),
    # proto3 strings must be UTF-8: field 1 store_name, field 2 key = b"k\xff".
    ("get-invalid-utf8-key", lambda m, s: raw_unary(m, "GetState", length_delimited(1, b"statestore")
                                                    + length_delimited(2, b"k\xff")),
     grpc.StatusCode.INVALID_ARGUMENT, "Can't deserialize to message of type Dapr_Proto_Runtime_V1_GetStateRequest"),
    ("save-garbage-bytes", lambda m, s: raw_unary(m, "SaveState", b"\xff\xff\xff\xff"),
     grpc.StatusCode.INVALID_ARGUMENT, "Can't deserialize to message of type Dapr_Proto_Runtime_V1_SaveStateRequest"),
    ("method-molt-does-not-have", lambda m, s: s.InvokeService(invoke_pb2.InvokeServiceRequest(id="other-app"),
                                                               timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.UNIMPLEMENTED, "Requested RPC isn't implemented by this server"),
    # -- keys, resource ids and owners one byte over their limit
    ("get-key-over-limit", lambda m, s: s.GetState(state_pb2.GetStateRequest(store_name="statestore", key=LONG_KEY),
                                                   timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, LONG_KEY_MESSAGE),
    ("save-key-over-limit", lambda m, s: s.SaveState(save_request(LONG_KEY), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, LONG_KEY_MESSAGE),
    ("save-multibyte-key-over-limit", lambda m, s: s.SaveState(save_request(LONG_MULTIBYTE_KEY), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, f"is {STATE_KEY_LIMIT + 2} bytes, over the limit of {STATE_KEY_LIMIT} bytes"),
    ("delete-key-over-limit", lambda m, s: s.DeleteState(state_pb2.DeleteStateRequest(store_name="statestore", key=LONG_KEY),
                                                         timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, LONG_KEY_MESSAGE),
    ("bulk-get-key-over-limit", lambda m, s: s.GetBulkState(state_pb2.GetBulkStateRequest(
        store_name="statestore", keys=["a", LONG_KEY]), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, LONG_KEY_MESSAGE),
    ("delete-bulk-key-over-limit", lambda m, s: s.DeleteBulkState(state_pb2.DeleteBulkStateRequest(
        store_name="statestore", states=[common_pb2.StateItem(key="a"), common_pb2.StateItem(key=LONG_KEY)]),
        timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, LONG_KEY_MESSAGE),
    ("transaction-key-over-limit", lambda m, s: s.ExecuteStateTransaction(state_pb2.ExecuteStateTransactionRequest(
        storeName="statestore", operations=[state_pb2.TransactionalStateOperation(
            operationType="upsert", request=common_pb2.StateItem(key=LONG_KEY, value=b"1"))]), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, LONG_KEY_MESSAGE),
    ("lock-resource-over-limit", lambda m, s: s.TryLockAlpha1(lock_pb2.TryLockRequest(
        store_name="lockstore", resource_id="r" * (LOCK_ID_LIMIT + 1), lock_owner="o", expiry_in_seconds=5),
        timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, lock_id_message("ResourceId", "r")),
    ("lock-owner-over-limit", lambda m, s: s.TryLockAlpha1(lock_pb2.TryLockRequest(
        store_name="lockstore", resource_id="r", lock_owner="o" * (LOCK_ID_LIMIT + 1), expiry_in_seconds=5),
        timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, lock_id_message("LockOwner", "o")),
    ("unlock-resource-over-limit", lambda m, s: s.UnlockAlpha1(lock_pb2.UnlockRequest(
        store_name="lockstore", resource_id="r" * (LOCK_ID_LIMIT + 1), lock_owner="o"), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, lock_id_message("ResourceId", "r")),
    ("unlock-owner-over-limit", lambda m, s: s.UnlockAlpha1(lock_pb2.UnlockRequest(
        store_name="lockstore", resource_id="r", lock_owner="o" * (LOCK_ID_LIMIT + 1)), timeout=RPC_TIMEOUT_S),
     grpc.StatusCode.INVALID_ARGUMENT, lock_id_message("LockOwner", "o")),
]


@pytest.mark.parametrize("case_id, call, code, message", GRPC_CASES, ids=[case[0] for case in GRPC_CASES])
def test_grpc_app_api_refuses(sidecar, dapr, case_id, call, code, message):
    with pytest.raises(grpc.RpcError) as caught:
        call(sidecar, dapr)
    error = caught.value
    assert error.code() == code, f"{case_id}: {error.code()} {error.details()!r}"
    assert message in (error.details() or ""), f"{case_id}: expected {message!r} in {error.details()!r}"
    assert_grpc_serves(sidecar, dapr, case_id)


def test_grpc_keys_and_lock_ids_of_exactly_the_limit_are_served(sidecar, dapr):
    """A state key and lock ids of exactly their limits go through every call (the over-limit cases are in GRPC_CASES)."""
    key, metadata = "k" * STATE_KEY_LIMIT, sidecar.app_metadata()
    dapr.SaveState(save_request(key, b"at-limit"), metadata=metadata, timeout=RPC_TIMEOUT_S)
    got = dapr.GetState(state_pb2.GetStateRequest(store_name="statestore", key=key), metadata=metadata, timeout=RPC_TIMEOUT_S)
    assert got.data == b"at-limit"
    bulk = dapr.GetBulkState(state_pb2.GetBulkStateRequest(store_name="statestore", keys=[key]), metadata=metadata,
                             timeout=RPC_TIMEOUT_S)
    assert [(item.key, item.data) for item in bulk.items] == [(key, b"at-limit")]
    dapr.ExecuteStateTransaction(state_pb2.ExecuteStateTransactionRequest(storeName="statestore", operations=[
        state_pb2.TransactionalStateOperation(operationType="delete", request=common_pb2.StateItem(key=key))]),
        metadata=metadata, timeout=RPC_TIMEOUT_S)
    gone = dapr.GetState(state_pb2.GetStateRequest(store_name="statestore", key=key), metadata=metadata, timeout=RPC_TIMEOUT_S)
    assert gone.data == b""
    resource, owner = "r" * LOCK_ID_LIMIT, "o" * LOCK_ID_LIMIT
    locked = dapr.TryLockAlpha1(lock_pb2.TryLockRequest(store_name="lockstore", resource_id=resource, lock_owner=owner,
                                                        expiry_in_seconds=5), metadata=metadata, timeout=RPC_TIMEOUT_S)
    assert locked.success
    unlocked = dapr.UnlockAlpha1(lock_pb2.UnlockRequest(store_name="lockstore", resource_id=resource, lock_owner=owner),
                                 metadata=metadata, timeout=RPC_TIMEOUT_S)
    assert unlocked.status == lock_pb2.UnlockResponse.SUCCESS


def save_request_of_size(size: int, key: str):
    """A SaveStateRequest whose serialized size is exactly `size` bytes."""
    for shrink in range(64):
        request = save_request(key, b"x" * (size - shrink))
        if request.ByteSize() == size:
            return request
    raise RuntimeError(f"cannot build a SaveStateRequest of {size} bytes")


def test_grpc_message_of_exactly_the_limit_is_served(sidecar, dapr):
    """The boundary of the limit below: a SaveStateRequest of exactly 4 MiB is a normal save."""
    request = save_request_of_size(GRPC_MESSAGE_LIMIT, "grpc-at-limit")
    dapr.SaveState(request, timeout=RPC_TIMEOUT_S)
    # Read back over HTTP: grpcio's client refuses to receive more than 4 MiB by default.
    status, stored = raw_http(sidecar.http_port, "GET", "/v1.0/state/statestore/grpc-at-limit")
    assert status == 200 and stored == request.states[0].value, f"HTTP {status}, {len(stored)} bytes"


def test_grpc_oversized_message(sidecar, dapr):
    with pytest.raises(grpc.RpcError) as caught:
        dapr.SaveState(save_request_of_size(GRPC_MESSAGE_LIMIT + 1, "grpc-over-limit"), timeout=RPC_TIMEOUT_S)
    try:
        error = caught.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{error.code()} {error.details()!r}"
        assert str(GRPC_MESSAGE_LIMIT) in (error.details() or ""), error.details()
    finally:
        assert_grpc_serves(sidecar, dapr, "oversized")


# ---------------------------------------------------------------------------------------------
# App API token


@pytest.mark.parametrize("token, message", [(None, "missing dapr-api-token metadata"),
                                            ("wrong", "dapr-api-token does not match the configured token")],
                         ids=["missing", "wrong"])
def test_grpc_api_token_refused(guarded, token, message):
    stub = guarded.dapr_stub()
    with pytest.raises(grpc.RpcError) as caught:
        stub.SaveState(save_request("token-test"), metadata=guarded.app_metadata(token), timeout=RPC_TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    assert caught.value.details() == message
    unwritten = stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="token-test"),
                              metadata=guarded.app_metadata(), timeout=RPC_TIMEOUT_S)
    assert unwritten.data == b"", "the refused save was written"
    assert_grpc_serves(guarded, stub, f"token-{token}")


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
def test_http_api_token_refused(guarded, token):
    denied = guarded.http("POST", "/v1.0/state/statestore", [{"key": "token-http", "value": 1}], token=token)
    assert denied.status == 401, str(denied)
    assert denied.json() == {"errorCode": "ERR_UNAUTHORIZED", "message": "invalid api token"}, str(denied)
    assert guarded.http("GET", "/v1.0/state/statestore/token-http").status == 204, "the refused save was written"
    assert_http_serves(guarded, f"token-{token}")


# ---------------------------------------------------------------------------------------------
# Control plane


def apply_call(**request):
    return lambda molt: molt.control_apply(**request)


# Applies that molt's Control.Apply refuses with a gRPC status: (id, request, code, message).
CONTROL_STATUS_CASES = [
    ("apply-unknown-kind", dict(kind="queue", name="q", plugin="memorylock"),
     grpc.StatusCode.INVALID_ARGUMENT, "kind 'queue' is not one of lock, state, binding, secretstore, configuration, pubsub"),
    ("apply-empty-name", dict(kind="lock", name="", plugin="memorylock"),
     grpc.StatusCode.INVALID_ARGUMENT, "component name is empty: a component name is lowercase RFC 1123 labels (a-z, 0-9 and '-', "
     "starting and ending with a letter or digit, at most 63 characters each) joined by '.', at most 253 characters"),
    ("apply-bad-semver", dict(kind="lock", name="x", plugin="memorylock", version="one.two"),
     grpc.StatusCode.INVALID_ARGUMENT, "version 'one.two' of lock/x is not a semantic version (like 1.2.0)"),
]


@pytest.mark.parametrize("case_id, request_fields, code, message", CONTROL_STATUS_CASES,
                         ids=[case[0] for case in CONTROL_STATUS_CASES])
def test_control_apply_refused_with_a_status(sidecar, case_id, request_fields, code, message):
    with pytest.raises(grpc.RpcError) as caught:
        sidecar.control_apply(**request_fields)
    assert caught.value.code() == code, f"{case_id}: {caught.value}"
    assert caught.value.details() == message
    assert_components_unchanged(sidecar)
    assert_http_serves(sidecar, case_id)


ZERO_PIN = "0" * 64

def metadata_entries(count: int) -> dict[str, str]:
    """`count` metadata entries k0000, k0001, ... (5-byte keys), each "1"."""
    return {f"k{index:04d}": "1" for index in range(count)}


def metadata_of_total_size(extra: int) -> dict[str, str]:
    """16 entries of 5-byte keys and values of METADATA_VALUE_LIMIT - 5 bytes: METADATA_TOTAL_LIMIT bytes in all,
    plus `extra` bytes on the first value."""
    metadata = {f"k{index:04d}": "x" * (METADATA_VALUE_LIMIT - 5) for index in range(16)}
    metadata["k0000"] += "x" * extra
    return metadata


# Applies that molt runs and reports as failed: (id, request, ApplyResult.failure, error substring).
CONTROL_FAILED_CASES = [
    ("apply-unknown-plugin", dict(kind="lock", name="x", plugin="nosuch"),
     "invalid-definition", "no lock plugin nosuch in "),
    ("apply-unknown-version", dict(kind="lock", name="x", plugin="memorylock", version="9.9.9"),
     "invalid-definition", "no lock plugin memorylock@9.9.9 in {plugins} (available versions: 1.0.0, 2.0.0)"),
    ("apply-plugin-of-another-kind", dict(kind="state", name="x", plugin="memorylock"),
     "invalid-definition", "no state plugin memorylock in {plugins}"),
    ("apply-plugin-path-traversal", dict(kind="lock", name="x", plugin="../plugins.d/memorylock-2.0.0"),
     "invalid-definition", "no lock plugin ../plugins.d/memorylock-2.0.0 in {plugins}"),
    ("apply-plugin-absolute-path", dict(kind="lock", name="x", plugin="{plugins}/memorylock-2.0.0.so"),
     "invalid-definition", "no lock plugin {plugins}/memorylock-2.0.0.so in {plugins}"),
    ("apply-pin-mismatch", dict(kind="lock", name="x", plugin="memorylock", version="2.0.0", pin=ZERO_PIN),
     "invalid-definition", f"refusing plugin {{plugins}}/memorylock-2.0.0.so: sha256 pin mismatch (expected {ZERO_PIN}, file has "),
    ("apply-pin-not-a-sha256", dict(kind="lock", name="x", plugin="memorylock", version="2.0.0", pin="sha256:abc"),
     "invalid-definition", "refusing plugin {plugins}/memorylock-2.0.0.so: sha256 pin mismatch (expected abc, file has "),
    ("apply-metadata-the-plugin-refuses", dict(kind="lock", name="lockstore", metadata={"maxLocks": "lots"}),
     "rejected", 'memorylock@2.0.0 init failed: memorylock: invalid value "lots" for config key maxLocks: '
                 "expected an integer >= 0 (0 = unlimited)"),
    ("apply-new-component-metadata-refused", dict(kind="lock", name="x", plugin="memorylock", metadata={"buckets": "0"}),
     "rejected", 'memorylock: invalid value "0" for config key buckets: expected an integer from 1 to 16777216'),
    ("apply-required-metadata-missing", dict(kind="state", name="x", plugin="redis-state", metadata={}),
     "invalid-definition", "missing required config key 'redisHost' for plugin redis-state@1.0.0"),
    ("apply-deprecated-alias-conflict", dict(kind="lock", name="lockstore", metadata={"maxLocks": "1", "maxLockCount": "2"}),
     "invalid-definition", "config key 'maxLockCount' is a DEPRECATED alias of 'maxLocks', and both are set to different "
                           "values ('2' and '1')"),
    # -- the metadata limits (ComponentLimits): refused before any plugin sees the definition
    ("apply-metadata-value-over-limit", dict(kind="lock", name="lockstore", metadata={"maxLocks": "1" * (1 << 20)}),
     "invalid-definition", f"the value of metadata key 'maxLocks' of lock/lockstore is {1 << 20} bytes, over the limit of "
                           f"{METADATA_VALUE_LIMIT} bytes"),
    ("apply-metadata-key-over-limit", dict(kind="lock", name="lockstore", metadata={"m" * (METADATA_KEY_LIMIT + 1): "1"}),
     "invalid-definition", f"metadata key '{'m' * 32}…' of lock/lockstore is {METADATA_KEY_LIMIT + 1} bytes, over the limit "
                           f"of {METADATA_KEY_LIMIT} bytes"),
    ("apply-metadata-entries-over-limit", dict(kind="lock", name="lockstore", metadata=metadata_entries(METADATA_ENTRIES_LIMIT + 1)),
     "invalid-definition", f"lock/lockstore has {METADATA_ENTRIES_LIMIT + 1} metadata entries, over the limit of "
                           f"{METADATA_ENTRIES_LIMIT}"),
    ("apply-metadata-total-over-limit", dict(kind="lock", name="lockstore", metadata=metadata_of_total_size(1)),
     "invalid-definition", f"the metadata of lock/lockstore is {METADATA_TOTAL_LIMIT + 1} bytes (keys and values), over "
                           f"the limit of {METADATA_TOTAL_LIMIT} bytes"),
    ("apply-new-component-metadata-over-limit", dict(kind="lock", name="x", plugin="memorylock",
                                                     metadata={"note": "n" * (METADATA_VALUE_LIMIT + 1)}),
     "invalid-definition", f"the value of metadata key 'note' of lock/x is {METADATA_VALUE_LIMIT + 1} bytes"),
    # A value at the limit reaches the plugin, and the plugin's whole message comes back (the message buffer holds it).
    ("apply-metadata-value-at-limit-the-plugin-refuses", dict(kind="lock", name="lockstore",
                                                              metadata={"maxLocks": "1" * METADATA_VALUE_LIMIT}),
     "rejected", f'memorylock@2.0.0 init failed: memorylock: invalid value "{"1" * METADATA_VALUE_LIMIT}" for config key '
                 "maxLocks: expected an integer >= 0 (0 = unlimited)"),
]


@pytest.mark.parametrize("case_id, request_fields, failure, message", CONTROL_FAILED_CASES,
                         ids=[_case_id(case) for case in CONTROL_FAILED_CASES])
def test_control_apply_reports_a_failed_apply(sidecar, plugins_dir, case_id, request_fields, failure, message):
    plugins = os.path.realpath(plugins_dir)
    request_fields = {k: fill(v, plugins=plugins) if isinstance(v, str) else v for k, v in request_fields.items()}
    result = sidecar.control_apply(**request_fields)
    assert result.action == "failed", f"{case_id}: {result}"
    assert result.failure == failure, f"{case_id}: {result.failure} {result.error!r}"
    assert fill(message, plugins=plugins) in result.error, f"{case_id}: {result.error[:2000]!r}"
    assert_components_unchanged(sidecar)
    try_lock_works(sidecar)
    assert_http_serves(sidecar, case_id)


# (id, metadata exactly at a limit, metadata one over it, the refusal's message for component lock/limits)
METADATA_LIMIT_CASES = [
    pytest.param(metadata_entries(METADATA_ENTRIES_LIMIT), metadata_entries(METADATA_ENTRIES_LIMIT + 1),
                 f"lock/limits has {METADATA_ENTRIES_LIMIT + 1} metadata entries, over the limit of {METADATA_ENTRIES_LIMIT}",
                 id="entries"),
    pytest.param({"m" * METADATA_KEY_LIMIT: "1"}, {"m" * (METADATA_KEY_LIMIT + 1): "1"},
                 f"metadata key '{'m' * 32}…' of lock/limits is {METADATA_KEY_LIMIT + 1} bytes, over the limit of "
                 f"{METADATA_KEY_LIMIT} bytes", id="key-bytes"),
    pytest.param({"note": "n" * METADATA_VALUE_LIMIT}, {"note": "n" * (METADATA_VALUE_LIMIT + 1)},
                 f"the value of metadata key 'note' of lock/limits is {METADATA_VALUE_LIMIT + 1} bytes, over the limit of "
                 f"{METADATA_VALUE_LIMIT} bytes", id="value-bytes"),
    pytest.param(metadata_of_total_size(0), metadata_of_total_size(1),
                 f"the metadata of lock/limits is {METADATA_TOTAL_LIMIT + 1} bytes (keys and values), over the limit of "
                 f"{METADATA_TOTAL_LIMIT} bytes", id="total-bytes"),
]


@pytest.mark.parametrize("at_limit, over_limit, message", METADATA_LIMIT_CASES)
def test_control_metadata_limits(molt, components, fixtures_dir, at_limit, over_limit, message):
    """Exactly at a metadata limit a component is added (Control.Apply); one over, Apply, ApplyBatch and the Lifecycle API
    refuse the change and the component keeps running as it was. On the probe fixture, which declares its config
    open ('*'): a plugin that declares its keys (memorylock) refuses keys of other names before any limit matters."""
    sidecar = molt([components.lock("lockstore", plugin="probe", version="1.0.0")], plugins_dir=fixtures_dir)
    added = sidecar.control_apply("lock", "limits", at_limit, plugin="probe", version="1.0.0", timeout=60)
    assert added.action == "added", f"{added.action} {added.error[:500]!r}"
    try:
        result = sidecar.control_apply("lock", "limits", over_limit, timeout=60)
        assert (result.action, result.failure, result.error) == ("failed", "invalid-definition", message)
        pb = sidecar.protos.control_pb2
        batch = sidecar.control_stub().ApplyBatch(pb.ApplyBatchRequest(applies=[
            pb.ApplyRequest(kind="lock", name="limits-batch", plugin="probe", version="1.0.0"),
            pb.ApplyRequest(kind="lock", name="limits", metadata=over_limit)]), metadata=sidecar.control_metadata(), timeout=60)
        assert not batch.succeeded
        assert [r.error for r in batch.results] == ["batch aborted: lock/limits failed; nothing was changed", message]
        with pytest.raises(grpc.RpcError) as caught:
            sidecar.apply_configuration("lock", "limits", over_limit, timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and caught.value.details() == message
        status = sidecar.component("lock", "limits")
        assert status.generation == added.new_generation and dict(status.metadata) == running_config(status.plugin, at_limit), "the refused metadata was applied"
        try_lock_works(sidecar, "limits")
    finally:
        sidecar.remove_component("lock", "limits")
    assert_components_unchanged(sidecar, {("lock", "lockstore"): {}})
    try_lock_works(sidecar)


@molt_bug(f"a metadata value over {GRPC_MESSAGE_LIMIT} bytes makes the control request exceed the gRPC message "
          "limit: the stream is reset and the client gets CANCELLED 'Stream removed (RST_STREAM ... "
          "error code 8)' with no message; expected RESOURCE_EXHAUSTED naming the limit")
def test_control_apply_over_the_message_limit(sidecar):
    with pytest.raises(grpc.RpcError) as caught:
        sidecar.control_apply("lock", "lockstore", metadata={"note": "n" * (GRPC_MESSAGE_LIMIT + 1)})
    try:
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{caught.value.code()} {caught.value.details()!r}"
        assert str(GRPC_MESSAGE_LIMIT) in (caught.value.details() or "")
    finally:
        assert_components_unchanged(sidecar)
        assert_http_serves(sidecar, "control-oversized")


@pytest.fixture
def probe_plugins(tmp_path, plugins_dir, fixtures_dir) -> Path:
    """A plugins directory with the probe test plugin (a lock store that starts no thread) and memorylock."""
    directory = tmp_path / "probe-plugins"
    directory.mkdir(mode=0o755)
    for source in (fixtures_dir / "probe-1.0.0.so", plugins_dir / "memorylock-2.0.0.so"):
        shutil.copy2(source, directory / source.name)
        (directory / source.name).chmod(0o755)
    return directory


def test_components_over_the_limit_are_refused(molt, components, probe_plugins, tmp_path):
    """With COMPONENT_LIMIT components running, one more is refused by Control.Apply, ApplyBatch and the file agent,
    naming the limit; every running component keeps serving, and a removal makes room at once."""
    agent_directory = tmp_path / "agent"
    agent_directory.mkdir()
    sidecar = molt([components.lock("lockstore", plugin="probe")], plugins_dir=probe_plugins,
                   extra_args=["--agents-file-directory", str(agent_directory)])
    pb = sidecar.protos.control_pb2
    stub, metadata = sidecar.control_stub(), sidecar.control_metadata()
    fill = [pb.ApplyRequest(kind="lock", name=f"c{index:04d}", plugin="probe") for index in range(COMPONENT_LIMIT - 1)]
    filled = stub.ApplyBatch(pb.ApplyBatchRequest(applies=fill), metadata=metadata, timeout=300)
    assert filled.succeeded, [r.error for r in filled.results if r.error][:3]
    assert len(sidecar.list_components()) == COMPONENT_LIMIT

    over = f"would make {COMPONENT_LIMIT + 1} components, over the limit of {COMPONENT_LIMIT}; remove components first"
    result = sidecar.control_apply("lock", "extra", plugin="probe")
    assert (result.action, result.failure, result.error) == ("failed", "invalid-definition", f"adding lock/extra {over}")
    batch = stub.ApplyBatch(pb.ApplyBatchRequest(applies=[pb.ApplyRequest(kind="lock", name="extra", plugin="probe"),
                                                          pb.ApplyRequest(kind="lock", name="extra2", plugin="probe")]),
                            metadata=metadata, timeout=RPC_TIMEOUT_S)
    assert not batch.succeeded
    assert [r.error for r in batch.results] == [
        f"adding 2 components (lock/extra, …) would make {COMPONENT_LIMIT + 2} components, over the limit of "
        f"{COMPONENT_LIMIT}; remove components first", "batch aborted: lock/extra failed; nothing was changed"]
    (agent_directory / "extra.json").write_text(json.dumps({"components": [{"kind": "lock", "name": "from-file",
                                                                             "plugin": "probe"}]}))
    wait_for(lambda: f"adding lock/from-file {over}" in sidecar.stderr(), "the file agent's refusal in molt's log")
    listed = sidecar.list_components()
    assert len(listed) == COMPONENT_LIMIT and ("lock", "extra") not in listed and ("lock", "from-file") not in listed
    try_lock_works(sidecar)
    try_lock_works(sidecar, f"c{COMPONENT_LIMIT - 2:04d}")

    sidecar.remove_component("lock", "c0000")
    assert sidecar.control_apply("lock", "extra", plugin="probe").action == "added"
    try_lock_works(sidecar, "extra")
    assert sidecar.alive()


def lifecycle_apply(kind, name, metadata, missing_config=False):
    def call(molt):
        pb = molt.protos.lifecycle_pb2
        request = pb.DynamicConfiguration() if missing_config else pb.DynamicConfiguration(
            component_config=pb.ComponentConfig(kind=kind, name=name, metadata=metadata))
        return molt.lifecycle_stub().ApplyConfiguration(request, metadata=molt.control_metadata(), timeout=RPC_TIMEOUT_S)
    return call


def remove_component(kind, name):
    return lambda molt: molt.remove_component(kind, name)


def empty_batch(molt):
    pb = molt.protos.control_pb2
    return molt.control_stub().ApplyBatch(pb.ApplyBatchRequest(), metadata=molt.control_metadata(), timeout=RPC_TIMEOUT_S)


# Other control calls refused with a status: (id, call, code, message substring).
CONTROL_OTHER_CASES = [
    ("lifecycle-unknown-component", lifecycle_apply("lock", "nope", {"maxLocks": "5"}), grpc.StatusCode.INVALID_ARGUMENT,
     "component lock/nope is not configured; the Lifecycle API changes existing components"),
    ("lifecycle-unknown-kind", lifecycle_apply("queue", "nope", {}), grpc.StatusCode.INVALID_ARGUMENT,
     "kind 'queue' is not one of lock, state, binding, secretstore, configuration, pubsub"),
    ("lifecycle-config-missing", lifecycle_apply("", "", {}, missing_config=True), grpc.StatusCode.INVALID_ARGUMENT,
     "component_config is missing"),
    ("lifecycle-metadata-refused", lifecycle_apply("lock", "lockstore", {"maxLocks": "-1"}), grpc.StatusCode.INVALID_ARGUMENT,
     'memorylock@2.0.0 init failed: memorylock: invalid value "-1" for config key maxLocks: expected an integer >= 0'),
    ("remove-unknown-component", remove_component("lock", "nope"), grpc.StatusCode.NOT_FOUND,
     "component lock/nope is not configured"),
    ("apply-batch-empty", empty_batch, grpc.StatusCode.INVALID_ARGUMENT, "the batch is empty"),
]


@pytest.mark.parametrize("case_id, call, code, message", CONTROL_OTHER_CASES, ids=[case[0] for case in CONTROL_OTHER_CASES])
def test_control_call_refused(sidecar, case_id, call, code, message):
    with pytest.raises(grpc.RpcError) as caught:
        call(sidecar)
    assert caught.value.code() == code, f"{case_id}: {caught.value}"
    assert message in (caught.value.details() or ""), f"{case_id}: {caught.value.details()!r}"
    assert_components_unchanged(sidecar)
    assert_http_serves(sidecar, case_id)


CONTROL_TOKEN_CALLS = {
    "list": lambda molt, token: molt.list_components(token=token),
    "apply": lambda molt, token: molt.control_apply("lock", "lockstore", {"maxLocks": "3"}, token=token),
    "lifecycle": lambda molt, token: molt.apply_configuration("lock", "lockstore", {"maxLocks": "3"}, token=token),
}


@pytest.mark.parametrize("call_name", sorted(CONTROL_TOKEN_CALLS))
@pytest.mark.parametrize("token, message", [(None, "missing molt-control-token metadata"),
                                            ("wrong", "molt-control-token does not match the configured token")],
                         ids=["missing", "wrong"])
def test_control_token_refused(guarded, call_name, token, message):
    with pytest.raises(grpc.RpcError) as caught:
        CONTROL_TOKEN_CALLS[call_name](guarded, token)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    assert caught.value.details() == message
    assert_components_unchanged(guarded)  # with the right token; maxLocks=3 was not applied
    assert_http_serves(guarded, f"control-token-{call_name}-{token}")


# ---------------------------------------------------------------------------------------------
# Configuration and component files


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLT_", "DAPR_")) and k != "APP_ID"}
    env.update(extra)
    return env


def run_molt(molt_bin, *args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(molt_bin), *map(str, args)], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                          env=env or clean_env(), cwd=cwd)


def fill(template: str, **values) -> str:
    """`template` with each {name} replaced by str(value) (the texts hold JSON braces, so no str.format)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def serve_args(plugins_dir) -> list[str]:
    ports = [pick_free_port() for _ in range(4)]
    return ["serve", "--plugins-directory", str(plugins_dir), "--grpc-address", f"127.0.0.1:{ports[0]}",
            "--http-address", f"127.0.0.1:{ports[1]}", "--control-address", f"127.0.0.1:{ports[2]}",
            "--admin-address", f"127.0.0.1:{ports[3]}"]


def serve_refused(molt_bin, plugins_dir, *args, env=None) -> subprocess.CompletedProcess:
    """Runs `molt serve` that must refuse to start; a molt that starts anyway is killed by the timeout."""
    try:
        return run_molt(molt_bin, *serve_args(plugins_dir), *args, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"molt serve {args} started instead of refusing the input") from None


SECRET_REF_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
    - name: redisHost
      value: localhost:6379
    - name: redisPassword
      secretKeyRef:
        name: redis-secret
        key: password
"""

# Bootstrap config files: (id, file name, text, message template; {file} is the file's path).
CONFIG_FILE_CASES = [
    ("malformed-yaml", "molt.yaml", "version: 1\ngrpcAddress: [unclosed\n",
     "{file}: not valid YAML or JSON: 3:1: error: parser: while parsing a flow sequence in line 2, column 14"),
    ("malformed-json", "molt.json", '{"version": 1, "grpcAddress": "127.0.0.1:1"',
     "{file}: not valid YAML or JSON: 2:1: error: parser: while parsing a flow mapping in line 1, column 1"),
    ("json-trailing-commas", "molt.json", '{"version": 1, "appID": "a",,}',
     "{file}: not valid YAML or JSON: 1:29: error: parser: while parsing a flow node"),
    ("integer-key-given-a-string", "molt.yaml", 'version: 1\nreadinessTimeoutMs: "soon"\n',
     "{file}:2:21: readinessTimeoutMs: expected an integer, found a string"),
    ("list-key-given-a-string", "molt.json", '{"version": 1, "components": "a.json"}',
     "{file}:1:30: components: expected a list of strings, found a string"),
    ("nested-list-key-given-an-integer", "molt.yaml", "version: 1\nagents:\n  etcd:\n    endpoints: 5\n",
     "{file}:4:16: agents.etcd.endpoints: expected a list of strings, found an integer"),
    ("boolean-key-given-a-string", "molt.yaml", 'version: 1\nstrict: "yes please"\n',
     "{file}:2:9: strict: expected a boolean, found a string"),
    ("unsupported-config-version", "molt.yaml", "version: 7\n",
     "{file}:1:10: version: configuration version 7 is not supported (this molt reads versions [1])"),
    ("strict-unknown-key", "molt.yaml", "version: 1\nstrict: true\ngrpcAdress: 127.0.0.1:1\n",
     "{file}:3:13: grpcAdress: unknown key 'grpcAdress' in a version 1 configuration (strict: unknown keys are errors)"),
    ("components-directory-missing", "molt.yaml", "version: 1\ncomponents: [{tmp}/no-such-directory]\n",
     "{tmp}/no-such-directory: no such file or directory"),
]


@pytest.mark.parametrize("case_id, name, text, message", CONFIG_FILE_CASES, ids=[case[0] for case in CONFIG_FILE_CASES])
def test_config_check_refuses(molt_bin, tmp_path, case_id, name, text, message):
    config = tmp_path / name
    config.write_text(fill(text, tmp=tmp_path))
    checked = run_molt(molt_bin, "config", "check", config)
    assert checked.returncode == 1, f"{case_id}: {checked}"
    assert fill(message, file=config, tmp=tmp_path) in checked.stderr, f"{case_id}: {checked.stderr!r}"
    assert checked.stdout == "", "an effective configuration was printed for a refused file"


@pytest.mark.parametrize("case_id, name, text, message", CONFIG_FILE_CASES, ids=[case[0] for case in CONFIG_FILE_CASES])
def test_serve_refuses_config_file(molt_bin, plugins_dir, tmp_path, case_id, name, text, message):
    """Start-up refusal: exit 64 and the message on stderr; molt never serves, so there is no after-call."""
    config = tmp_path / name
    config.write_text(fill(text, tmp=tmp_path))
    refused = serve_refused(molt_bin, plugins_dir, "--config", config)
    assert refused.returncode == EX_USAGE, f"{case_id}: exit {refused.returncode}\n{refused.stderr[-3000:]}"
    assert f"Error: {fill(message, file=config, tmp=tmp_path)}" in refused.stderr, f"{case_id}: {refused.stderr[-3000:]!r}"


def test_serve_refuses_wrong_typed_environment(molt_bin, plugins_dir):
    """Start-up refusal: a wrong-typed MOLT_* variable is named with the expected type."""
    refused = serve_refused(molt_bin, plugins_dir, env=clean_env(MOLT_READINESS_TIMEOUT_MS="soon"))
    assert refused.returncode == EX_USAGE, refused
    assert "Error: environment: MOLT_READINESS_TIMEOUT_MS: expected an integer, found 'soon'" in refused.stderr


TOO_MANY_COMPONENTS = json.dumps({"components": [{"kind": "lock", "name": f"c{index}", "plugin": "memorylock"}
                                                 for index in range(COMPONENT_LIMIT + 1)]})
ONE_TOO_MANY = f'{{"kind": "lock", "name": "c{COMPONENT_LIMIT}"'

# Component files: (id, file name, text, message template; {file} is the path; None: the path is not created).
COMPONENT_FILE_CASES = [
    ("malformed-json", "components.json", '{"components": [{"kind": "lock", "name": "a", "plugin": "memorylock"}',
     "{file}: not valid YAML or JSON: 2:1: error: parser: while parsing a flow sequence in line 1, column 16"),
    ("malformed-yaml", "components.yaml", "components:\n  - kind: lock\n    name: [a\n",
     "{file}: not valid YAML or JSON: 4:1: error: parser: while parsing a flow sequence in line 3, column 11"),
    ("unknown-kind", "components.json", '{"components": [{"kind": "queue", "name": "q", "plugin": "memorylock"}]}',
     "{file}:1:26: components[0].kind: unknown component kind 'queue' (known: [\"lock\", \"state\", \"binding\", \"secretstore\", \"configuration\", \"pubsub\"])"),
    ("name-is-a-number", "components.json", '{"components": [{"kind": "lock", "name": 5, "plugin": "memorylock"}]}',
     "{file}:1:42: components[0].name: expected a string, found an integer"),
    ("version-not-semver", "components.json",
     '{"components": [{"kind": "lock", "name": "a", "plugin": "memorylock", "version": "one"}]}',
     "{file}:1:82: components[0].version: expected a semantic version string like 1.2.0, found 'one'"),
    ("unsupported-file-version", "components.json", '{"version": 2, "components": []}',
     "{file}:1:13: version: components file version 2 is not supported (this molt reads versions 1...1)"),
    ("dapr-secret-key-ref", "statestore.yaml", SECRET_REF_YAML,
     "{file}:13:9: spec.metadata[1].secretKeyRef: secretKeyRef for 'redisPassword' needs auth.secretStore: the secret "
     "store component to read it from"),
    ("component-defined-twice", "components.json",
     '{"components": [{"kind": "lock", "name": "a", "plugin": "memorylock"}, {"kind": "lock", "name": "a", "plugin": "memorylock"}]}',
     "{file}:1:72: component lock/a is defined twice: at {file}:1:17 and at {file}:1:72"),
    ("directory-that-does-not-exist", "no-such-directory/", None, "{file}: no such file or directory"),
    ("metadata-value-over-limit", "components.json",
     json.dumps({"components": [{"kind": "lock", "name": "a", "plugin": "memorylock",
                                 "metadata": {"note": "n" * (METADATA_VALUE_LIMIT + 1)}}]}),
     f"{{file}}:1:17: the value of metadata key 'note' of lock/a is {METADATA_VALUE_LIMIT + 1} bytes, over the limit of "
     f"{METADATA_VALUE_LIMIT} bytes"),
    ("dapr-metadata-key-over-limit", "lockstore.yaml",
     DAPR_LOCK_YAML.format(name="lockstore", max_locks=5, buckets=8).replace("name: buckets", "name: " + "b" * 257),
     f"{{file}}:1:1: metadata key '{'b' * 32}…' of lock/lockstore is 257 bytes, over the limit of {METADATA_KEY_LIMIT} bytes"),
    ("components-over-limit", "components.json", TOO_MANY_COMPONENTS,
     f"{{file}}:1:{TOO_MANY_COMPONENTS.index(ONE_TOO_MANY) + 1}: component lock/c{COMPONENT_LIMIT} is one too many: "
     f"{COMPONENT_LIMIT + 1} components are defined, over the limit of {COMPONENT_LIMIT} per molt"),
]


def write_component_file(tmp_path: Path, name: str, text: str | None) -> Path:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    return path


@pytest.mark.parametrize("case_id, name, text, message", COMPONENT_FILE_CASES, ids=[case[0] for case in COMPONENT_FILE_CASES])
def test_serve_refuses_components_file(molt_bin, plugins_dir, tmp_path, case_id, name, text, message):
    """Start-up refusal: exit 64 and the message (file, line, key path) on stderr; molt never serves."""
    path = write_component_file(tmp_path, name, text)
    given = str(path) + ("/" if name.endswith("/") else "")
    refused = serve_refused(molt_bin, plugins_dir, "--components", given)
    assert refused.returncode == EX_USAGE, f"{case_id}: exit {refused.returncode}\n{refused.stderr[-3000:]}"
    assert f"Error: {fill(message, file=given)}" in refused.stderr, f"{case_id}: {refused.stderr[-3000:]!r}"


@pytest.mark.parametrize("case_id, name, text, message", COMPONENT_FILE_CASES, ids=[case[0] for case in COMPONENT_FILE_CASES])
def test_apply_file_refuses_components_file(sidecar, molt_bin, tmp_path, case_id, name, text, message):
    """`molt apply -f` refuses the file before calling the control plane (exit 64); the running molt is untouched."""
    path = write_component_file(tmp_path, name, text)
    given = str(path) + ("/" if name.endswith("/") else "")
    refused = run_molt(molt_bin, "apply", "--control-address", f"127.0.0.1:{sidecar.control_port}", "-f", given)
    assert refused.returncode == EX_USAGE, f"{case_id}: exit {refused.returncode}\n{refused.stderr}"
    assert f"Error: {fill(message, file=given)}" in refused.stderr, f"{case_id}: {refused.stderr!r}"
    assert refused.stdout == "", "an apply result was printed"
    assert_components_unchanged(sidecar)
    assert_http_serves(sidecar, f"apply-file-{case_id}")


def test_apply_file_with_an_unknown_plugin(sidecar, molt_bin, plugins_dir, tmp_path):
    """A well-formed file whose apply fails: exit 1 with the engine's reason; the running molt is untouched."""
    path = tmp_path / "more.json"
    path.write_text(json.dumps({"components": [{"kind": "lock", "name": "zz", "plugin": "nosuch"}]}))
    applied = run_molt(molt_bin, "apply", "--control-address", f"127.0.0.1:{sidecar.control_port}", "-f", path)
    assert applied.returncode == 1, applied
    assert "lock/zz: failed" in applied.stdout, applied.stdout
    assert f"error (invalid-definition): no lock plugin nosuch in {os.path.realpath(plugins_dir)}" in applied.stdout
    assert_components_unchanged(sidecar)
    assert_http_serves(sidecar, "apply-file-unknown-plugin")


# ---------------------------------------------------------------------------------------------
# The plugins directory


def elf_segments(data: bytes) -> tuple[int, int, int]:
    """(start and end of PT_DYNAMIC's file bytes, end of the file bytes of the PT_LOAD segment that holds it) of
    an ELF64 little-endian shared object."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise RuntimeError("not an ELF64 little-endian file")
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    loads, dynamic = [], None
    for index in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + index * phentsize)
        if p_type == 1:
            loads.append((p_offset, p_offset + p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_offset + p_filesz)
    if dynamic is None:
        raise RuntimeError("no PT_DYNAMIC")
    holder = next((end for start, end in loads if start <= dynamic[0] < end), None)
    if holder is None:
        raise RuntimeError("PT_DYNAMIC is in no PT_LOAD segment")
    return dynamic[0], dynamic[1], holder


PAGE = 4096


def truncated_copy(source: Path, target: Path, how: str) -> int:
    """Writes a truncated copy of the plugin `source` (mode 0755) and returns its size:
    - "dynamic": cut where the dynamic section starts (the vetting reads past the end and refuses it);
    - "header": only the first 30 bytes (ELF magic, then the header is cut);
    - "segment-page": the dynamic section is whole, but a whole page of the last segment's file bytes is gone;
    - "segment-tail": the dynamic section is whole, the last segment's last bytes are gone within its last page."""
    data = source.read_bytes()
    dynamic_start, dynamic_end, load_end = elf_segments(data)
    if how == "dynamic":
        size = dynamic_start
    elif how == "header":
        size = 30
    elif how == "segment-page":
        size = dynamic_end
        if -(-size // PAGE) * PAGE >= load_end:
            raise RuntimeError(f"{source}: no page of the segment lies after its dynamic section ({dynamic_end}, {load_end})")
    elif how == "segment-tail":
        size = max(dynamic_end, (load_end - 1) // PAGE * PAGE) + 1
        if size >= load_end:
            raise RuntimeError(f"{source}: cannot cut only the segment's tail ({dynamic_end}, {load_end})")
    else:
        raise ValueError(how)
    target.write_bytes(data[:size])
    target.chmod(0o755)
    return size


@pytest.fixture(scope="module")
def bad_plugins(tmp_path_factory, plugins_dir):
    """A plugins directory with the good plugins (memorylock 2.0.0, redis-state 1.0.0) and bad files, each
    refused for its own reason. memorylock 1.0.0 exists only as bad files (so an apply of it must fail)."""
    root = tmp_path_factory.mktemp("bad-plugins")
    directory, outside = root / "plugins", root / "outside"
    directory.mkdir(mode=0o755)
    outside.mkdir(mode=0o755)
    for name in ("memorylock-2.0.0.so", "redis-state-1.0.0.so"):
        shutil.copy2(plugins_dir / name, directory / name)
    good_v1 = plugins_dir / "memorylock-1.0.0.so"
    (directory / "script.so").write_text("#!/bin/sh\necho not a plugin\n")
    (directory / "script.so").chmod(0o755)
    (directory / "empty.so").write_bytes(b"")
    shutil.copy2(good_v1, directory / "world-writable.so")
    (directory / "world-writable.so").chmod(0o666)
    shutil.copy2(good_v1, outside / "memorylock-1.0.0.so")
    (directory / "escape.so").symlink_to(outside / "memorylock-1.0.0.so")
    truncated_copy(good_v1, directory / "truncated.so", "dynamic")
    return directory


# (id, bad file, reason after "refusing plugin <path>: ")
BAD_PLUGIN_FILES = [
    ("not-elf", "script.so", "not a shared object: not an ELF file"),
    ("empty", "empty.so", "not a shared object: not an ELF file"),
    ("world-writable", "world-writable.so", "writable by group or others (mode 666)"),
    ("symlink-outside", "escape.so", "symlink leaves the plugins directory (resolves to {outside}/memorylock-1.0.0.so)"),
    ("truncated", "truncated.so", "not a shared object: malformed ELF: "),
]


@pytest.fixture(scope="module")
def bad_plugins_listing(bad_plugins, molt_bin):
    return run_molt(molt_bin, "plugin", "list", "--plugins-directory", bad_plugins)


@pytest.fixture(scope="module")
def bad_plugins_sidecar(module_molt, bad_plugins, components):
    return module_molt([components.lock("lockstore")], plugins_dir=bad_plugins)


def bad_plugin_reason(bad_plugins: Path, file: str, reason: str) -> str:
    outside = os.path.realpath(bad_plugins.parent / "outside")
    return f"refusing plugin {os.path.realpath(bad_plugins)}/{file}: {fill(reason, outside=outside)}"


@pytest.mark.parametrize("case_id, file, reason", BAD_PLUGIN_FILES, ids=[case[0] for case in BAD_PLUGIN_FILES])
def test_plugin_list_skips_bad_file(bad_plugins, bad_plugins_listing, case_id, file, reason):
    listing = bad_plugins_listing
    assert listing.returncode == 3, f"exit 3 when a file was refused: {listing}"
    rows = [line.split() for line in listing.stdout.splitlines() if line and not line.startswith("skipped:")]
    assert rows[0][:3] == ["KIND", "NAME", "VERSION"], listing.stdout
    assert [row[:3] for row in rows[1:]] == [["lock", "memorylock", "2.0.0"], ["state", "redis-state", "1.0.0"]], listing.stdout
    assert f"skipped: {bad_plugin_reason(bad_plugins, file, reason)}" in listing.stdout, listing.stdout


@pytest.mark.parametrize("case_id, file, reason", BAD_PLUGIN_FILES, ids=[case[0] for case in BAD_PLUGIN_FILES])
def test_serve_skips_bad_plugin_file(bad_plugins, bad_plugins_sidecar, case_id, file, reason):
    sidecar = bad_plugins_sidecar
    stderr = sidecar.stderr()
    assert f"error={bad_plugin_reason(bad_plugins, file, reason)}" in stderr, stderr[-4000:]
    assert f"skipped={len(BAD_PLUGIN_FILES)}" in stderr and 'available=["memorylock@2.0.0", "redis-state@1.0.0"]' in stderr
    # memorylock 1.0.0 is only there as refused files: an apply of it fails and names what is available.
    result = sidecar.control_apply("lock", f"v1-{case_id}", plugin="memorylock", version="1.0.0")
    assert result.action == "failed" and result.failure == "invalid-definition", result
    assert (f"no lock plugin memorylock@1.0.0 in {os.path.realpath(bad_plugins)} (available versions: 2.0.0)"
            in result.error), result.error
    assert list(sidecar.list_components()) == [("lock", "lockstore")]
    try_lock_works(sidecar)


@pytest.mark.parametrize("plugin", ["../outside/memorylock-1.0.0", "../outside/memorylock-1.0.0.so", "{outside}/memorylock-1.0.0.so"],
                         ids=["relative-name", "relative-file", "absolute-file"])
def test_control_apply_plugin_path_traversal(bad_plugins, bad_plugins_sidecar, plugin):
    """A plugin is named, never a path: a name leading out of the plugins directory finds nothing and loads nothing."""
    sidecar = bad_plugins_sidecar
    plugin = fill(plugin, outside=os.path.realpath(bad_plugins.parent / "outside"))
    result = sidecar.control_apply("lock", "traversal", plugin=plugin)
    assert result.action == "failed" and result.failure == "invalid-definition", result
    assert result.error == f"no lock plugin {plugin} in {os.path.realpath(bad_plugins)}", result.error
    loaded_outside = [line for line in sidecar.stderr().splitlines() if "loaded plugin" in line and "outside" in line]
    assert loaded_outside == [], f"a plugin outside the plugins directory was loaded: {loaded_outside}"
    assert list(sidecar.list_components()) == [("lock", "lockstore")]
    try_lock_works(sidecar)


# Truncated ELF files, each alone beside a good plugin: refused before they are ever mapped (id, how, reason).
TRUNCATIONS = [
    pytest.param("header", "not a shared object: malformed ELF: truncated: 30 bytes", id="header-cut-at-30-bytes"),
    pytest.param("segment-page", "not a shared object: malformed ELF: truncated: PT_LOAD segment", id="segment-page-missing"),
    pytest.param("segment-tail", "not a shared object: malformed ELF: truncated: PT_LOAD segment", id="segment-tail-missing"),
]


@pytest.mark.parametrize("how, reason", TRUNCATIONS)
def test_plugin_list_refuses_truncated_elf(molt_bin, plugins_dir, tmp_path, how, reason):
    directory = tmp_path / "plugins"
    directory.mkdir(mode=0o755)
    shutil.copy2(plugins_dir / "memorylock-2.0.0.so", directory / "memorylock-2.0.0.so")
    truncated_copy(plugins_dir / "memorylock-1.0.0.so", directory / "cut.so", how)
    listing = run_molt(molt_bin, "plugin", "list", "--plugins-directory", directory)
    assert listing.returncode == 3, f"exit {listing.returncode}\n{listing.stdout}\n{listing.stderr[:1500]}"
    assert "memorylock  2.0.0" in listing.stdout, listing.stdout
    assert f"skipped: refusing plugin {os.path.realpath(directory)}/cut.so: {reason}" in listing.stdout, listing.stdout


def test_running_molt_survives_a_truncated_plugin_dropped_in(molt, components, plugins_dir, tmp_path):
    directory = tmp_path / "plugins"
    directory.mkdir(mode=0o755)
    shutil.copy2(plugins_dir / "memorylock-2.0.0.so", directory / "memorylock-2.0.0.so")
    sidecar = molt([components.lock("lockstore")], plugins_dir=directory)
    truncated_copy(plugins_dir / "memorylock-1.0.0.so", directory / "cut.so", "segment-page")
    try:
        result = sidecar.control_apply("lock", "x", plugin="nosuch")
    except grpc.RpcError as error:
        time.sleep(0.5)
        raise AssertionError(f"the apply failed with {error.code()} {error.details()!r}; molt exit code "
                             f"{sidecar.process.poll()}") from None
    assert result.action == "failed" and result.error.startswith("no lock plugin nosuch in "), result
    assert sidecar.alive(), f"molt exited ({sidecar.process.poll()})"
    assert "error=refusing plugin" in sidecar.stderr() and "cut.so" in sidecar.stderr()
    try_lock_works(sidecar)
