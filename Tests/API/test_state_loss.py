"""No silent state loss: a plugin declaring MOLT_PLUGIN_HOLDS_STATE (here the holds-state fixture: in-memory locks,
no state transfer) is not reloaded or swapped when its state cannot be handed over. `molt apply` is refused
with the message and exit code 1 (the old generation keeps serving, with its locks) until the operator gives
--accept-state-loss; `molt apply --dry-run` says so too; the Lifecycle API, which has no such flag, is refused."""

import json
import subprocess

import grpc
import pytest
from dapr.proto.runtime.v1 import lock_pb2

CLI_TIMEOUT_S = 60
RPC_TIMEOUT_S = 15


def refusal(old, new):
    return (f"reloading lock/locks would lose the in-memory state of {old} (it holds state callers rely on, and {new} "
            "cannot import it: no state transfer); apply with accept_state_loss (molt apply --accept-state-loss) to reload anyway")


def cli(molt_bin, sidecar, *args):
    command, rest = args[0], args[1:]
    return subprocess.run([str(molt_bin), command, "--control-address", f"127.0.0.1:{sidecar.control_port}", *rest],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def try_lock(molt, resource, owner):
    request = lock_pb2.TryLockRequest(store_name="locks", resource_id=resource, lock_owner=owner, expiry_in_seconds=600)
    return molt.dapr_stub().TryLockAlpha1(request, metadata=molt.app_metadata(), timeout=RPC_TIMEOUT_S).success


@pytest.fixture
def sidecar(molt, components, fixtures_dir):
    return molt([components.lock("locks", plugin="holds-state", version="1.0.0")], plugins_dir=fixtures_dir)


def test_a_version_swap_that_would_lose_state_is_refused_until_accepted(sidecar, molt_bin):
    assert try_lock(sidecar, "r", "first")
    swap = ("apply", "--kind", "lock", "--name", "locks", "--version", "1.1.0")
    refused = cli(molt_bin, sidecar, *swap)
    assert refused.returncode == 1, refused
    assert refusal("holds-state@1.0.0", "holds-state@1.1.0") in refused.stdout + refused.stderr, refused
    as_json = cli(molt_bin, sidecar, *swap, "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["failure"] == "state-would-be-lost", as_json
    dry_run = cli(molt_bin, sidecar, *swap, "--dry-run")
    assert dry_run.returncode == 1, dry_run
    assert refusal("holds-state@1.0.0", "holds-state@1.1.0") in dry_run.stdout + dry_run.stderr, dry_run
    # Nothing changed: the old generation serves, and still holds the lock.
    assert sidecar.generation("lock", "locks") == 1
    assert not try_lock(sidecar, "r", "second")

    accepted = cli(molt_bin, sidecar, *swap, "--accept-state-loss")
    assert accepted.returncode == 0, accepted
    assert "version-swapped" in accepted.stdout, accepted.stdout
    assert sidecar.component("lock", "locks").plugin == "holds-state@1.1.0"
    assert try_lock(sidecar, "r", "second"), "the accepted swap dropped the lock"


def test_the_lifecycle_api_refuses_a_reload_that_would_lose_state(sidecar):
    assert try_lock(sidecar, "r", "first")
    with pytest.raises(grpc.RpcError) as caught:
        sidecar.apply_configuration("lock", "locks", {"note": "reload"})
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value
    assert caught.value.details() == refusal("holds-state@1.0.0", "holds-state@1.0.0"), caught.value.details()
    assert sidecar.generation("lock", "locks") == 1
    assert not try_lock(sidecar, "r", "second")
