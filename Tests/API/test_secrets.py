"""Dapr's secrets API against the local-file secret store plugin (kind secretstore): the Dapr Python SDK's
`get_secret` / `get_bulk_secret`, grpcio and curl-style HTTP `GET /v1.0/secrets/{store}/{key}` and `/bulk`,
with Dapr's answers for a missing key (500 ERR_SECRET_GET / gRPC INTERNAL), an unknown store (401
ERR_SECRET_STORE_NOT_FOUND / INVALID_ARGUMENT), no store at all (500 ERR_SECRET_STORES_NOT_CONFIGURED /
FAILED_PRECONDITION) and the app's secret scopes (403 ERR_PERMISSION_DENIED / PERMISSION_DENIED; bulk
answers leave denied secrets out). Codes: dapr/dapr pkg/api/errors (SecretStore*), pkg/messages."""

import json
import urllib.parse

import grpc
import pytest

RPC_TIMEOUT_S = 15
SECRETS = {"db-password": "s3cret", "api:key": "k3y", "nested": {"user": "u", "pass": "p"}, "root-token": "r00t"}
FLAT = {"db-password": {"db-password": "s3cret"}, "api:key": {"api:key": "k3y"},
        "nested:user": {"nested:user": "u"}, "nested:pass": {"nested:pass": "p"}, "root-token": {"root-token": "r00t"}}


@pytest.fixture
def secrets_file(tmp_path, plugins_dir):
    if not any(plugins_dir.glob("local-file-*.so")):
        pytest.fail(f"no local-file plugin in {plugins_dir} (make build stages it; branch secret-plugins)")
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(SECRETS))
    return path


def store(secrets_file, name="files", **metadata):
    return {"kind": "secretstore", "name": name, "plugin": "local-file",
            "metadata": {"secretsFile": str(secrets_file), **metadata}}


def scopes_env(scopes):
    return {"MOLT_SECRETS_SCOPES": json.dumps(scopes)}


@pytest.fixture
def sidecar(molt, secrets_file):
    return molt([store(secrets_file)])


def get(sidecar, store_name, key, query=""):
    return sidecar.http("GET", f"/v1.0/secrets/{store_name}/{urllib.parse.quote(key, safe='')}{query}")


def grpc_get(sidecar, store_name, key, metadata=None):
    from dapr.proto.runtime.v1 import secret_pb2
    request = secret_pb2.GetSecretRequest(store_name=store_name, key=key, metadata=metadata or {})
    return sidecar.dapr_stub().GetSecret(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)


def grpc_bulk(sidecar, store_name):
    from dapr.proto.runtime.v1 import secret_pb2
    request = secret_pb2.GetBulkSecretRequest(store_name=store_name)
    return sidecar.dapr_stub().GetBulkSecret(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)


def grpc_code(call):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def test_the_sdk_gets_a_secret_and_every_secret(sidecar):
    seen = sidecar.run_sdk("""
        from dapr.clients import DaprClient
        with DaprClient() as client:
            one = client.get_secret("files", "db-password")
            every = client.get_bulk_secret("files")
            emit(one=dict(one.secret), every={k: dict(v) for k, v in every.secrets.items()})
    """)
    assert seen["one"] == {"db-password": "s3cret"}, seen
    assert seen["every"] == FLAT, seen


def test_http_get_and_bulk_answer_json_objects(sidecar):
    answer = get(sidecar, "files", "db-password")
    assert answer.status == 200 and answer.json() == {"db-password": "s3cret"}, str(answer)
    # ':' as is, and percent-encoded: one path segment either way, decoded.
    assert sidecar.http("GET", "/v1.0/secrets/files/api:key").json() == {"api:key": "k3y"}
    assert get(sidecar, "files", "nested:user").json() == {"nested:user": "u"}
    bulk = sidecar.http("GET", "/v1.0/secrets/files/bulk")
    assert bulk.status == 200 and bulk.json() == FLAT, str(bulk)


