"""Declared operations through Dapr's output bindings API (issue 18), against the rate-limiter example plugin
(kind binding, `allow(key: string, cost: int64) -> (allowed: bool, remaining: int64, retry_after_ms: int64)`):
the Dapr Python SDK's `invoke_binding`, curl-style HTTP `POST /v1.0/bindings/{name}`, the metadata APIs listing the
operations, every refusal of bad input with its message (gRPC INVALID_ARGUMENT / HTTP 400,
ERR_INVOKE_OUTPUT_BINDING), and buckets kept through an in-place apply and version swaps under load."""

import http.client
import json
import subprocess
import threading

import grpc
import pytest

CLI_TIMEOUT_S = 60
RPC_TIMEOUT_S = 15
ALLOW = "allow(key: string, cost: int64) -> (allowed: bool, remaining: int64, retry_after_ms: int64)"


def limiter(version="1.0.0", **metadata):
    return {"kind": "binding", "name": "limiter", "plugin": "rate-limiter", "version": version,
            "metadata": {"capacity": "3", "refillPerSecond": "0.001", **metadata}}


@pytest.fixture
def sidecar(molt, plugins_dir):
    if not any(plugins_dir.glob("rate-limiter-*.so")):
        pytest.fail(f"no rate-limiter plugin in {plugins_dir} (make build stages it)")
    return molt([limiter()])


def invoke(sidecar, operation, data, name="limiter"):
    return sidecar.http("POST", f"/v1.0/bindings/{name}", {"operation": operation, "data": data})


def grpc_invoke(sidecar, operation, data: bytes, name="limiter"):
    from dapr.proto.runtime.v1 import binding_pb2
    request = binding_pb2.InvokeBindingRequest(name=name, operation=operation, data=data)
    return sidecar.dapr_stub().InvokeBinding(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)


def test_the_sdk_and_http_call_allow_and_drain_a_bucket(sidecar):
    seen = sidecar.run_sdk("""
        import json
        from dapr.clients import DaprClient
        with DaprClient() as client:
            first = client.invoke_binding("limiter", "allow", json.dumps({"key": "sdk", "cost": 2}))
            second = client.invoke_binding("limiter", "allow", json.dumps({"key": "sdk", "cost": 2}))
            emit(first=first.json(), second=second.json())
    """)
    assert seen["first"] == {"allowed": True, "remaining": 1, "retry_after_ms": 0}, seen
    assert seen["second"]["allowed"] is False and seen["second"]["retry_after_ms"] > 0, seen

    answer = invoke(sidecar, "allow", {"key": "http", "cost": 3})
    assert answer.status == 200 and answer.json() == {"allowed": True, "remaining": 0, "retry_after_ms": 0}, str(answer)
    assert invoke(sidecar, "allow", {"key": "http", "cost": 1}).json()["allowed"] is False


def test_metadata_lists_the_operations(sidecar):
    components = {c["name"]: c for c in sidecar.http("GET", "/v1.0/metadata").json()["components"]}
    assert components["limiter"]["type"] == "bindings.rate-limiter", components  # Dapr's building block: bindings.*
    assert f"operation {ALLOW}" in components["limiter"]["capabilities"], components["limiter"]
    from dapr.proto.runtime.v1 import metadata_pb2
    reply = sidecar.dapr_stub().GetMetadata(metadata_pb2.GetMetadataRequest(), metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)
    registered = {c.name: c for c in reply.registered_components}
    assert f"operation {ALLOW}" in registered["limiter"].capabilities, registered


BAD_INPUTS = [
    # (binding, operation, data, message fragment)
    ("nope", "allow", {"key": "k", "cost": 1}, "nope"),
    ("limiter", "", {"key": "k", "cost": 1}, "operation is empty; binding limiter has: " + ALLOW),
    ("limiter", "grant", {"key": "k", "cost": 1}, "binding limiter has no operation 'grant'; it has: " + ALLOW),
    ("limiter", "allow", {"key": "k"}, f"missing argument 'cost' of operation {ALLOW}"),
    ("limiter", "allow", {"key": "k", "cost": 1, "weight": 2}, f"unknown argument 'weight' of operation {ALLOW}"),
    ("limiter", "allow", {"key": "k", "cost": "1"}, f"argument 'cost' of operation {ALLOW} must be an integer, got a string"),
    ("limiter", "allow", {"key": "k", "cost": 1.5}, "must be an integer, got 1.5"),
    ("limiter", "allow", {"key": "k", "cost": 99999999999999999999}, "must be an integer within int64's range"),
    ("limiter", "allow", {"key": 7, "cost": 1}, f"argument 'key' of operation {ALLOW} must be a string, got 7"),
    ("limiter", "allow", [1, 2], f"data of operation {ALLOW} must be a JSON object of its arguments"),
]


@pytest.mark.parametrize("name, operation, data, message", BAD_INPUTS,
                         ids=["unknown-binding", "no-operation", "unknown-operation", "missing-argument", "extra-argument",
                              "string-for-int", "fraction-for-int", "int64-overflow", "int-for-string", "not-an-object"])
def test_bad_input_is_refused_by_name_over_http_and_grpc(sidecar, name, operation, data, message):
    answer = invoke(sidecar, operation, data, name=name)
    assert answer.status == 400, str(answer)
    assert answer.json()["errorCode"] == "ERR_INVOKE_OUTPUT_BINDING" and message in answer.json()["message"], str(answer)
    with pytest.raises(grpc.RpcError) as refused:
        grpc_invoke(sidecar, operation, json.dumps(data).encode(), name=name)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in refused.value.details(), refused.value
    # Still serving.
    assert invoke(sidecar, "allow", {"key": "after-bad-input", "cost": 1}).status == 200


def test_the_plugins_own_refusal_reaches_the_app(sidecar):
    answer = invoke(sidecar, "allow", {"key": "k", "cost": 0})
    assert answer.status == 400 and answer.json()["errorCode"] == "ERR_INVOKE_OUTPUT_BINDING", str(answer)
    assert "cost" in answer.json()["message"], str(answer)


def cli(molt_bin, sidecar, *args):
    return subprocess.run([str(molt_bin), args[0], "--control-address", f"127.0.0.1:{sidecar.control_port}", *args[1:]],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_buckets_survive_in_place_applies_and_version_swaps_under_load(sidecar, molt_bin, plugins_dir):
    if not (plugins_dir / "rate-limiter-1.1.0.so").exists():
        pytest.fail("rate-limiter 1.1.0 is not staged")
    # A drained bucket: its state must survive everything below (refill is 1 token per 1000 s).
    assert invoke(sidecar, "allow", {"key": "drained", "cost": 3}).json()["allowed"] is True

    stop, failures, calls = threading.Event(), [], [0]

    def load(index):
        connection = http.client.HTTPConnection("127.0.0.1", sidecar.http_port, timeout=30)
        n = 0
        while not stop.is_set():
            body = json.dumps({"operation": "allow", "data": {"key": f"load-{index}-{n}", "cost": 1}})
            connection.request("POST", "/v1.0/bindings/limiter", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            text = answer.read()
            if answer.status != 200 or json.loads(text).get("allowed") is not True:
                failures.append((answer.status, text))
            n += 1
            calls[0] += 1
        connection.close()

    threads = [threading.Thread(target=load, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    try:
        in_place = cli(molt_bin, sidecar, "apply", "--kind", "binding", "--name", "limiter", "--metadata", "capacity=5",
                       "--metadata", "refillPerSecond=0.001", "--json")
        assert in_place.returncode == 0 and json.loads(in_place.stdout)["action"] == "applied-in-place", in_place
        for version in ("1.1.0", "1.0.0", "1.1.0"):
            swapped = cli(molt_bin, sidecar, "apply", "--kind", "binding", "--name", "limiter", "--version", version, "--json")
            assert swapped.returncode == 0 and json.loads(swapped.stdout)["action"] == "version-swapped", swapped
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == [], failures[:5]
    assert calls[0] > 0
    drained = invoke(sidecar, "allow", {"key": "drained", "cost": 3}).json()
    assert drained["allowed"] is False, drained  # 3 taken before; capacity 5 now, and nothing refilled
    assert sidecar.component("binding", "limiter").plugin == "rate-limiter@1.1.0"


# ---------------------------------------------------------------------------------------------
# A Swift binding (PluginKitOperations, values form): text-tools


@pytest.fixture
def text_tools(molt, plugins_dir):
    if not (plugins_dir / "text-tools-1.0.0.so").exists():
        pytest.fail(f"no text-tools plugin in {plugins_dir} (make build stages it)")
    return molt([{"kind": "binding", "name": "text", "plugin": "text-tools", "metadata": {}}])


def test_a_swift_binding_answers_the_sdk_and_http(text_tools):
    seen = text_tools.run_sdk("""
        import json
        from dapr.clients import DaprClient
        with DaprClient() as client:
            slug = client.invoke_binding("text", "slugify", json.dumps({"text": "Hello, Wörld  of molt!"}))
            cut = client.invoke_binding("text", "truncate", json.dumps({"text": "abcdef", "maxCharacters": 3}))
            emit(slug=slug.json(), cut=cut.json())
    """)
    assert seen["slug"]["slug"].startswith("hello-") and seen["slug"]["slug"].endswith("of-molt"), seen
    assert seen["cut"] == {"result": "abc", "truncated": True}, seen
    words = text_tools.http("POST", "/v1.0/bindings/text", {"operation": "word-count", "data": {"text": "one two  three"}})
    assert words.status == 200 and words.json() == {"words": 3}, str(words)
    refused = text_tools.http("POST", "/v1.0/bindings/text", {"operation": "truncate", "data": {"text": "x", "maxCharacters": -1}})
    assert refused.status == 400 and "maxCharacters is -1" in refused.json()["message"], str(refused)


def test_a_lone_bytes_parameter_takes_the_raw_payload(text_tools):
    payload = bytes(range(256)) * 4
    reply = grpc_invoke(text_tools, "digest", payload, name="text")
    result = json.loads(reply.data)
    assert result["length"] == len(payload), result
    # FNV-1a 64 of the payload, as a signed int64.
    h = 0xcbf29ce484222325
    for byte in payload:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    assert result["fnv1a64"] == (h - (1 << 64) if h >= 1 << 63 else h), result
    # Over HTTP a JSON string is the payload's text.
    answer = text_tools.http("POST", "/v1.0/bindings/text", {"operation": "digest", "data": "abc"})
    assert answer.status == 200 and answer.json()["length"] == 3, str(answer)


def test_data_may_be_a_json_string_holding_the_arguments(sidecar):
    answer = invoke(sidecar, "allow", json.dumps({"key": "stringified", "cost": 1}))
    assert answer.status == 200 and answer.json()["allowed"] is True, str(answer)