def test_request_metadata_reaches_the_store(sidecar):
    # local-file ignores per-request metadata, as Dapr's: the call must still succeed with it, over both APIs.
    assert get(sidecar, "files", "db-password", "?metadata.namespace=default").json() == {"db-password": "s3cret"}
    assert dict(grpc_get(sidecar, "files", "db-password", {"namespace": "default"}).data) == {"db-password": "s3cret"}


def test_a_missing_secret_is_err_secret_get(sidecar):
    answer = get(sidecar, "files", "nope")
    assert answer.status == 500 and answer.json()["errorCode"] == "ERR_SECRET_GET", str(answer)
    assert "nope" in answer.json()["message"]
    assert grpc_code(lambda: grpc_get(sidecar, "files", "nope")) == grpc.StatusCode.INTERNAL


def test_an_unknown_store_is_err_secret_store_not_found(sidecar):
    answer = get(sidecar, "vault", "db-password")
    assert answer.status == 401 and answer.json()["errorCode"] == "ERR_SECRET_STORE_NOT_FOUND", str(answer)
    bulk = sidecar.http("GET", "/v1.0/secrets/vault/bulk")
    assert bulk.status == 401 and bulk.json()["errorCode"] == "ERR_SECRET_STORE_NOT_FOUND", str(bulk)
    assert grpc_code(lambda: grpc_get(sidecar, "vault", "db-password")) == grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_code(lambda: grpc_bulk(sidecar, "vault")) == grpc.StatusCode.INVALID_ARGUMENT


def test_no_secret_store_at_all_is_err_secret_stores_not_configured(molt):
    sidecar = molt([])
    answer = get(sidecar, "files", "db-password")
    assert answer.status == 500 and answer.json()["errorCode"] == "ERR_SECRET_STORES_NOT_CONFIGURED", str(answer)
    assert grpc_code(lambda: grpc_get(sidecar, "files", "x")) == grpc.StatusCode.FAILED_PRECONDITION


def test_scopes_deny_and_filter_as_dapr(molt, secrets_file):
    sidecar = molt([store(secrets_file), store(secrets_file, name="open"), store(secrets_file, name="closed")], env=scopes_env([
        {"storeName": "files", "deniedSecrets": ["root-token"]},
        {"storeName": "closed", "defaultAccess": "deny", "allowedSecrets": ["db-password"]},
    ]))
    # Denied by name under default allow.
    denied = get(sidecar, "files", "root-token")
    assert denied.status == 403 and denied.json()["errorCode"] == "ERR_PERMISSION_DENIED", str(denied)
    assert grpc_code(lambda: grpc_get(sidecar, "files", "root-token")) == grpc.StatusCode.PERMISSION_DENIED
    assert get(sidecar, "files", "db-password").status == 200
    # Default deny with an allow list: only the listed secret.
    assert get(sidecar, "closed", "db-password").json() == {"db-password": "s3cret"}
    assert get(sidecar, "closed", "api:key").status == 403
    # A store without a scope: everything.
    assert get(sidecar, "open", "root-token").status == 200
    # Bulk leaves denied secrets out.
    assert set(sidecar.http("GET", "/v1.0/secrets/files/bulk").json()) == set(FLAT) - {"root-token"}
    assert sidecar.http("GET", "/v1.0/secrets/closed/bulk").json() == {"db-password": {"db-password": "s3cret"}}
    assert set(grpc_bulk(sidecar, "closed").data) == {"db-password"}
    # Dapr checks the store before the policy: a denied key of an unknown store is not found.
    assert get(sidecar, "vault", "root-token").status == 401


def test_default_deny_denies_everything(molt, secrets_file):
    sidecar = molt([store(secrets_file)], env=scopes_env([{"storeName": "files", "defaultAccess": "deny"}]))
    assert get(sidecar, "files", "db-password").status == 403
    bulk = sidecar.http("GET", "/v1.0/secrets/files/bulk")
    assert bulk.status == 200 and bulk.json() == {}, str(bulk)
